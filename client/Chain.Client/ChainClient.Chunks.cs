using System.Security.Cryptography;
using Chain.Client.Internal;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;
using ChunkSource = Chain.Client.Internal.ChunkSource;

namespace Chain.Client;

/// <summary>
/// Large objects: content is cut into chunks of <see cref="ChainClientOptions.ChunkBytes"/>, each named by its SHA-256
/// and stored on the chain that id picks (<see cref="Placement.ChainForChunk"/>) with several uploads in flight; then
/// a manifest is committed on the key's chain. Reads fetch the chunks from any replica of their chains, verify each,
/// and the whole object's digest. Memory stays at a few chunks whatever the object's size.
/// </summary>
public sealed partial class ChainClient
{
    /// <summary>Rounds of uploading a large object when its commit finds chunks missing (collected meanwhile).</summary>
    private const int UploadRoundsMax = 2;

    private async Task<PutResult> PutDistributedAsync(string bucket, string key, byte[] keyBytes, ChunkSource source, PutOptions options,
        ByteString requestId, CancellationToken cancellationToken)
    {
        for (int round = 1; ; round++)
        {
            if (round > 1 && !source.TryRewind())
            {
                throw new ChainUnavailableException(
                    $"put of '{bucket}/{key}': chunks went missing before the commit, and the source stream cannot be rewound to upload them again");
            }
            var upload = await UploadChunksAsync(bucket, key, source, options.Progress, touchFirst: round > 1, cancellationToken).ConfigureAwait(false);
            try
            {
                return await CommitManifestAsync(bucket, key, keyBytes, requestId, upload, options, cancellationToken).ConfigureAwait(false);
            }
            catch (MissingChunkException) when (round < UploadRoundsMax)
            {
                // Collected between upload and commit (a very slow upload): touch what is there, send what is not.
            }
        }
    }

    private sealed record Upload(List<ChunkRef> Chunks, long Size, byte[] Sha256);

    /// <summary>Uploads every chunk of the source, at most <see cref="ChainClientOptions.UploadParallelism"/> at a time.</summary>
    /// <remarks><paramref name="alsoHash"/>, when given, is fed every byte in order too (a multipart part's MD5).</remarks>
    private async Task<Upload> UploadChunksAsync(string bucket, string key, ChunkSource source, IProgress<long>? progress, bool touchFirst,
        CancellationToken cancellationToken, IncrementalHash? alsoHash = null)
    {
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var window = new SemaphoreSlim(_options.UploadParallelism, _options.UploadParallelism);
        using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var chunks = new List<ChunkRef>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var running = new List<Task>();
        var progressLock = new object();
        long total = 0;
        long done = 0;
        progress?.Report(0);

        async Task UploadOneAsync(byte[] sha, ReadOnlyMemory<byte> data)
        {
            try
            {
                await PutChunkAsync(bucket, key, sha, data, touchFirst, failed.Token).ConfigureAwait(false);
                lock (progressLock)
                {
                    done += data.Length;
                    progress?.Report(done);
                }
            }
            catch
            {
                failed.Cancel();
                throw;
            }
            finally
            {
                window.Release();
            }
        }

        try
        {
            while (true)
            {
                var chunk = await source.ReadChunkAsync(failed.Token).ConfigureAwait(false);
                if (chunk.IsEmpty)
                    break;
                whole.AppendData(chunk.Span);
                alsoHash?.AppendData(chunk.Span);
                byte[] sha = SHA256.HashData(chunk.Span);
                chunks.Add(new ChunkRef { Sha256 = UnsafeByteOperations.UnsafeWrap(sha), Size = (uint)chunk.Length });
                total += chunk.Length;
                if (chunks.Count > Limits.ManifestChunksMax)
                    throw new ObjectTooLargeException($"'{bucket}/{key}' has more than {Limits.ManifestChunksMax} chunks of {source.ChunkBytes} bytes");
                if (!seen.Add(Convert.ToBase64String(sha)))
                {
                    lock (progressLock)
                    {
                        done += chunk.Length;
                        progress?.Report(done);
                    }
                    continue; // a repeated chunk of this object is stored once
                }
                await window.WaitAsync(failed.Token).ConfigureAwait(false);
                running.RemoveAll(t => t.IsCompletedSuccessfully);
                running.Add(UploadOneAsync(sha, chunk));
            }
            await Task.WhenAll(running).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && running.FirstOrDefault(t => t.IsFaulted) is { } first)
        {
            // Another upload failed first: surface its error, not the cancellation it caused.
            await first.ConfigureAwait(false);
            throw;
        }
        return new Upload(chunks, total, whole.GetHashAndReset());
    }

