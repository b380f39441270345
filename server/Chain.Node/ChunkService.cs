using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Chain.Storage;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Chain.Node;

/// <summary>
/// Chunks of distributed (large) objects: <c>PutChunk</c> at the head of the chunk's chain, <c>GetChunk</c> from any
/// node holding it, and the garbage-collection and integrity calls of the Admin service.
/// </summary>
internal sealed class ChunkService
{
    /// <summary>Most chunk ids one HasChunks / SweepChunks call may carry.</summary>
    public const int IdsPerCallMax = 10_000;
    private const int PageMax = 10_000;

    private readonly StorageNode _node;
    private readonly ILogger _log;

    public ChunkService(StorageNode node, ILogger log)
    {
        _node = node;
        _log = log;
    }

    public void Register(RpcServiceRegistry registry)
    {
        registry.AddUnary(StoreMethods.PutChunk, PutChunkAsync);
        registry.AddUnary(StoreMethods.GetChunk, GetChunkAsync);
        registry.AddUnary(AdminMethods.ChunkRefs, ChunkRefsAsync);
        registry.AddUnary(AdminMethods.ListChunks, ListChunksAsync);
        registry.AddUnary(AdminMethods.SweepChunks, SweepChunksAsync);
        registry.AddUnary(AdminMethods.HasChunks, HasChunksAsync);
        registry.AddUnary(AdminMethods.Scrub, (_, c) => _node.Integrity.ScrubAsync(c.CancellationToken));
        registry.AddUnary(AdminMethods.Health, (_, _) => Task.FromResult(_node.Integrity.Health()));
    }

    private ulong NowMs => (ulong)_node.Options.Time.GetUtcNow().ToUnixTimeMilliseconds();

    private static void CheckId(ByteString sha256)
    {
        if (sha256.Length != 32)
            throw NodeErrors.Invalid($"a chunk id is a 32-byte SHA-256, got {sha256.Length} bytes");
    }

