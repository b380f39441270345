using System.Collections.Concurrent;
using System.Security.Cryptography;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Chain.Node;

/// <summary>The client API: writes at the head, reads at the tail. Validates everything a client can get wrong.</summary>
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

    private enum Position { Head, Tail }

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
        // Test break: any replica answers reads from whatever it holds, without the tail, lease and promotion checks.
        bool dirtyReads = (_node.Options.TestBreaks & TestBreaks.DirtyReads) != 0;
        if (position == Position.Tail && !dirtyReads)
        {
            if (!role.IsTail)
                throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.NotTail, $"node {_node.NodeId} is not the tail of chain {routing.ChainId}", role.Epoch);
            if (!_node.HasReadLease)
                throw NodeErrors.NotReady($"node {_node.NodeId} holds no read lease from the master; it may have been replaced as tail");
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
            if (chunk.Data.Length == 0 || chunk.Data.Length > Limits.ChunkBytes)
                throw NodeErrors.Invalid($"chunk of {chunk.Data.Length} bytes; chunks must be 1..{Limits.ChunkBytes} bytes");
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
            held = new ChunkWrite { Sha256 = chunk.Sha256, Data = chunk.Data };
        }
        if (commit is null)
            throw NodeErrors.Invalid("put stream ended without a commit; nothing was written");
        if (await stream.MoveNextAsync())
            throw NodeErrors.Invalid("data after the commit");
        if ((long)commit.Size != total)
            throw NodeErrors.Invalid($"commit says {commit.Size} bytes but {total} were sent");
        if (header.DeclaredSize > 0 && (long)header.DeclaredSize != total)
            throw NodeErrors.Invalid($"declared {header.DeclaredSize} bytes but {total} were sent");
        byte[] digest = whole.GetHashAndReset();
        if (!digest.AsSpan().SequenceEqual(commit.Sha256.Span))
            throw NodeErrors.BadDigest("the object's SHA-256 does not match the data sent");

        var meta = new ObjectMeta
        {
            Bucket = header.Bucket,
            Key = header.Key,
            Size = (ulong)total,
            Sha256 = ByteString.CopyFrom(digest),
            CreatedUnixMs = _node.Options.Time.GetUtcNow().ToUnixTimeMilliseconds(),
            ContentType = header.ContentType,
        };
        meta.Chunks.AddRange(chunks);
        meta.UserMetadata.Add(header.UserMetadata);
        bool carry = held is not null && !_node.Store.HasChunk(chainId, held.Sha256.Span);
        PendingUpdate pending = await replica.ProposeAsync(epoch, (seq, e) =>
        {
            meta.Version = seq;
            var write = new ObjectWrite { Meta = meta, RequestId = header.RequestId };
            if (carry)
                write.LastChunk = held;
            return new Update { Seq = seq, Epoch = e, Object = write };
        }, isChunk: carry, ct, condition, () => CheckBucketAcceptsPuts(header.Bucket));
        await WaitCommittedAsync(replica, pending, ct);
        return new DedupRecord(pending.Seq, false);
    }

    /// <summary>
    /// Waits until the whole chain has the write (the tail acknowledged it) — or, under the test break
    /// <see cref="TestBreaks.AckBeforeTail"/>, only until it is durable here at the head.
    /// </summary>
    private Task WaitCommittedAsync(ChainReplica replica, PendingUpdate pending, CancellationToken ct) =>
        (_node.Options.TestBreaks & TestBreaks.AckBeforeTail) != 0
            ? replica.WaitDurableAsync(pending.Seq, ct)
            : pending.Acked.Task.WaitAsync(ct);

    /// <summary>
    /// Proposes one chunk unless this head already holds it: chunks are content-addressed and immutable, and a
    /// chunk the head holds durably precedes, in sequence order, anything proposed now, so every node has it.
    /// </summary>
    private async Task ProposeChunkAsync(ChainReplica replica, ulong epoch, ChunkWrite chunk, CancellationToken ct)
    {
        if (_node.Store.HasChunk(replica.ChainId, chunk.Sha256.Span))
            return;
        await replica.ProposeAsync(epoch, (seq, e) => new Update { Seq = seq, Epoch = e, Chunk = chunk }, isChunk: true, ct);
    }

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
                (seq, e) => new Update { Seq = seq, Epoch = e, Delete = delete }, isChunk: false, context.CancellationToken, condition);
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

    // ---------------- reads (tail) ----------------

    private async Task GetAsync(GetRequest request, IStreamWriter<GetResponse> responses, ServerCallContext context)
    {
        ChainReplica replica = await RouteAsync(request.Routing, request.Bucket, request.Key.Memory, Position.Tail);
        ObjectMeta meta = _node.Store.GetObject(replica.ChainId, request.Bucket, request.Key.Span)
            ?? throw NodeErrors.NoSuchKey(request.Bucket, KeyText(request.Key));
        await responses.WriteAsync(new GetResponse { Meta = meta }, context.CancellationToken);
        int index = 0;
        foreach (ChunkRef chunk in meta.Chunks)
        {
            byte[] data = _node.Store.GetChunk(replica.ChainId, chunk.Sha256.Span)
                ?? throw new RpcException(StatusCode.DataLoss, $"chunk {index} of '{request.Bucket}/{KeyText(request.Key)}' is missing on node {_node.NodeId}");
            if (data.Length != chunk.Size || !Digests.Matches(data, chunk.Sha256.Span))
            {
                _log.LogError("chunk {Index} of {Bucket}/{Key} failed verification on this node", index, request.Bucket, KeyText(request.Key));
                throw new RpcException(StatusCode.DataLoss, $"chunk {index} of '{request.Bucket}/{KeyText(request.Key)}' failed verification on node {_node.NodeId}");
            }
            await responses.WriteAsync(new GetResponse { Data = ByteString.CopyFrom(data) }, context.CancellationToken);
            index++;
        }
    }

    private async Task<StatResponse> StatAsync(StatRequest request, ServerCallContext context)
    {
        ChainReplica replica = await RouteAsync(request.Routing, request.Bucket, request.Key.Memory, Position.Tail);
        ObjectMeta meta = _node.Store.GetObject(replica.ChainId, request.Bucket, request.Key.Span)
            ?? throw NodeErrors.NoSuchKey(request.Bucket, KeyText(request.Key));
        meta.Chunks.Clear();
        return new StatResponse { Meta = meta };
    }

    private async Task<ListResponse> ListAsync(ListRequest request, ServerCallContext context)
    {
        ChainReplica replica = await RouteAsync(request.Routing, request.Bucket, key: null, Position.Tail);
        if (request.Prefix.Length > Limits.KeyBytesMax || request.StartAfter.Length > Limits.KeyBytesMax)
            throw NodeErrors.InvalidKey($"prefix and start-after must be at most {Limits.KeyBytesMax} bytes");
        int limit = request.Limit == 0 ? Limits.ListLimitMax : (int)Math.Min(request.Limit, (uint)Limits.ListLimitMax);
        List<ObjectMeta> objects = _node.Store.List(replica.ChainId, request.Bucket, request.Prefix.Span, request.StartAfter.Span, limit, out bool truncated);
        var response = new ListResponse { Truncated = truncated };
        response.Objects.AddRange(objects);
        return response;
    }
}