    /// <summary>
    /// Stores one chunk on the head of its chain (with <paramref name="touchFirst"/>, only touches it when the chain holds
    /// it). <paramref name="data"/> null: touch only, and a chunk the chain lacks is an <see cref="IntegrityException"/>.
    /// </summary>
    private Task PutChunkAsync(string bucket, string key, byte[] sha, ReadOnlyMemory<byte>? data, bool touchFirst, CancellationToken cancellationToken) =>
        _retry.RunAsync("put chunk", async (state, ct) =>
        {
            var snapshot = await _config.GetAsync(fresh: false, ct).ConfigureAwait(false);
            state.ConfigVersion = snapshot.Version;
            var route = snapshot.RouteChain(Placement.ChainForChunk(sha, snapshot.ChainCount), write: true);
            var caller = _transport.For(route.Address);
            var callOptions = new CallOptions { Timeout = ChunkAttemptTimeout(data?.Length ?? 0), CancellationToken = ct };
            var id = UnsafeByteOperations.UnsafeWrap(sha);
            if (touchFirst || data is null)
            {
                var touched = await caller.UnaryAsync(StoreMethods.PutChunk, new PutChunkRequest { Routing = Routing(route), Sha256 = id }, callOptions)
                    .ConfigureAwait(false);
                if (touched.Present)
                    return true;
                if (data is null)
                    throw new IntegrityException($"'{bucket}/{key}': chunk {Convert.ToHexStringLower(sha)} is gone from chain {route.ChainId}");
            }
            var request = new PutChunkRequest { Routing = Routing(route), Sha256 = id, Data = UnsafeByteOperations.UnsafeWrap(data.Value) };
            var response = await caller.UnaryAsync(StoreMethods.PutChunk, request, callOptions).ConfigureAwait(false);
            if (!response.Present)
                throw new ChainException($"protocol error: node '{route.NodeId}' accepted chunk {Convert.ToHexStringLower(sha)} but does not hold it");
            return true;
        }, cancellationToken, bucket, key);

    private TimeSpan ChunkAttemptTimeout(long bytes)
    {
        var transfer = TransferTime(bytes);
        return transfer > _options.AttemptTimeout ? transfer : _options.AttemptTimeout;
    }

    private Task<PutResult> CommitManifestAsync(string bucket, string key, byte[] keyBytes, ByteString requestId, Upload upload, PutOptions options,
        CancellationToken cancellationToken)
    {
        var keyString = UnsafeByteOperations.UnsafeWrap(keyBytes);
        var commit = new PutCommit { Size = (ulong)upload.Size, Sha256 = UnsafeByteOperations.UnsafeWrap(upload.Sha256) };
        commit.Chunks.AddRange(upload.Chunks);
        return _retry.RunAsync("put", async (state, ct) =>
        {
            var route = await RouteAsync(state, bucket, keyBytes, write: true, ct).ConfigureAwait(false);
            var header = PutHeaderFor(route, bucket, keyString, requestId, upload.Size, options);
            using var call = _transport.For(route.Address).ClientStreaming(StoreMethods.Put, new CallOptions { Timeout = state.Deadline.Remaining, CancellationToken = ct });
            try
            {
                await WriteAsync(call, new PutRequest { Header = header }, ct).ConfigureAwait(false);
                await WriteAsync(call, new PutRequest { Commit = commit }, ct).ConfigureAwait(false);
                await CompleteAsync(call, ct).ConfigureAwait(false);
                var response = await call.ResponseAsync.WaitAsync(ct).ConfigureAwait(false);
                return new PutResult(bucket, key, upload.Size, Convert.ToHexStringLower(upload.Sha256), response.Version, response.Deduplicated);
            }
            finally
            {
                Observe(call.ResponseAsync);
            }
        }, cancellationToken, bucket, key);
    }

    // ------------------------------------------------------------------ reads of distributed objects

    /// <summary>
    /// Writes bytes [offset, end) of a distributed object to the destination: its chunks fetched from any replica of
    /// their chains, several ahead, each verified against its id; the whole object's SHA-256 when it is read whole.
    /// </summary>
    private async Task ReadDistributedAsync(string bucket, string key, ObjectMeta meta, Stream destination, long offset, long end,
        IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var digest = await ReadChunksAsync(bucket, key, meta.Chunks, (long)meta.Size, destination, offset, end, progress, cancellationToken).ConfigureAwait(false);
        if (digest is not null && !digest.AsSpan().SequenceEqual(meta.Sha256.Span))
        {
            throw new IntegrityException(
                $"'{bucket}/{key}': SHA-256 of the received data is {Convert.ToHexStringLower(digest)}, but the object's is {Convert.ToHexStringLower(meta.Sha256.Span)}");
        }
    }