    /// <summary>The replica of a chain where this node is a member at the caller's epoch, in the given position.</summary>
    internal static async Task<ChainReplica> MemberAsync(StorageNode node, uint chainId, ulong epoch, bool head, bool tail)
    {
        ClusterConfig config = node.Config ?? throw NodeErrors.NotReady($"node {node.NodeId} has no chain table yet");
        if (!node.HasFreshConfig)
            throw NodeErrors.NotReady($"node {node.NodeId} has not heard from the master since it started");
        if (chainId >= config.Chains.Count)
            throw NodeErrors.StaleEpoch(chainId, epoch, 0);
        ChainReplica? replica = node.GetReplica(chainId);
        if (replica is not null && epoch > replica.Role.Epoch)
        {
            await node.RefreshConfigAsync();
            replica = node.GetReplica(chainId);
        }
        string kind = head ? ErrorKinds.NotHead : ErrorKinds.NotTail;
        if (replica is null)
            throw NodeErrors.Kind(StatusCode.FailedPrecondition, kind, $"node {node.NodeId} is not in chain {chainId}", config.Chains[(int)chainId].Epoch);
        ChainRole role = replica.Role;
        if (role.Epoch != epoch)
            throw NodeErrors.StaleEpoch(chainId, epoch, role.Epoch);
        if (head && !role.IsHead)
            throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.NotHead, $"node {node.NodeId} is not the head of chain {chainId}", role.Epoch);
        if (tail && !role.IsTail)
            throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.NotTail, $"node {node.NodeId} is not the tail of chain {chainId}", role.Epoch);
        return replica;
    }

    // ---------------- data path ----------------

    private async Task<PutChunkResponse> PutChunkAsync(PutChunkRequest request, ServerCallContext context)
    {
        if (request.Routing is null)
            throw NodeErrors.Invalid("request carries no routing (chain id and epoch)");
        CheckId(request.Sha256);
        if (request.Data.Length > Limits.ChunkBytesMax)
            throw NodeErrors.TooLarge($"chunk of {request.Data.Length} bytes exceeds the maximum of {Limits.ChunkBytesMax} bytes");
        if (!request.Data.IsEmpty && !Digests.Matches(request.Data.Span, request.Sha256.Span))
            throw NodeErrors.BadDigest("chunk data does not match its SHA-256");
        ChainReplica replica = await MemberAsync(_node, request.Routing.ChainId, request.Routing.Epoch, head: true, tail: false);
        int chains = _node.Config!.Chains.Count;
        if (Placement.ChainForChunk(request.Sha256.Span, chains) != request.Routing.ChainId)
            throw NodeErrors.StaleEpoch(request.Routing.ChainId, request.Routing.Epoch, replica.Role.Epoch);

        uint chainId = replica.ChainId;
        bool existed = _node.Store.HasChunk(chainId, request.Sha256.Span);
        if (request.Data.IsEmpty && !existed)
            return new PutChunkResponse { Present = false };
        // A chunk the chain holds is only touched: its data is not replicated again.
        bool present = existed && await ProposeChunkAsync(replica, request, touchOnly: true, context.CancellationToken);
        // A collection sequenced just before the touch may have dropped the chunk: then its data is needed after all.
        if (!present && !request.Data.IsEmpty)
            present = await ProposeChunkAsync(replica, request, touchOnly: false, context.CancellationToken);
        return new PutChunkResponse { Present = present, Existed = existed };
    }

    /// <summary>Sequences a chunk write (or touch), waits until the whole chain has it, and says whether the chain holds the chunk.</summary>
    private async Task<bool> ProposeChunkAsync(ChainReplica replica, PutChunkRequest request, bool touchOnly, CancellationToken ct)
    {
        var write = touchOnly
            ? new ChunkWrite { Sha256 = request.Sha256, TouchedUnixMs = NowMs, TouchOnly = true }
            : new ChunkWrite { Sha256 = request.Sha256, Data = request.Data, TouchedUnixMs = NowMs };
        PendingUpdate pending = await replica.ProposeAsync(request.Routing.Epoch, (seq, e) => new Update { Seq = seq, Epoch = e, Chunk = write },
            write.Data.Length, ct);
        await pending.Acked.Task.WaitAsync(ct);
        return _node.Store.HasChunk(replica.ChainId, request.Sha256.Span);
    }

    private Task<GetChunkResponse> GetChunkAsync(GetChunkRequest request, ServerCallContext context)
    {
        CheckId(request.Sha256);
        ChunkRead read = _node.Store.ReadChunkVerified(request.ChainId, request.Sha256.Span);
        switch (read.State)
        {
            case ChunkState.Missing:
                throw NodeErrors.Kind(StatusCode.NotFound, ErrorKinds.MissingChunk,
                    $"node {_node.NodeId} holds no chunk {Convert.ToHexStringLower(request.Sha256.Span)} under chain {request.ChainId}");
            case ChunkState.Corrupt:
                _ = _node.Integrity.ReportCorrupt(request.ChainId, request.Sha256.Span, read.Problem ?? "failed verification");
                throw NodeErrors.Kind(StatusCode.DataLoss, ErrorKinds.CorruptReplica,
                    $"chunk {Convert.ToHexStringLower(request.Sha256.Span)} failed verification on node {_node.NodeId} (being repaired); read another replica");
        }
        byte[] data = read.Data!;
        if (request.Offset > (ulong)data.Length)
            throw NodeErrors.Invalid($"offset {request.Offset} is past the end of the {data.Length}-byte chunk");
        int offset = (int)request.Offset;
        int length = request.Length == 0 ? data.Length - offset : (int)Math.Min(request.Length, (ulong)(data.Length - offset));
        ByteString slice = offset == 0 && length == data.Length
            ? UnsafeByteOperations.UnsafeWrap(data)
            : ByteString.CopyFrom(data, offset, length);
        return Task.FromResult(new GetChunkResponse { Data = slice, ChunkSize = (uint)data.Length });
    }

    // ---------------- garbage collection ----------------

    /// <summary>Tail: the chunk ids the chain's committed object records reference, a page of records at a time.</summary>
    private async Task<ChunkRefsResponse> ChunkRefsAsync(ChunkRefsRequest request, ServerCallContext context)
    {
        ChainReplica replica = await MemberAsync(_node, request.ChainId, request.Epoch, head: false, tail: true);
        int limit = request.Limit == 0 ? 1000 : (int)Math.Min(request.Limit, PageMax);
        byte[] prefix = NodeStore.ChainPrefix(replica.ChainId);
        var response = new ChunkRefsResponse();
        using IKvIterator it = _node.Store.Engine.Iterate(NodeStore.Objects, prefix, KvKeys.PrefixUpperBound(prefix));
        if (request.After.IsEmpty)
            it.SeekToFirst();
        else
        {
            if (!request.After.Span.StartsWith(prefix))
                throw NodeErrors.Invalid("resume key belongs to another chain");
            it.Seek(request.After.ToByteArray());
            if (it.Valid && it.Key.SequenceEqual(request.After.Span))
                it.Next();
        }
        int records = 0;
        byte[]? last = null;
        for (; it.Valid && records < limit; it.Next(), records++)
        {
            ObjectMeta meta = ObjectMeta.Parser.ParseFrom(it.Value);
            foreach (ChunkRef chunk in meta.Chunks)
                response.Sha256.Add(chunk.Sha256);
            last = it.Key.ToArray();
        }
        if (it.Valid && last is not null)
            response.NextAfter = ByteString.CopyFrom(last);
        return response;
    }

    /// <summary>Head: the chunks stored under the chain with their last-touch times, in id order.</summary>
    private async Task<ListChunksResponse> ListChunksAsync(ListChunksRequest request, ServerCallContext context)
    {
        ChainReplica replica = await MemberAsync(_node, request.ChainId, request.Epoch, head: true, tail: false);
        int limit = request.Limit == 0 ? 1000 : (int)Math.Min(request.Limit, PageMax);
        byte[] prefix = NodeStore.ChainPrefix(replica.ChainId);
        var response = new ListChunksResponse();
        using IKvIterator it = _node.Store.Engine.Iterate(NodeStore.ChunkInfo, prefix, KvKeys.PrefixUpperBound(prefix));
        if (request.After.IsEmpty)
            it.SeekToFirst();
        else
        {
            byte[] after = NodeStore.ChunkKey(replica.ChainId, request.After.Span);
            it.Seek(after);
            if (it.Valid && it.Key.SequenceEqual(after))
                it.Next();
        }
        for (; it.Valid; it.Next())
        {
            if (response.Chunks.Count == limit)
            {
                response.Truncated = true;
                break;
            }
            ChunkInfoRecord? info = ChunkInfoRecord.Decode(it.Value);
            response.Chunks.Add(new ChunkEntry
            {
                Sha256 = ByteString.CopyFrom(it.Key[4..]),
                TouchedUnixMs = info?.TouchedUnixMs ?? 0,
                Size = info?.Size ?? 0,
            });
        }
        return response;
    }

    /// <summary>
    /// Head: drops the listed chunks that are older than the node's grace plus the age of the caller's mark phase.
    /// The decision is replicated (ChunkDelete) and made on every node in sequence order, so a touch sequenced
    /// before it saves the chunk everywhere.
    /// </summary>
    private async Task<SweepChunksResponse> SweepChunksAsync(SweepChunksRequest request, ServerCallContext context)
    {
        if (request.Sha256.Count > IdsPerCallMax)
            throw NodeErrors.Invalid($"at most {IdsPerCallMax} chunk ids per call");
        foreach (ByteString id in request.Sha256)
            CheckId(id);
        ChainReplica replica = await MemberAsync(_node, request.ChainId, request.Epoch, head: true, tail: false);
        ulong spare = (ulong)_node.Options.ChunkGcGrace.TotalMilliseconds + request.MarkAgeMs;
        ulong now = NowMs;
        ulong olderThan = now > spare ? now - spare : 0;
        var response = new SweepChunksResponse { OlderThanUnixMs = olderThan };
        if (request.Sha256.Count == 0 || olderThan == 0)
            return response;
        int before = request.Sha256.Count(id => _node.Store.HasChunk(replica.ChainId, id.Span));
        var delete = new ChunkDelete { OlderThanUnixMs = olderThan };
        delete.Sha256.AddRange(request.Sha256);
        PendingUpdate pending = await replica.ProposeAsync(request.Epoch, (seq, e) => new Update { Seq = seq, Epoch = e, ChunkDelete = delete },
            0, context.CancellationToken);
        await pending.Acked.Task.WaitAsync(context.CancellationToken);
        int after = request.Sha256.Count(id => _node.Store.HasChunk(replica.ChainId, id.Span));
        response.Deleted = (uint)Math.Max(0, before - after);
        if (response.Deleted > 0)
            _log.LogInformation("chain {Chain}: garbage collection dropped {Count} chunks", replica.ChainId, response.Deleted);
        return response;
    }

    /// <summary>Head: the last-touch time of each listed chunk (0 when the chain does not hold it).</summary>
    private async Task<HasChunksResponse> HasChunksAsync(HasChunksRequest request, ServerCallContext context)
    {
        if (request.Sha256.Count > IdsPerCallMax)
            throw NodeErrors.Invalid($"at most {IdsPerCallMax} chunk ids per call");
        ChainReplica replica = await MemberAsync(_node, request.ChainId, request.Epoch, head: true, tail: false);
        var response = new HasChunksResponse();
        foreach (ByteString id in request.Sha256)
        {
            CheckId(id);
            response.TouchedUnixMs.Add(_node.Store.GetChunkInfo(replica.ChainId, id.Span)?.TouchedUnixMs ?? 0);
        }
        return response;
    }
}
