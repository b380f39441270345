using Chain.Protocol.V1;
using Chain.Rpc;

namespace Chain.Protocol;

/// <summary>Method descriptors of the wire contract (protos/chain/v1), shared by servers and clients.</summary>
public static class StoreMethods
{
    public const string Service = "chain.v1.ChainStore";

    public static readonly Method<PutRequest, PutResponse> Put =
        new(MethodType.ClientStreaming, Service, "Put", PutRequest.Parser, PutResponse.Parser);

    public static readonly Method<GetRequest, GetResponse> Get =
        new(MethodType.ServerStreaming, Service, "Get", GetRequest.Parser, GetResponse.Parser);

    public static readonly Method<DeleteRequest, DeleteResponse> Delete =
        new(MethodType.Unary, Service, "Delete", DeleteRequest.Parser, DeleteResponse.Parser);

    public static readonly Method<StatRequest, StatResponse> Stat =
        new(MethodType.Unary, Service, "Stat", StatRequest.Parser, StatResponse.Parser);

    public static readonly Method<ListRequest, ListResponse> List =
        new(MethodType.Unary, Service, "List", ListRequest.Parser, ListResponse.Parser);

    public static readonly Method<PutChunkRequest, PutChunkResponse> PutChunk =
        new(MethodType.Unary, Service, "PutChunk", PutChunkRequest.Parser, PutChunkResponse.Parser);

    public static readonly Method<GetChunkRequest, GetChunkResponse> GetChunk =
        new(MethodType.Unary, Service, "GetChunk", GetChunkRequest.Parser, GetChunkResponse.Parser);
}

public static class ReplicationMethods
{
    public const string Service = "chain.v1.Replication";

    public static readonly Method<ReplicateMessage, ReplicateAck> Replicate =
        new(MethodType.DuplexStreaming, Service, "Replicate", ReplicateMessage.Parser, ReplicateAck.Parser);
}

public static class MasterMethods
{
    public const string Service = "chain.v1.Master";

    public static readonly Method<RegisterRequest, RegisterResponse> Register =
        new(MethodType.Unary, Service, "Register", RegisterRequest.Parser, RegisterResponse.Parser);

    public static readonly Method<HeartbeatRequest, HeartbeatResponse> Heartbeat =
        new(MethodType.Unary, Service, "Heartbeat", HeartbeatRequest.Parser, HeartbeatResponse.Parser);

    public static readonly Method<GetConfigRequest, ClusterConfig> GetConfig =
        new(MethodType.Unary, Service, "GetConfig", GetConfigRequest.Parser, ClusterConfig.Parser);

    public static readonly Method<BucketRequest, BucketResponse> CreateBucket =
        new(MethodType.Unary, Service, "CreateBucket", BucketRequest.Parser, BucketResponse.Parser);

    public static readonly Method<BucketRequest, BucketResponse> DeleteBucket =
        new(MethodType.Unary, Service, "DeleteBucket", BucketRequest.Parser, BucketResponse.Parser);
}

/// <summary>Names of custom trailers carrying typed error details.</summary>
public static class ErrorTrailers
{
    /// <summary>Machine-readable error kind, one of <see cref="ErrorKinds"/>.</summary>
    public const string Kind = "chain-error";
    /// <summary>The epoch the node runs for the chain (with stale-epoch errors).</summary>
    public const string Epoch = "chain-epoch";
}

public static class ErrorKinds
{
    public const string StaleEpoch = "stale-epoch";
    public const string NotHead = "not-head";
    public const string NotTail = "not-tail";
    public const string NoSuchBucket = "no-such-bucket";
    public const string NoSuchKey = "no-such-key";
    public const string InvalidKey = "invalid-key";
    public const string TooLarge = "too-large";
    public const string BadDigest = "bad-digest";
    public const string NotReady = "not-ready";
    public const string BucketNotEmpty = "bucket-not-empty";
    /// <summary>The bucket is being deleted: no new objects, and it cannot be created again until that ends.</summary>
    public const string BucketDeleting = "bucket-deleting";
    public const string InvalidBucket = "invalid-bucket";
    /// <summary>A conditional write's condition (if-version / if-absent) did not hold; nothing was written.</summary>
    public const string PreconditionFailed = "precondition-failed";
    /// <summary>A manifest names a chunk its chain does not hold (or holds only with an old timestamp): upload it again.</summary>
    public const string MissingChunk = "missing-chunk";
    /// <summary>This replica's copy failed verification (it is being repaired): read from another replica.</summary>
    public const string CorruptReplica = "corrupt-replica";
    /// <summary>
    /// CRAQ: a member other than the tail cannot serve this read (the object has a write the chain has not committed
    /// yet, or a listing met unacknowledged writes): send the same read to the tail, at once, with the same table.
    /// </summary>
    public const string ReadAtTail = "read-at-tail";
    /// <summary>Tracker: no swarm with this id (never announced, or every peer left or died): announce again.</summary>
    public const string UnknownSwarm = "unknown-swarm";
    /// <summary>Tracker: the peer is not (or no longer, its lease ran out) in this swarm: announce again.</summary>
    public const string NotAnnounced = "not-announced";
    /// <summary>Tracker: the announce's chunk list differs from the one the swarm was created with.</summary>
    public const string SwarmConflict = "swarm-conflict";
}