    /// <summary>
    /// Writes bytes [offset, end) of the content made of <paramref name="chunks"/> (in order; of any sizes, each verified
    /// against its id) to the destination; returns the SHA-256 of the whole content when the range is all of it, else null.
    /// </summary>
    private async Task<byte[]?> ReadChunksAsync(string bucket, string key, IReadOnlyList<ChunkRef> chunks, long size, Stream destination, long offset,
        long end, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        bool whole = offset == 0 && end == size;
        using var hash = whole ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
        var wanted = new List<(ChunkRef Chunk, long Start)>();
        long position = 0;
        foreach (var chunk in chunks)
        {
            if (position + chunk.Size > offset && position < end)
                wanted.Add((chunk, position));
            position += chunk.Size;
        }
        if (position != size)
            throw new IntegrityException($"'{bucket}/{key}': its chunks add up to {position} bytes, but the object has {size}");

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ahead = new Queue<Task<ReadOnlyMemory<byte>>>();
        int next = 0;
        long written = 0;
        try
        {
            for (int i = 0; i < wanted.Count; i++)
            {
                while (next < wanted.Count && ahead.Count < _options.DownloadParallelism)
                    ahead.Enqueue(FetchChunkAsync(bucket, key, wanted[next++].Chunk, stop.Token));
                var data = await ahead.Dequeue().ConfigureAwait(false);
                long start = wanted[i].Start;
                int from = (int)(Math.Max(offset, start) - start);
                int to = (int)(Math.Min(end, start + data.Length) - start);
                var slice = data[from..to];
                hash?.AppendData(slice.Span);
                await destination.WriteAsync(slice, cancellationToken).ConfigureAwait(false);
                written += slice.Length;
                progress?.Report(written);
            }
        }
        finally
        {
            stop.Cancel();
            foreach (var task in ahead)
                Observe(task);
        }
        return hash?.GetHashAndReset();
    }

    /// <summary>
    /// One whole chunk from some replica of its chain (random order, spreading the load); a replica whose copy is
    /// missing, damaged (it repairs itself) or does not match the id is skipped for the next one.
    /// </summary>
    private Task<ReadOnlyMemory<byte>> FetchChunkAsync(string bucket, string key, ChunkRef chunk, CancellationToken cancellationToken) =>
        _retry.RunAsync("get chunk", async (state, ct) =>
        {
            var snapshot = await _config.GetAsync(fresh: false, ct).ConfigureAwait(false);
            state.ConfigVersion = snapshot.Version;
            uint chainId = Placement.ChainForChunk(chunk.Sha256.Span, snapshot.ChainCount);
            var members = ChainMembers(snapshot, chainId);
            if (members.Count == 0)
                throw new ClusterNotReadyException($"chain {chainId} has no reachable members in config version {snapshot.Version}");
            Exception? retryable = null;
            int missing = 0;
            foreach (var address in members)
            {
                try
                {
                    var response = await _transport.For(address).UnaryAsync(StoreMethods.GetChunk,
                        new GetChunkRequest { ChainId = chainId, Sha256 = chunk.Sha256 },
                        new CallOptions { Timeout = ChunkAttemptTimeout(chunk.Size), CancellationToken = ct }).ConfigureAwait(false);
                    var data = response.Data.Memory;
                    if (data.Length == chunk.Size && SHA256.HashData(data.Span).AsSpan().SequenceEqual(chunk.Sha256.Span))
                        return data;
                    retryable = new RpcException(StatusCode.DataLoss, $"node at {address} sent chunk data that does not match its SHA-256");
                }
                catch (RpcException e) when (e.Trailers.TryGetValue(ErrorTrailers.Kind, out var kind) && kind == ErrorKinds.MissingChunk)
                {
                    missing++;
                }
                catch (RpcException e)
                {
                    retryable = e;
                }
            }
            if (retryable is null)
                throw new IntegrityException(
                    $"'{bucket}/{key}': chunk {Convert.ToHexStringLower(chunk.Sha256.Span)} is missing on every replica of chain {chainId} ({missing} asked)");
            throw retryable;
        }, cancellationToken, bucket, key);

    private static List<Uri> ChainMembers(ClusterSnapshot snapshot, uint chainId)
    {
        var chain = snapshot.Config.Chains.FirstOrDefault(c => c.ChainId == chainId);
        var result = new List<Uri>();
        if (chain is null)
            return result;
        foreach (string nodeId in chain.Nodes)
        {
            var address = snapshot.Config.Nodes.FirstOrDefault(n => n.Node?.NodeId == nodeId)?.Node.Address;
            if (address is not null && Uri.TryCreate(address, UriKind.Absolute, out var uri))
                result.Add(uri);
        }
        Random.Shared.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(result));
        return result;
    }
}

/// <summary>A manifest commit named chunks their chains do not hold (internal: the put uploads them again).</summary>
internal sealed class MissingChunkException(string message) : ChainException(message);
