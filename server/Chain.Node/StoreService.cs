using System.Collections.Concurrent;
using System.Security.Cryptography;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Chain.Storage;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Chain.Node;

/// <summary>
/// The client API: writes at the head; reads at any member (CRAQ: the tail, or another member for objects it holds
/// clean, else redirected to the tail). Validates everything a client can get wrong.
/// </summary>
internal sealed class StoreService
{
    private readonly StorageNode _node;
    private readonly ILogger _log;
    // Writes in progress at this head by request id: a concurrent retry waits for the first attempt.
    private readonly ConcurrentDictionary<string, Task<DedupRecord>> _inProgress = new(StringComparer.Ordinal);

    public StoreService(StorageNode node, ILogger log)
    {
        _node = node;
        _log = log;
    }

    public void Register(RpcServiceRegistry registry)
    {
        registry.AddClientStreaming(StoreMethods.Put, PutAsync);
        registry.AddServerStreaming(StoreMethods.Get, GetAsync);
        registry.AddUnary(StoreMethods.Delete, DeleteAsync);
        registry.AddUnary(StoreMethods.Stat, StatAsync);
        registry.AddUnary(StoreMethods.List, ListAsync);
    }

    // ---------------- routing and validation ----------------

    private enum Position { Head, Read }

    /// <summary>How long a member waits for the tail's committed version of a dirty object before redirecting the read.</summary>
    private static readonly TimeSpan TailCheckTimeout = TimeSpan.FromSeconds(1);

    private bool DirtyReadsBreak => (_node.Options.TestBreaks & TestBreaks.DirtyReads) != 0;