public static class AdminMethods
{
    public const string Service = "chain.v1.Admin";

    public static readonly Method<ReplicaStateRequest, ReplicaStateResponse> ReplicaState =
        new(MethodType.Unary, Service, "ReplicaState", ReplicaStateRequest.Parser, ReplicaStateResponse.Parser);

    public static readonly Method<ChunkRefsRequest, ChunkRefsResponse> ChunkRefs =
        new(MethodType.Unary, Service, "ChunkRefs", ChunkRefsRequest.Parser, ChunkRefsResponse.Parser);

    public static readonly Method<ListChunksRequest, ListChunksResponse> ListChunks =
        new(MethodType.Unary, Service, "ListChunks", ListChunksRequest.Parser, ListChunksResponse.Parser);

    public static readonly Method<SweepChunksRequest, SweepChunksResponse> SweepChunks =
        new(MethodType.Unary, Service, "SweepChunks", SweepChunksRequest.Parser, SweepChunksResponse.Parser);

    public static readonly Method<HasChunksRequest, HasChunksResponse> HasChunks =
        new(MethodType.Unary, Service, "HasChunks", HasChunksRequest.Parser, HasChunksResponse.Parser);

    public static readonly Method<ScrubRequest, ScrubResponse> Scrub =
        new(MethodType.Unary, Service, "Scrub", ScrubRequest.Parser, ScrubResponse.Parser);

    public static readonly Method<HealthRequest, HealthResponse> Health =
        new(MethodType.Unary, Service, "Health", HealthRequest.Parser, HealthResponse.Parser);

    public static readonly Method<BucketHasObjectsRequest, BucketHasObjectsResponse> BucketHasObjects =
        new(MethodType.Unary, Service, "BucketHasObjects", BucketHasObjectsRequest.Parser, BucketHasObjectsResponse.Parser);

    public static readonly Method<SnapshotChainRequest, SnapshotChainResponse> SnapshotChain =
        new(MethodType.ServerStreaming, Service, "SnapshotChain", SnapshotChainRequest.Parser, SnapshotChainResponse.Parser);
}

/// <summary>The distribution tier's tracker (protos/chain/v1/distribution.proto).</summary>
public static class TrackerMethods
{
    public const string Service = "chain.v1.Tracker";

    public static readonly Method<AnnounceRequest, AnnounceResponse> Announce =
        new(MethodType.Unary, Service, "Announce", AnnounceRequest.Parser, AnnounceResponse.Parser);

    public static readonly Method<ExchangeRequest, ExchangeResponse> Exchange =
        new(MethodType.Unary, Service, "Exchange", ExchangeRequest.Parser, ExchangeResponse.Parser);

    public static readonly Method<LeaveRequest, LeaveResponse> Leave =
        new(MethodType.Unary, Service, "Leave", LeaveRequest.Parser, LeaveResponse.Parser);

    public static readonly Method<SwarmStatusRequest, SwarmStatusResponse> SwarmStatus =
        new(MethodType.Unary, Service, "SwarmStatus", SwarmStatusRequest.Parser, SwarmStatusResponse.Parser);
}

/// <summary>Agent to agent: verified chunks out of a peer's cache.</summary>
public static class PeerMethods
{
    public const string Service = "chain.v1.Peer";

    public static readonly Method<PeerChunkRequest, PeerChunkResponse> GetChunk =
        new(MethodType.ServerStreaming, Service, "GetChunk", PeerChunkRequest.Parser, PeerChunkResponse.Parser);
}

/// <summary>The local agent's API (`chain get --p2p`, `chain agent status`).</summary>
public static class AgentMethods
{
    public const string Service = "chain.v1.Agent";

    public static readonly Method<FetchRequest, FetchResponse> Fetch =
        new(MethodType.ServerStreaming, Service, "Fetch", FetchRequest.Parser, FetchResponse.Parser);

    public static readonly Method<AgentStatusRequest, AgentStatusResponse> Status =
        new(MethodType.Unary, Service, "Status", AgentStatusRequest.Parser, AgentStatusResponse.Parser);
}