    private async Task<ChainReplica> RouteAsync(Routing? routing, string bucket, ReadOnlyMemory<byte>? key, Position position)
    {
        string? bucketProblem = Validation.CheckBucket(bucket);
        if (bucketProblem is not null)
            throw NodeErrors.Kind(StatusCode.InvalidArgument, ErrorKinds.InvalidBucket, bucketProblem);
        if (key is not null)
        {
            string? keyProblem = Validation.CheckKey(key.Value.Span);
            if (keyProblem is not null)
                throw NodeErrors.InvalidKey(keyProblem);
        }
        if (routing is null)
            throw NodeErrors.Invalid("request carries no routing (chain id and epoch)");
        ClusterConfig config = _node.Config ?? throw NodeErrors.NotReady($"node {_node.NodeId} has no chain table yet");
        if (!_node.HasFreshConfig)
            throw NodeErrors.NotReady($"node {_node.NodeId} has not heard from the master since it started");
        if (routing.ChainId >= config.Chains.Count)
            throw NodeErrors.StaleEpoch(routing.ChainId, routing.Epoch, 0);
        ChainReplica? replica = _node.GetReplica(routing.ChainId);
        ulong epoch = config.Chains[(int)routing.ChainId].Epoch;
        if (replica is null)
            throw NodeErrors.Kind(StatusCode.FailedPrecondition, position == Position.Head ? ErrorKinds.NotHead : ErrorKinds.NotTail,
                $"node {_node.NodeId} is not in chain {routing.ChainId}", epoch);
        ChainRole role = replica.Role;
        if (routing.Epoch > role.Epoch)
        {
            // The client knows a newer table than this node: fetch it now rather than wait for a heartbeat.
            await _node.RefreshConfigAsync();
            ChainReplica? current = _node.GetReplica(routing.ChainId);
            if (current is null)
                throw NodeErrors.Kind(StatusCode.FailedPrecondition, position == Position.Head ? ErrorKinds.NotHead : ErrorKinds.NotTail,
                    $"node {_node.NodeId} is not in chain {routing.ChainId}", _node.Config?.Chains[(int)routing.ChainId].Epoch);
            replica = current;
            role = replica.Role;
        }
        if (role.Epoch != routing.Epoch)
            throw NodeErrors.StaleEpoch(routing.ChainId, routing.Epoch, role.Epoch);
        if (position == Position.Head && !role.IsHead)
            throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.NotHead, $"node {_node.NodeId} is not the head of chain {routing.ChainId}", role.Epoch);
        // Reads: any member (never a syncing node) with a read lease, past any promotion wait; whether the object is
        // clean here is decided by the read itself. Test break: any replica answers reads from whatever it holds,
        // without the membership, lease, promotion and clean checks.
        if (position == Position.Read && !DirtyReadsBreak)
        {
            if (role.Syncing)
                throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.NotTail, $"node {_node.NodeId} is still syncing chain {routing.ChainId} and serves no reads", role.Epoch);
            RequireReadLease(replica, routing);
            if (!replica.ReadsAllowed)
                throw NodeErrors.NotReady($"node {_node.NodeId} just became the tail of chain {routing.ChainId} and is still applying its predecessor's updates");
        }

        if (key is not null && Placement.ChainFor(bucket, key.Value.Span, config.Chains.Count) != routing.ChainId)
            throw NodeErrors.StaleEpoch(routing.ChainId, routing.Epoch, role.Epoch);
        await RequireBucketAsync(bucket);
        return replica;
    }

    private async Task RequireBucketAsync(string bucket)
    {
        if (HasBucket(_node.Config, bucket))
            return;
        // The bucket may be newer than this node's table: ask the master once.
        ClusterConfig? fresh = await _node.RefreshConfigAsync();
        if (!HasBucket(fresh ?? _node.Config, bucket))
            throw NodeErrors.NoSuchBucket(bucket);
    }

    /// <summary>
    /// Puts: the bucket must exist and not be being deleted, in the config this node runs. Checked before any data
    /// is streamed and again, deciding, under the sequencing lock (see ChainReplica.ProposeAsync).
    /// </summary>
    private void CheckBucketAcceptsPuts(string bucket)
    {
        BucketInfo? info = _node.Config?.Buckets.FirstOrDefault(b => b.Name == bucket);
        if (info is null)
            throw NodeErrors.NoSuchBucket(bucket);
        if (info.State == BucketState.BucketDeleting)
            throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.BucketDeleting,
                $"bucket '{bucket}' is being deleted; it accepts no new objects");
    }

    /// <summary>The early check for puts; a bucket shown deleting may have finished either way: ask the master once.</summary>
    private async Task RequireBucketAcceptsPutsAsync(string bucket)
    {
        if (_node.Config?.Buckets.FirstOrDefault(b => b.Name == bucket) is not { State: BucketState.BucketActive })
            await _node.RefreshConfigAsync();
        CheckBucketAcceptsPuts(bucket);
    }

    private static bool HasBucket(ClusterConfig? config, string bucket) =>
        config is not null && config.Buckets.Any(b => b.Name == bucket);

    private static string KeyText(ByteString key) => Validation.DecodeKey(key.Span);

    private static void CheckRequestId(ByteString requestId)
    {
        if (requestId.Length != Limits.RequestIdBytes)
            throw NodeErrors.Invalid($"request id must be {Limits.RequestIdBytes} bytes, got {requestId.Length}");
    }

    // ---------------- writes (head) ----------------

    private async Task<PutResponse> PutAsync(IAsyncEnumerable<PutRequest> requests, ServerCallContext context)
    {
        CancellationToken ct = context.CancellationToken;
        await using IAsyncEnumerator<PutRequest> stream = requests.GetAsyncEnumerator(ct);
        if (!await stream.MoveNextAsync() || stream.Current.PartCase != PutRequest.PartOneofCase.Header)
            throw NodeErrors.Invalid("a put must start with a header");
        PutHeader header = stream.Current.Header;
        ChainReplica replica = await RouteAsync(header.Routing, header.Bucket, header.Key.Memory, Position.Head);
        CheckRequestId(header.RequestId);
        long maxBytes = _node.Options.ObjectBytesMax;
        if ((long)header.DeclaredSize > maxBytes)
            throw NodeErrors.TooLarge($"object of {header.DeclaredSize} bytes exceeds the maximum of {maxBytes} bytes");
        await RequireBucketAcceptsPutsAsync(header.Bucket);
        int metadataBytes = header.UserMetadata.Sum(kv => kv.Key.Length + kv.Value.Length);
        if (metadataBytes > Limits.UserMetadataBytesMax)
            throw NodeErrors.Invalid($"user metadata of {metadataBytes} bytes exceeds {Limits.UserMetadataBytesMax}");

        string requestKey = replica.ChainId + ":" + Convert.ToHexString(header.RequestId.Span);
        var mine = new TaskCompletionSource<DedupRecord>(_node.Options.SignalContinuations);
        Task<DedupRecord> existing = _inProgress.GetOrAdd(requestKey, mine.Task);
        if (existing != mine.Task)
        {
            await DrainAsync(stream);
            DedupRecord first = await existing.WaitAsync(ct);
            return new PutResponse { Version = first.Version, Deduplicated = true };
        }
        try
        {
            DedupRecord? done = await FindEarlierAttemptAsync(replica, header.RequestId, ct);
            if (done is not null)
            {
                await DrainAsync(stream);
                mine.TrySetResult(done.Value);
                return new PutResponse { Version = done.Value.Version, Deduplicated = true };
            }
            WriteCondition? condition = header.IfVersion != 0 || header.IfAbsent
                ? new WriteCondition(header.Bucket, header.Key, header.IfVersion != 0 ? header.IfVersion : null, header.IfAbsent)
                : null;
            // Fail fast, before any data is streamed; the deciding check is the one made when sequencing.
            if (condition is not null)
                replica.CheckCondition(condition);
            DedupRecord result = await ReplicatePutAsync(replica, header, stream, maxBytes, condition, ct);
            mine.TrySetResult(result);
            return new PutResponse { Version = result.Version };
        }
        catch (Exception e)
        {
            mine.TrySetException(e);
            throw;
        }
        finally
        {
            _inProgress.TryRemove(new KeyValuePair<string, Task<DedupRecord>>(requestKey, mine.Task));
        }
    }

    private async Task<DedupRecord> ReplicatePutAsync(ChainReplica replica, PutHeader header, IAsyncEnumerator<PutRequest> stream, long maxBytes,
        WriteCondition? condition, CancellationToken ct)
    {
        ulong epoch = header.Routing.Epoch;
        uint chainId = replica.ChainId;
        using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var chunks = new List<ChunkRef>();
        long total = 0;
        PutCommit? commit = null;
        ChunkWrite? held = null;
        while (await stream.MoveNextAsync())
        {
            PutRequest part = stream.Current;
            if (part.PartCase == PutRequest.PartOneofCase.Commit)
            {
                commit = part.Commit;
                break;
            }
            if (part.PartCase != PutRequest.PartOneofCase.Chunk)
                throw NodeErrors.Invalid("expected a chunk or the commit after the header");
            PutChunk chunk = part.Chunk;
            if (chunk.Data.Length == 0 || chunk.Data.Length > Limits.ChunkBytesMax)
                throw NodeErrors.Invalid($"chunk of {chunk.Data.Length} bytes; chunks must be 1..{Limits.ChunkBytesMax} bytes");
            if (!Digests.Matches(chunk.Data.Span, chunk.Sha256.Span))
                throw NodeErrors.BadDigest($"chunk {chunks.Count} does not match its SHA-256");
            total += chunk.Data.Length;
            if (total > maxBytes)
                throw NodeErrors.TooLarge($"object exceeds the maximum of {maxBytes} bytes");
            if (header.DeclaredSize > 0 && total > (long)header.DeclaredSize)
                throw NodeErrors.Invalid($"object is larger than its declared size of {header.DeclaredSize} bytes");
            whole.AppendData(chunk.Data.Span);
            chunks.Add(new ChunkRef { Sha256 = chunk.Sha256, Size = (uint)chunk.Data.Length });
            // The newest chunk waits: if it turns out to be the last, it rides with the object record.
            if (held is not null)
                await ProposeChunkAsync(replica, epoch, held, ct);
            held = new ChunkWrite { Sha256 = chunk.Sha256, Data = chunk.Data, TouchedUnixMs = (ulong)_node.Options.Time.GetUtcNow().ToUnixTimeMilliseconds() };
        }
        if (commit is null)
            throw NodeErrors.Invalid("put stream ended without a commit; nothing was written");
        if (await stream.MoveNextAsync())
            throw NodeErrors.Invalid("data after the commit");
        if (commit.Chunks.Count > 0)
        {
            if (chunks.Count > 0)
                throw NodeErrors.Invalid("a put either streams its chunks or commits a manifest, not both");
            return await CommitManifestAsync(replica, header, commit, maxBytes, condition, ct);
        }
        if ((long)commit.Size != total)
            throw NodeErrors.Invalid($"commit says {commit.Size} bytes but {total} were sent");
        if (header.DeclaredSize > 0 && (long)header.DeclaredSize != total)
            throw NodeErrors.Invalid($"declared {header.DeclaredSize} bytes but {total} were sent");
        byte[] digest = whole.GetHashAndReset();
        if (!digest.AsSpan().SequenceEqual(commit.Sha256.Span))
            throw NodeErrors.BadDigest("the object's SHA-256 does not match the data sent");

        ObjectMeta meta = NewMeta(header, total, ByteString.CopyFrom(digest));
        meta.Chunks.AddRange(chunks);
        // The data is always sent, even for a chunk this chain holds: a collection sequenced in between could
        // drop a chunk that was merely found present, and the record would then name a missing chunk.
        bool carry = held is not null;
        PendingUpdate pending = await replica.ProposeAsync(epoch, (seq, e) =>
        {
            meta.Version = seq;
            var write = new ObjectWrite { Meta = meta, RequestId = header.RequestId };
            if (carry)
                write.LastChunk = held;
            return new Update { Seq = seq, Epoch = e, Object = write };
        }, carry ? held!.Data.Length : 0, ct, condition, () => CheckBucketAcceptsPuts(header.Bucket));
        await WaitCommittedAsync(replica, pending, ct);
        return new DedupRecord(pending.Seq, false);
    }

    private ObjectMeta NewMeta(PutHeader header, long size, ByteString sha256)
    {
        var meta = new ObjectMeta
        {
            Bucket = header.Bucket,
            Key = header.Key,
            Size = (ulong)size,
            Sha256 = sha256,
            CreatedUnixMs = _node.Options.Time.GetUtcNow().ToUnixTimeMilliseconds(),
            ContentType = header.ContentType,
        };
        meta.UserMetadata.Add(header.UserMetadata);
        return meta;
    }

    /// <summary>
    /// Commits an object whose chunks the client stored on their own chains (PutChunk): checks the manifest's
    /// shape, that every chunk is held by its chain's head and was touched within half the GC grace (so a
    /// collection cannot take it before this record is visible), then sequences the record alone.
    /// </summary>
    private async Task<DedupRecord> CommitManifestAsync(ChainReplica replica, PutHeader header, PutCommit commit, long maxBytes,
        WriteCondition? condition, CancellationToken ct)
    {
        if (commit.Chunks.Count > Limits.ManifestChunksMax)
            throw NodeErrors.TooLarge($"manifest of {commit.Chunks.Count} chunks exceeds {Limits.ManifestChunksMax}");
        if (commit.Sha256.Length != 32)
            throw NodeErrors.Invalid("the object's SHA-256 must be 32 bytes");
        long total = 0;
        foreach (ChunkRef chunk in commit.Chunks)
        {
            if (chunk.Sha256.Length != 32)
                throw NodeErrors.Invalid("a chunk id is a 32-byte SHA-256");
            if (chunk.Size == 0 || chunk.Size > Limits.ChunkBytesMax)
                throw NodeErrors.Invalid($"chunk of {chunk.Size} bytes; chunks must be 1..{Limits.ChunkBytesMax} bytes");
            total += chunk.Size;
        }
        if (total > maxBytes)
            throw NodeErrors.TooLarge($"object of {total} bytes exceeds the maximum of {maxBytes} bytes");
        if ((long)commit.Size != total)
            throw NodeErrors.Invalid($"commit says {commit.Size} bytes but its chunks add up to {total}");
        if (header.DeclaredSize > 0 && (long)header.DeclaredSize != total)
            throw NodeErrors.Invalid($"declared {header.DeclaredSize} bytes but the manifest holds {total}");
        await CheckChunksHeldAsync(commit.Chunks, ct);

        ObjectMeta meta = NewMeta(header, total, commit.Sha256);
        meta.Distributed = true;
        meta.Chunks.AddRange(commit.Chunks);
        PendingUpdate pending = await replica.ProposeAsync(header.Routing.Epoch, (seq, e) =>
        {
            meta.Version = seq;
            return new Update { Seq = seq, Epoch = e, Object = new ObjectWrite { Meta = meta, RequestId = header.RequestId } };
        }, 0, ct, condition, () => CheckBucketAcceptsPuts(header.Bucket));
        await WaitCommittedAsync(replica, pending, ct);
        return new DedupRecord(pending.Seq, false);
    }

    /// <summary>Asks the head of each chunk's chain whether it holds the chunk, recently touched.</summary>
    private async Task CheckChunksHeldAsync(IReadOnlyList<ChunkRef> chunks, CancellationToken ct)
    {
        ClusterConfig config = _node.Config ?? throw NodeErrors.NotReady("no chain table");
        int chainCount = config.Chains.Count;
        ulong now = (ulong)_node.Options.Time.GetUtcNow().ToUnixTimeMilliseconds();
        ulong freshAfter = now - Math.Min(now, (ulong)(_node.Options.ChunkGcGrace.TotalMilliseconds / 2));
        var byChain = chunks.Select(c => c.Sha256).DistinctBy(id => Convert.ToBase64String(id.Span))
            .GroupBy(id => Placement.ChainForChunk(id.Span, chainCount));
        var checks = new List<Task>();
        foreach (var group in byChain)
        {
            ChainInfo chain = config.Chains[(int)group.Key];
            foreach (ByteString[] slice in group.Chunk(ChunkService.IdsPerCallMax))
                checks.Add(CheckChainHoldsAsync(config, chain, slice, freshAfter, ct));
        }
        await Task.WhenAll(checks);
    }

    private async Task CheckChainHoldsAsync(ClusterConfig config, ChainInfo chain, ByteString[] ids, ulong freshAfter, CancellationToken ct)
    {
        string head = chain.Nodes.Count > 0 ? chain.Nodes[0] : throw NodeErrors.NotReady($"chain {chain.ChainId} has no nodes");
        string? address = config.Nodes.FirstOrDefault(n => n.Node.NodeId == head)?.Node.Address;
        if (address is null)
            throw NodeErrors.NotReady($"the head of chain {chain.ChainId} has no known address");
        var request = new HasChunksRequest { ChainId = chain.ChainId, Epoch = chain.Epoch };
        request.Sha256.AddRange(ids);
        HasChunksResponse response;
        try
        {
            response = await _node.Channel(new Uri(address)).UnaryAsync(AdminMethods.HasChunks, request,
                new CallOptions { Timeout = TimeSpan.FromSeconds(10), CancellationToken = ct });
        }
        catch (RpcException e) when (e.Status != StatusCode.Cancelled)
        {
            throw NodeErrors.NotReady($"could not check the manifest's chunks on chain {chain.ChainId}: {e.Detail}");
        }
        for (int i = 0; i < ids.Length; i++)
        {
            ulong touched = i < response.TouchedUnixMs.Count ? response.TouchedUnixMs[i] : 0;
            if (touched == 0)
                throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.MissingChunk,
                    $"chunk {Convert.ToHexStringLower(ids[i].Span)} is not stored on chain {chain.ChainId}; upload it before committing the manifest");
            if (touched < freshAfter)
                throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.MissingChunk,
                    $"chunk {Convert.ToHexStringLower(ids[i].Span)} was last touched too long ago (garbage collection may take it); touch it again with PutChunk");
        }
    }

    /// <summary>
    /// Waits until the whole chain has the write (the tail acknowledged it) — or, under the test break
    /// <see cref="TestBreaks.AckBeforeTail"/>, only until it is durable here at the head.
    /// </summary>
    private Task WaitCommittedAsync(ChainReplica replica, PendingUpdate pending, CancellationToken ct) =>
        (_node.Options.TestBreaks & TestBreaks.AckBeforeTail) != 0
            ? replica.WaitDurableAsync(pending.Seq, ct)
            : pending.Acked.Task.WaitAsync(ct);

    /// <summary>Proposes one piece of an inline object (always with its data: see the comment on the last piece).</summary>
    private static async Task ProposeChunkAsync(ChainReplica replica, ulong epoch, ChunkWrite chunk, CancellationToken ct) =>
        await replica.ProposeAsync(epoch, (seq, e) => new Update { Seq = seq, Epoch = e, Chunk = chunk }, chunk.Data.Length, ct);

    /// <summary>
    /// The result of an earlier attempt of the same write, once the whole chain has it: queued here (perhaps
    /// forwarded by a head that has since failed), or durable here with its dedup record. Null if none.
    /// </summary>
    private async Task<DedupRecord?> FindEarlierAttemptAsync(ChainReplica replica, ByteString requestId, CancellationToken ct)
    {
        PendingUpdate? pending = replica.FindPending(requestId.Span);
        if (pending is not null)
        {
            await pending.Acked.Task.WaitAsync(ct);
            return new DedupRecord(pending.Seq, pending.Existed);
        }
        DedupRecord? durable = _node.Store.GetDedup(replica.ChainId, requestId.Span);
        if (durable is not null)
            await replica.WaitAckedAsync(durable.Value.Version, ct);
        return durable;
    }

    private static async Task DrainAsync(IAsyncEnumerator<PutRequest> stream)
    {
        while (await stream.MoveNextAsync())
        {
        }
    }

    private async Task<DeleteResponse> DeleteAsync(DeleteRequest request, ServerCallContext context)
    {
        ChainReplica replica = await RouteAsync(request.Routing, request.Bucket, request.Key.Memory, Position.Head);
        CheckRequestId(request.RequestId);
        string requestKey = replica.ChainId + ":" + Convert.ToHexString(request.RequestId.Span);
        var mine = new TaskCompletionSource<DedupRecord>(_node.Options.SignalContinuations);
        Task<DedupRecord> existing = _inProgress.GetOrAdd(requestKey, mine.Task);
        if (existing != mine.Task)
        {
            DedupRecord first = await existing.WaitAsync(context.CancellationToken);
            return new DeleteResponse { Version = first.Version, Existed = first.Existed, Deduplicated = true };
        }
        try
        {
            DedupRecord? done = await FindEarlierAttemptAsync(replica, request.RequestId, context.CancellationToken);
            if (done is not null)
            {
                mine.TrySetResult(done.Value);
                return new DeleteResponse { Version = done.Value.Version, Existed = done.Value.Existed, Deduplicated = true };
            }
            var delete = new ObjectDelete { Bucket = request.Bucket, Key = request.Key, RequestId = request.RequestId };
            WriteCondition? condition = request.IfVersion != 0 ? new WriteCondition(request.Bucket, request.Key, request.IfVersion, false) : null;
            PendingUpdate pending = await replica.ProposeAsync(request.Routing.Epoch,
                (seq, e) => new Update { Seq = seq, Epoch = e, Delete = delete }, 0, context.CancellationToken, condition);
            await WaitCommittedAsync(replica, pending, context.CancellationToken);
            var result = new DedupRecord(pending.Seq, pending.Existed);
            mine.TrySetResult(result);
            return new DeleteResponse { Version = result.Version, Existed = result.Existed };
        }
        catch (Exception e)
        {
            mine.TrySetException(e);
            throw;
        }
        finally
        {
            _inProgress.TryRemove(new KeyValuePair<string, Task<DedupRecord>>(requestKey, mine.Task));
        }
    }

    // ---------------- reads (any member, CRAQ) ----------------

    /// <summary>
    /// A member serves reads only while it holds a read lease (the master cannot have removed it yet, so every
    /// committed write went through it) and still runs the request's epoch. Checked when routing and again after
    /// the data was read.
    /// </summary>
    private void RequireReadLease(ChainReplica replica, Routing routing)
    {
        if (!_node.HasReadLease)
            throw NodeErrors.NotReady($"node {_node.NodeId} holds no read lease from the master; it may have been removed from chain {routing.ChainId}");
        ulong epoch = replica.Role.Epoch;
        if (epoch != routing.Epoch)
            throw NodeErrors.StaleEpoch(routing.ChainId, routing.Epoch, epoch);
    }

    private static RpcException ReadAtTail(uint chainId, ulong epoch, string why) =>
        NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.ReadAtTail, $"{why}; read it at the tail of chain {chainId}", epoch);

    /// <summary>
    /// The object's record as a linearizable read sees it (null: absent). Read from the local store first; then, if
    /// the object is clean here (no unacknowledged write of it; always at the tail), that record is committed.
    /// Otherwise the tail says which version it has committed: if that is the local one (only the acknowledgement
    /// has not arrived yet) it is served, else the read is redirected to the tail (read-at-tail).
    /// </summary>
    private async Task<ObjectMeta?> ReadObjectAsync(ChainReplica replica, Routing routing, string bucket, ByteString key, CancellationToken ct)
    {
        ObjectMeta? meta = _node.Store.GetObject(replica.ChainId, bucket, key.Span);
        if (DirtyReadsBreak)
            return meta;
        if (replica.IsClean(bucket, key.Span))
        {
            RequireReadLease(replica, routing);
            return meta;
        }
        ulong committed = await CommittedVersionAtTailAsync(routing, bucket, key, ct);
        if (committed != (meta?.Version ?? 0))
            throw ReadAtTail(routing.ChainId, routing.Epoch, $"'{bucket}/{KeyText(key)}' has a write on node {_node.NodeId} that the chain has not committed yet");
        return meta;
    }

    /// <summary>
    /// The version of the object the tail of the request's chain and epoch has committed (0: absent), asked through
    /// the node's own peer channels. Any failure (tail unreachable, slow, refusing) is a read-at-tail redirect.
    /// </summary>
    private async Task<ulong> CommittedVersionAtTailAsync(Routing routing, string bucket, ByteString key, CancellationToken ct)
    {
        ClusterConfig? config = _node.Config;
        ChainInfo? chain = config is not null && routing.ChainId < config.Chains.Count ? config.Chains[(int)routing.ChainId] : null;
        string? tailId = chain is not null && chain.Epoch == routing.Epoch && chain.Nodes.Count > 0 ? chain.Nodes[^1] : null;
        NodeInfo? tail = tailId is null || tailId == _node.NodeId ? null : config!.Nodes.FirstOrDefault(n => n.Node?.NodeId == tailId)?.Node;
        if (tail is null || !Uri.TryCreate(tail.Address, UriKind.Absolute, out Uri? address))
            throw ReadAtTail(routing.ChainId, routing.Epoch, $"node {_node.NodeId} cannot ask the tail about '{bucket}/{KeyText(key)}'");
        try
        {
            StatResponse response = await _node.Channel(address).UnaryAsync(StoreMethods.Stat,
                new StatRequest { Routing = routing, Bucket = bucket, Key = key },
                new CallOptions { Timeout = TailCheckTimeout, CancellationToken = ct });
            return response.Meta?.Version ?? 0;
        }
        catch (RpcException e) when (e.Trailers.TryGetValue(ErrorTrailers.Kind, out string? kind) && kind == ErrorKinds.NoSuchKey)
        {
            return 0;
        }
        catch (RpcException e)
        {
            throw ReadAtTail(routing.ChainId, routing.Epoch, $"the tail {tailId} did not confirm the committed version of '{bucket}/{KeyText(key)}' ({e.Status})");
        }
    }

    private async Task GetAsync(GetRequest request, IStreamWriter<GetResponse> responses, ServerCallContext context)
    {
        ChainReplica replica = await RouteAsync(request.Routing, request.Bucket, request.Key.Memory, Position.Read);
        ObjectMeta meta = await ReadObjectAsync(replica, request.Routing, request.Bucket, request.Key, context.CancellationToken)
            ?? throw NodeErrors.NoSuchKey(request.Bucket, KeyText(request.Key));
        await responses.WriteAsync(new GetResponse { Meta = meta }, context.CancellationToken);
        // A distributed object's chunks live on other chains: the client fetches them itself (GetChunk).
        if (meta.Distributed)
            return;
        ulong start = Math.Min(request.Offset, meta.Size);
        ulong end = request.Length == 0 ? meta.Size : Math.Min(meta.Size, start + request.Length);
        ulong position = 0;
        int index = 0;
        foreach (ChunkRef chunk in meta.Chunks)
        {
            ulong chunkStart = position;
            position += chunk.Size;
            index++;
            if (position <= start || chunkStart >= end)
                continue;
            ChunkRead read = _node.Store.ReadChunkVerified(replica.ChainId, chunk.Sha256.Span);
            if (read.State != ChunkState.Ok || read.Data!.Length != chunk.Size)
            {
                string problem = read.State == ChunkState.Missing ? "missing" : read.Problem ?? "wrong size";
                if (read.State != ChunkState.Missing)
                    _ = _node.Integrity.ReportCorrupt(replica.ChainId, chunk.Sha256.Span, problem);
                throw NodeErrors.Kind(StatusCode.DataLoss, ErrorKinds.CorruptReplica,
                    $"chunk {index - 1} of '{request.Bucket}/{KeyText(request.Key)}' is {problem} on node {_node.NodeId} (being repaired); read another replica");
            }
            int from = (int)(Math.Max(start, chunkStart) - chunkStart);
            int to = (int)(Math.Min(end, position) - chunkStart);
            ByteString data = from == 0 && to == read.Data.Length
                ? UnsafeByteOperations.UnsafeWrap(read.Data)
                : ByteString.CopyFrom(read.Data, from, to - from);
            await responses.WriteAsync(new GetResponse { Data = data }, context.CancellationToken);
        }
    }

    private async Task<StatResponse> StatAsync(StatRequest request, ServerCallContext context)
    {
        ChainReplica replica = await RouteAsync(request.Routing, request.Bucket, request.Key.Memory, Position.Read);
        ObjectMeta meta = await ReadObjectAsync(replica, request.Routing, request.Bucket, request.Key, context.CancellationToken)
            ?? throw NodeErrors.NoSuchKey(request.Bucket, KeyText(request.Key));
        meta.Chunks.Clear();
        return new StatResponse { Meta = meta };
    }

    private async Task<ListResponse> ListAsync(ListRequest request, ServerCallContext context)
    {
        ChainReplica replica = await RouteAsync(request.Routing, request.Bucket, key: null, Position.Read);
        if (request.Prefix.Length > Limits.KeyBytesMax || request.StartAfter.Length > Limits.KeyBytesMax)
            throw NodeErrors.InvalidKey($"prefix and start-after must be at most {Limits.KeyBytesMax} bytes");
        int limit = request.Limit == 0 ? Limits.ListLimitMax : (int)Math.Min(request.Limit, (uint)Limits.ListLimitMax);
        List<ObjectMeta> objects = _node.Store.List(replica.ChainId, request.Bucket, request.Prefix.Span, request.StartAfter.Span, limit, out bool truncated);
        if (!DirtyReadsBreak)
        {
            // A listing spans many objects: a member other than the tail serves it only with nothing unacknowledged.
            if (!replica.IsAllClean)
                throw ReadAtTail(replica.ChainId, request.Routing.Epoch, $"node {_node.NodeId} holds writes the chain has not committed yet");
            RequireReadLease(replica, request.Routing);
        }
        var response = new ListResponse { Truncated = truncated };
        response.Objects.AddRange(objects);
        return response;
    }
}
