using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Chain.Client.Internal;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;
using ChunkSource = Chain.Client.Internal.ChunkSource;

[assembly: InternalsVisibleTo("Chain.Client.Tests")]

namespace Chain.Client;

/// <summary>
/// Client of a Chain cluster. Thread-safe; keep one per process and reuse it. Routes each key to its chain (writes to
/// the head, reads to any member or the tail, see <see cref="ChainClientOptions.ReadFrom"/>) from a cached configuration of the master, refreshes that configuration when a node
/// says it is stale, and retries transient failures within <see cref="ChainClientOptions.OperationTimeout"/> and
/// <see cref="ChainClientOptions.MaxAttempts"/>.
/// </summary>
public sealed partial class ChainClient : IAsyncDisposable, IDisposable
{
    /// <summary>Streams get at least this throughput's worth of time: max(OperationTimeout, size / rate).</summary>
    internal const double StreamBytesPerSecond = 10_000_000;

    private readonly ChainClientOptions _options;
    private readonly IRpcTransport _transport;
    private readonly CancellationTokenSource _shutdown = new();
    private readonly ConfigCache _config;
    private readonly RetryRunner _retry;
    private int _disposed;

    public ChainClient(ChainClientOptions options) : this(options, new RpcChannelTransport())
    {
    }

    internal ChainClient(ChainClientOptions options, IRpcTransport transport)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Master, nameof(options.Master));
        ArgumentNullException.ThrowIfNull(transport);
        if (!options.Master.IsAbsoluteUri)
            throw new ArgumentException($"the master address '{options.Master}' must be an absolute URI", nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.OperationTimeout, TimeSpan.Zero, nameof(options.OperationTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.AttemptTimeout, TimeSpan.Zero, nameof(options.AttemptTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ChunkBytes, Limits.ChunkBytesMin, nameof(options.ChunkBytes));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.ChunkBytes, Limits.ChunkBytesMax, nameof(options.ChunkBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.UploadParallelism, 1, nameof(options.UploadParallelism));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.UploadParallelism, 64, nameof(options.UploadParallelism));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.DownloadParallelism, 1, nameof(options.DownloadParallelism));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.DownloadParallelism, 64, nameof(options.DownloadParallelism));
        _options = options;
        _transport = transport;
        _config = new ConfigCache(FetchConfigAsync, _shutdown.Token);
        _retry = new RetryRunner(options, _config.Invalidate, _shutdown.Token);
    }

    // ------------------------------------------------------------------ objects

    public Task<PutResult> PutAsync(string bucket, string key, Stream content, PutOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        var keyBytes = CheckObjectArgs(bucket, key);
        return PutCoreAsync(bucket, key, keyBytes, ChunkSource.For(content, _options.ChunkBytes), options ?? DefaultPutOptions, cancellationToken);
    }

    public Task<PutResult> PutAsync(string bucket, string key, ReadOnlyMemory<byte> content, PutOptions? options = null, CancellationToken cancellationToken = default)
    {
        var keyBytes = CheckObjectArgs(bucket, key);
        return PutCoreAsync(bucket, key, keyBytes, ChunkSource.For(content, _options.ChunkBytes), options ?? DefaultPutOptions, cancellationToken);
    }

    public Task<ObjectInfo> GetAsync(string bucket, string key, Stream destination, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (!destination.CanWrite)
            throw new ArgumentException("the destination stream is not writable", nameof(destination));
        var keyBytes = CheckObjectArgs(bucket, key);
        return GetCoreAsync(bucket, key, keyBytes, destination, 0, null, progress, cancellationToken);
    }

    /// <summary>
    /// Writes bytes [<paramref name="offset"/>, offset + <paramref name="length"/>) of the object (to its end when
    /// length is null; clipped at the end) to the destination. Every chunk the range touches is verified; the whole
    /// object's SHA-256 only when the range is the whole object. An offset past the end fails with
    /// <see cref="ChainArgumentException"/>.
    /// </summary>
    public Task<ObjectInfo> GetRangeAsync(string bucket, string key, Stream destination, long offset, long? length, IProgress<long>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (length is < 0)
            throw new ArgumentOutOfRangeException(nameof(length), "length must not be negative");
        if (!destination.CanWrite)
            throw new ArgumentException("the destination stream is not writable", nameof(destination));
        var keyBytes = CheckObjectArgs(bucket, key);
        return GetCoreAsync(bucket, key, keyBytes, destination, offset, length, progress, cancellationToken);
    }

    public async Task<byte[]> GetBytesAsync(string bucket, string key, CancellationToken cancellationToken = default)
    {
        using var buffer = new MemoryStream();
        await GetAsync(bucket, key, buffer, null, cancellationToken).ConfigureAwait(false);
        return buffer.ToArray();
    }

    public Task<ObjectInfo> StatAsync(string bucket, string key, CancellationToken cancellationToken = default)
    {
        var keyBytes = CheckObjectArgs(bucket, key);
        var keyString = UnsafeByteOperations.UnsafeWrap(keyBytes);
        return _retry.RunAsync("stat", async (state, ct) =>
        {
            var route = await RouteAsync(state, bucket, keyBytes, write: false, ct).ConfigureAwait(false);
            var request = new StatRequest { Routing = Routing(route), Bucket = bucket, Key = keyString };
            var response = await _transport.For(route.Address)
                .UnaryAsync(StoreMethods.Stat, request, UnaryOptions(ct)).ConfigureAwait(false);
            if (response.Meta is null)
                throw new ChainException($"protocol error: node '{route.NodeId}' answered stat without metadata");
            return ToObjectInfo(response.Meta, bucket, key);
        }, cancellationToken, bucket, key);
    }

    public Task<bool> DeleteAsync(string bucket, string key, CancellationToken cancellationToken = default) =>
        DeleteAsync(bucket, key, ifVersion: null, cancellationToken);

    /// <summary>
    /// Deletes the object; true if it existed. With <paramref name="ifVersion"/>, only if it exists with exactly that
    /// version, else <see cref="PreconditionFailedException"/>.
    /// </summary>
    public Task<bool> DeleteAsync(string bucket, string key, ulong? ifVersion, CancellationToken cancellationToken = default)
    {
        var keyBytes = CheckObjectArgs(bucket, key);
        if (ifVersion == 0)
            throw new ArgumentOutOfRangeException(nameof(ifVersion), "versions start at 1");
        return DeleteCoreAsync(bucket, key, keyBytes, ifVersion, cancellationToken);
    }

    private Task<bool> DeleteCoreAsync(string bucket, string key, byte[] keyBytes, ulong? ifVersion, CancellationToken cancellationToken)
    {
        var keyString = UnsafeByteOperations.UnsafeWrap(keyBytes);
        var requestId = NewRequestId(); // once per logical delete: the head deduplicates retries by it
        return _retry.RunAsync("delete", async (state, ct) =>
        {
            var route = await RouteAsync(state, bucket, keyBytes, write: true, ct).ConfigureAwait(false);
            var request = new DeleteRequest { Routing = Routing(route), Bucket = bucket, Key = keyString, RequestId = requestId };
            if (ifVersion is { } version)
                request.IfVersion = version;
            var response = await _transport.For(route.Address)
                .UnaryAsync(StoreMethods.Delete, request, UnaryOptions(ct)).ConfigureAwait(false);
            return response.Existed;
        }, cancellationToken, bucket, key);
    }

    /// <summary>
    /// Lists a bucket's objects whose keys start with <paramref name="prefix"/> and sort after
    /// <paramref name="startAfter"/>, in key order (unsigned bytes of the UTF-8 key), merged from all chains page by page.
    /// </summary>
    public IAsyncEnumerable<ObjectInfo> ListAsync(string bucket, string prefix = "", string? startAfter = null, CancellationToken cancellationToken = default)
    {
        CheckNotDisposed();
        CheckBucketName(bucket);
        var prefixBytes = EncodeListBound(prefix ?? "", "prefix");
        var startAfterBytes = EncodeListBound(startAfter ?? "", "start-after key");
        return ListCoreAsync(bucket, prefixBytes, startAfterBytes, cancellationToken);
    }

    /// <summary>
    /// One page of a bucket's listing, like S3's ListObjectsV2: up to <see cref="ListRequestOptions.MaxKeys"/> entries in
    /// key order, where keys that contain the delimiter after the prefix roll up into common prefixes (one entry each).
    /// Pass <see cref="ListPage.NextContinuationToken"/> back to get the next page.
    /// </summary>
    public async Task<ListPage> ListPageAsync(string bucket, ListRequestOptions options, CancellationToken cancellationToken = default)
    {
        CheckNotDisposed();
        CheckBucketName(bucket);
        ArgumentNullException.ThrowIfNull(options);
        if (options.MaxKeys is < 1 or > Limits.ListLimitMax)
            throw new ChainArgumentException($"max keys must be between 1 and {Limits.ListLimitMax}, not {options.MaxKeys}");
        var prefix = EncodeListBound(options.Prefix ?? "", "prefix");
        var delimiter = EncodeDelimiter(options.Delimiter);

        ByteString after;
        if (options.ContinuationToken is { } token)
        {
            after = DecodeContinuationToken(token, prefix);
            // The previous page ended with a common prefix: none of the keys under it may come back.
            if (CommonPrefixOf(after, prefix, delimiter.Span) is { } rolled)
                after = PastCommonPrefix(rolled);
        }
        else
        {
            after = EncodeListBound(options.StartAfter ?? "", "start-after key");
        }

        var page = await PageRecordsAsync<ObjectInfo>(bucket, prefix, after, options.MaxKeys, Limits.ListLimitMax, prefix, delimiter,
            meta => IsReservedKey(meta.Key.Span) ? null : (meta.Key, ToObjectInfo(meta, bucket, null)), // multipart state: never listed
            PastCommonPrefix, cancellationToken).ConfigureAwait(false);
        return new ListPage(page.Entries, page.CommonPrefixes, page.Truncated, page.Truncated ? Base64Url.EncodeToString(page.LastKey.Span) : null);
    }

    /// <summary>One page of entries (items plus common prefixes) of a listing: in key order, the last key or common prefix, truncated or not.</summary>
    private sealed record RecordPage<T>(List<T> Entries, List<string> CommonPrefixes, bool Truncated, ByteString LastKey, T? LastEntry) where T : class;

    /// <summary>
    /// Up to <paramref name="maxEntries"/> entries of the records under <paramref name="recordPrefix"/> after
    /// <paramref name="after"/>: <paramref name="parse"/> maps a record to its listed key and entry (null: not listed);
    /// listed keys that contain the delimiter after <paramref name="prefix"/> roll up into common prefixes, and the
    /// listing then restarts on every chain at <paramref name="pastRolledUp"/> (the record bound past the common prefix).
    /// Each chain is asked for at most <paramref name="chainPageLimit"/> records at a time: a page costs O(page), not O(bucket).
    /// </summary>
    private async Task<RecordPage<T>> PageRecordsAsync<T>(string bucket, ByteString recordPrefix, ByteString after, int maxEntries, int chainPageLimit,
        ByteString prefix, ReadOnlyMemory<byte> delimiter, Func<ObjectMeta, (ByteString Key, T Entry)?> parse, Func<ByteString, ByteString> pastRolledUp,
        CancellationToken cancellationToken) where T : class
    {
        int chains = await ListChainCountAsync(bucket, cancellationToken).ConfigureAwait(false);
        var entries = new List<T>();
        var commonPrefixes = new List<string>();
        ByteString last = ByteString.Empty;
        T? lastEntry = null;
        bool truncated = false;
        bool restart = true;
        while (restart && !truncated)
        {
            restart = false;
            await foreach (var meta in ListMerger.MergeAsync(chains, after,
                               (index, a, ct) => ChainPageAsync(bucket, (uint)index, chains, recordPrefix, a, ct, chainPageLimit),
                               cancellationToken).ConfigureAwait(false))
            {
                if (parse(meta) is not { } listed)
                    continue;
                if (entries.Count + commonPrefixes.Count == maxEntries)
                {
                    truncated = true;
                    break;
                }
                if (CommonPrefixOf(listed.Key, prefix, delimiter.Span) is { } common)
                {
                    commonPrefixes.Add(common.ToStringUtf8());
                    last = common;
                    lastEntry = null;
                    // Skip every key under the common prefix: restart all chains past it.
                    after = pastRolledUp(common);
                    restart = true;
                    break;
                }
                entries.Add(listed.Entry);
                last = listed.Key;
                lastEntry = listed.Entry;
            }
        }
        return new RecordPage<T>(entries, commonPrefixes, truncated, last, lastEntry);
    }

    /// <summary>A listing's delimiter as bytes (empty: no roll-up).</summary>
    private static ReadOnlyMemory<byte> EncodeDelimiter(string? delimiter)
    {
        if (string.IsNullOrEmpty(delimiter))
            return ReadOnlyMemory<byte>.Empty;
        var bytes = EncodeKey(delimiter, "delimiter");
        if (bytes.Length > Limits.KeyBytesMax)
            throw new ChainArgumentException($"delimiter is longer than {Limits.KeyBytesMax} bytes");
        return bytes;
    }

    // ------------------------------------------------------------------ buckets and cluster

    /// <summary>Creates a bucket; true if it was created, false if it existed already.</summary>
    public async Task<bool> CreateBucketAsync(string name, CancellationToken cancellationToken = default)
    {
        CheckNotDisposed();
        CheckBucketName(name);
        var response = await _retry.RunAsync("create bucket", (_, ct) =>
            _transport.For(_options.Master).UnaryAsync(MasterMethods.CreateBucket, new BucketRequest { Name = name }, UnaryOptions(ct)),
            cancellationToken, name).ConfigureAwait(false);
        _config.Offer(response.Config);
        return !response.Existed;
    }

    /// <summary>
    /// Deletes an empty bucket; true if it was deleted, false if it did not exist. A bucket that still holds objects
    /// fails with a <see cref="ChainException"/> saying so.
    /// </summary>
    public async Task<bool> DeleteBucketAsync(string name, CancellationToken cancellationToken = default)
    {
        CheckNotDisposed();
        CheckBucketName(name);
        BucketResponse response;
        try
        {
            response = await _retry.RunAsync("delete bucket", (_, ct) =>
                _transport.For(_options.Master).UnaryAsync(MasterMethods.DeleteBucket, new BucketRequest { Name = name }, UnaryOptions(ct)),
                cancellationToken, name).ConfigureAwait(false);
        }
        catch (BucketNotFoundException)
        {
            return false;
        }
        _config.Offer(response.Config);
        return response.Existed;
    }

    public async Task<IReadOnlyList<BucketInfo>> ListBucketsAsync(CancellationToken cancellationToken = default)
    {
        var snapshot = await FreshConfigAsync(cancellationToken).ConfigureAwait(false);
        return ToBuckets(snapshot.Config);
    }

    /// <summary>The master's current configuration (fetched now, not from the cache).</summary>
    public async Task<ClusterStatus> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        var snapshot = await FreshConfigAsync(cancellationToken).ConfigureAwait(false);
        var config = snapshot.Config;
        var chains = config.Chains
            .OrderBy(c => c.ChainId)
            .Select(c => new ChainView(c.ChainId, c.Epoch, c.Nodes.ToArray()))
            .ToArray();
        var nodes = config.Nodes
            .Where(n => n.Node is not null)
            .Select(n => new NodeView(
                n.Node.NodeId,
                n.Node.Address,
                n.Alive,
                n.LastHeartbeatUnixMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(n.LastHeartbeatUnixMs) : null) { Zone = n.Node.Zone })
            .ToArray();
        return new ClusterStatus(config.Version, (int)config.Replicas, chains, nodes, ToBuckets(config));
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        // Operations in flight end with ObjectDisposedException. The token source is not disposed: calls racing
        // with Dispose may still link to its token (and it holds no timer).
        _shutdown.Cancel();
        _transport.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    // ------------------------------------------------------------------ put

    private static readonly PutOptions DefaultPutOptions = new();

    private async Task<PutResult> PutCoreAsync(string bucket, string key, byte[] keyBytes, ChunkSource source, PutOptions options, CancellationToken cancellationToken)
    {
        if (options.IfVersion == 0)
            throw new ArgumentOutOfRangeException(nameof(options), "PutOptions.IfVersion: versions start at 1");
        var requestId = NewRequestId(); // once per logical put, reused on every retry: the head deduplicates by it
        // Up to one chunk: inline, one update on the key's chain. Larger: chunks on their own chains, then a manifest.
        if (source.Length is { } known)
        {
            return known > source.ChunkBytes
                ? await PutDistributedAsync(bucket, key, keyBytes, source, options, requestId, cancellationToken).ConfigureAwait(false)
                : await PutInlineAsync(bucket, key, keyBytes, source, options, requestId, cancellationToken).ConfigureAwait(false);
        }
        var first = await source.ReadChunkAsync(cancellationToken).ConfigureAwait(false);
        var second = first.Length < source.ChunkBytes ? ReadOnlyMemory<byte>.Empty : await source.ReadChunkAsync(cancellationToken).ConfigureAwait(false);
        if (second.IsEmpty)
            return await PutInlineAsync(bucket, key, keyBytes, ChunkSource.For(first), options, requestId, cancellationToken).ConfigureAwait(false);
        return await PutDistributedAsync(bucket, key, keyBytes, new PrefixedChunkSource(new[] { first, second }, source), options, requestId, cancellationToken)
            .ConfigureAwait(false);
    }

    private PutHeader PutHeaderFor(Route route, string bucket, ByteString keyString, ByteString requestId, long? size, PutOptions options)
    {
        var header = new PutHeader
        {
            Routing = Routing(route),
            Bucket = bucket,
            Key = keyString,
            RequestId = requestId,
            DeclaredSize = (ulong)(size ?? 0),
            ContentType = options.ContentType ?? "",
            IfAbsent = options.IfAbsent,
        };
        if (options.IfVersion is { } ifVersion)
            header.IfVersion = ifVersion;
        if (options.UserMetadata is { } metadata)
        {
            foreach (var (name, value) in metadata)
                header.UserMetadata[name] = value;
        }
        return header;
    }

    private async Task<PutResult> PutInlineAsync(string bucket, string key, byte[] keyBytes, ChunkSource source, PutOptions options, ByteString requestId,
        CancellationToken cancellationToken)
    {
        source.ChunkBytes = Limits.StreamFrameBytes;
        var keyString = UnsafeByteOperations.UnsafeWrap(keyBytes);
        long? size = source.Length;
        var budget = size is { } known ? StreamBudget(known) : _options.OperationTimeout;
        var progress = options.Progress;

        return await _retry.RunAsync("put", async (state, ct) =>
        {
            if (!source.TryRewind())
            {
                throw new ChainUnavailableException(
                    $"put of '{bucket}/{key}' failed after part of the content was sent, and the source stream could not be rewound to retry (it is not seekable)",
                    state.LastError);
            }
            if (state.Attempt > 1)
                progress?.Report(0);

            var route = await RouteAsync(state, bucket, keyBytes, write: true, ct).ConfigureAwait(false);
            var header = PutHeaderFor(route, bucket, keyString, requestId, size, options);

            var callOptions = new CallOptions
            {
                // With a known size the whole budget is known; otherwise it grows with the bytes sent.
                Timeout = size is null ? null : state.Deadline.Remaining,
                CancellationToken = ct,
            };
            using var call = _transport.For(route.Address).ClientStreaming(StoreMethods.Put, callOptions);
            try
            {
                await WriteAsync(call, new PutRequest { Header = header }, ct).ConfigureAwait(false);

                using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                long sent = 0;
                while (true)
                {
                    var chunk = await source.ReadChunkAsync(ct).ConfigureAwait(false);
                    if (chunk.IsEmpty)
                        break;
                    whole.AppendData(chunk.Span);
                    var message = new PutRequest
                    {
                        Chunk = new PutChunk
                        {
                            // The chunk's memory is never reused, so the message can wrap it without a copy.
                            Data = UnsafeByteOperations.UnsafeWrap(chunk),
                            Sha256 = UnsafeByteOperations.UnsafeWrap(SHA256.HashData(chunk.Span)),
                        },
                    };
                    await WriteAsync(call, message, ct).ConfigureAwait(false);
                    sent += chunk.Length;
                    progress?.Report(sent);
                    if (size is null)
                        state.Deadline.ExtendTo(_options.OperationTimeout + TransferTime(sent));
                }

                var digest = whole.GetHashAndReset();
                var commit = new PutCommit { Size = (ulong)sent, Sha256 = UnsafeByteOperations.UnsafeWrap(digest) };
                await WriteAsync(call, new PutRequest { Commit = commit }, ct).ConfigureAwait(false);
                await CompleteAsync(call, ct).ConfigureAwait(false);
                var response = await call.ResponseAsync.WaitAsync(ct).ConfigureAwait(false);
                return new PutResult(bucket, key, sent, Convert.ToHexStringLower(digest), response.Version, response.Deduplicated);
            }
            finally
            {
                Observe(call.ResponseAsync);
            }
        }, cancellationToken, bucket, key, budget).ConfigureAwait(false);
    }

    /// <summary>Writes one message; if the write fails because the call ended, surfaces the call's status instead.</summary>
    private static async Task WriteAsync(IClientStreamingCall<PutRequest, PutResponse> call, PutRequest message, CancellationToken ct)
    {
        // The server may have failed the call early (stale epoch, no such bucket, ...): stop sending at once.
        if (call.ResponseAsync.IsCompleted)
        {
            var status = await StatusOfAsync(call.ResponseAsync, ct).ConfigureAwait(false);
            if (status is not null)
                throw status;
            throw new ChainException("protocol error: the node answered the put before it was committed");
        }
        try
        {
            await call.RequestStream.WriteAsync(message, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not RpcException && !ct.IsCancellationRequested)
        {
            var status = await StatusOfAsync(call.ResponseAsync, ct).ConfigureAwait(false);
            if (status is not null)
                throw status;
            throw;
        }
    }

    private static async Task CompleteAsync(IClientStreamingCall<PutRequest, PutResponse> call, CancellationToken ct)
    {
        try
        {
            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not RpcException && !ct.IsCancellationRequested)
        {
            var status = await StatusOfAsync(call.ResponseAsync, ct).ConfigureAwait(false);
            if (status is not null)
                throw status;
            throw;
        }
    }

    /// <summary>The status a failed call ended with, waiting briefly for it; null if it did not fail with one.</summary>
    private static async Task<RpcException?> StatusOfAsync(Task<PutResponse> response, CancellationToken ct)
    {
        try
        {
            await response.WaitAsync(TimeSpan.FromSeconds(2), ct).ConfigureAwait(false);
            return null;
        }
        catch (RpcException rpc)
        {
            return rpc;
        }
        catch (Exception)
        {
            return null;
        }
    }

    private static void Observe(Task task)
    {
        if (task.IsCompleted)
        {
            _ = task.Exception;
            return;
        }
        task.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    // ------------------------------------------------------------------ get

    private async Task<ObjectInfo> GetCoreAsync(string bucket, string key, byte[] keyBytes, Stream destination, long offset, long? length,
        IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var meta = await GetRecordAsync(bucket, key, keyBytes, destination, offset, length, progress, metaOnly: false, cancellationToken).ConfigureAwait(false);
        if (meta.Distributed)
        {
            // Budget for the chunk phase: each chunk fetch has its own retries; this bounds the whole.
            await ReadDistributedAsync(bucket, key, meta, destination, offset, RangeEnd(meta, offset, length), progress, cancellationToken).ConfigureAwait(false);
        }
        return ToObjectInfo(meta, bucket, key);
    }

    /// <summary>
    /// The object's record from its key's chain, with an inline object's bytes [offset, end) written to the destination
    /// (verified); with <paramref name="metaOnly"/>, only the record (a distributed object's includes its chunk list).
    /// </summary>
    private async Task<ObjectMeta> GetRecordAsync(string bucket, string key, byte[] keyBytes, Stream destination, long offset, long? length,
        IProgress<long>? progress, bool metaOnly, CancellationToken cancellationToken)
    {
        var keyString = UnsafeByteOperations.UnsafeWrap(keyBytes);
        long start = destination.CanSeek ? destination.Position : 0;
        long written = 0; // bytes written to the destination by the latest attempt
        bool ranged = offset > 0 || length is not null;

        return await _retry.RunAsync("get", async (state, ct) =>
        {
            if (written > 0)
            {
                if (!destination.CanSeek)
                {
                    throw new ChainUnavailableException(
                        $"get of '{bucket}/{key}' failed after part of the object was written, and the destination stream cannot be rewound to retry (it is not seekable)",
                        state.LastError);
                }
                destination.Position = start;
                try
                {
                    destination.SetLength(start);
                }
                catch (NotSupportedException)
                {
                    // Overwriting from the start is the best this stream allows.
                }
                written = 0;
                progress?.Report(0);
            }

            var route = await RouteAsync(state, bucket, keyBytes, write: false, ct).ConfigureAwait(false);
            var request = new GetRequest { Routing = Routing(route), Bucket = bucket, Key = keyString, Offset = (ulong)offset, Length = (ulong)(length ?? 0) };
            // No per-attempt timeout: the size (and so the time needed) is known only from the first message. The
            // overall deadline's token bounds the attempt and grows once the size is known.
            var callOptions = new CallOptions { CancellationToken = ct };

            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            ObjectMeta? meta = null;
            await foreach (var message in _transport.For(route.Address)
                               .ServerStreamingAsync(StoreMethods.Get, request, callOptions)
                               .WithCancellation(ct).ConfigureAwait(false))
            {
                switch (message.PartCase)
                {
                    case GetResponse.PartOneofCase.Meta:
                        if (meta is not null)
                            throw new ChainException($"protocol error: node '{route.NodeId}' sent the metadata of '{bucket}/{key}' twice");
                        meta = message.Meta;
                        if (offset > (long)meta.Size)
                            throw new ChainArgumentException($"'{bucket}/{key}': offset {offset} is past the end of the {meta.Size}-byte object");
                        state.Deadline.ExtendTo(StreamBudget((long)Math.Min(meta.Size, long.MaxValue)));
                        if (meta.Distributed || (ranged && length == 0) || metaOnly)
                            return meta; // a distributed object's chunks are fetched from their own chains below
                        break;
                    case GetResponse.PartOneofCase.Data:
                        if (meta is null)
                            throw new ChainException($"protocol error: node '{route.NodeId}' sent data of '{bucket}/{key}' before its metadata");
                        var data = message.Data;
                        if (written + data.Length > RangeEnd(meta, offset, length) - offset)
                            throw new IntegrityException($"'{bucket}/{key}': the node sent more than the {meta.Size} bytes the object has");
                        hash.AppendData(data.Span);
                        await destination.WriteAsync(data.Memory, ct).ConfigureAwait(false);
                        written += data.Length;
                        progress?.Report(written);
                        break;
                }
            }

            if (meta is null)
                throw new ChainException($"protocol error: node '{route.NodeId}' ended the get of '{bucket}/{key}' without metadata");
            long expected = RangeEnd(meta, offset, length) - offset;
            if (written != expected)
                throw new IntegrityException($"'{bucket}/{key}': received {written} bytes, but expected {expected}");
            if (!ranged)
            {
                var digest = hash.GetHashAndReset();
                if (!digest.AsSpan().SequenceEqual(meta.Sha256.Span))
                {
                    throw new IntegrityException(
                        $"'{bucket}/{key}': SHA-256 of the received data is {Convert.ToHexStringLower(digest)}, but the object's is {Convert.ToHexStringLower(meta.Sha256.Span)}");
                }
            }
            return meta;
        }, cancellationToken, bucket, key).ConfigureAwait(false);
    }

    private static long RangeEnd(ObjectMeta meta, long offset, long? length)
    {
        long size = (long)meta.Size;
        return length is { } n ? Math.Min(size, offset + n) : size;
    }

    // ------------------------------------------------------------------ list

    private async IAsyncEnumerable<ObjectInfo> ListCoreAsync(string bucket, ByteString prefix, ByteString startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var meta in ListRecordsAsync(bucket, prefix, startAfter, cancellationToken).ConfigureAwait(false))
        {
            if (!IsReservedKey(meta.Key.Span))
                yield return ToObjectInfo(meta, bucket, null);
        }
    }

    /// <summary>Every record of the bucket with the prefix after <paramref name="startAfter"/>, in key order, multipart state included.</summary>
    private async IAsyncEnumerable<ObjectMeta> ListRecordsAsync(string bucket, ByteString prefix, ByteString startAfter,
        [EnumeratorCancellation] CancellationToken cancellationToken, int chainPageLimit = Limits.ListLimitMax)
    {
        int chains = await ListChainCountAsync(bucket, cancellationToken).ConfigureAwait(false);
        await foreach (var meta in ListMerger.MergeAsync(chains, startAfter,
                           (index, after, ct) => ChainPageAsync(bucket, (uint)index, chains, prefix, after, ct, chainPageLimit),
                           cancellationToken).ConfigureAwait(false))
        {
            yield return meta;
        }
    }

    private async Task<int> ListChainCountAsync(string bucket, CancellationToken cancellationToken)
    {
        var snapshot = await _retry.RunAsync("list", async (state, ct) =>
        {
            var s = await _config.GetAsync(fresh: false, ct).ConfigureAwait(false);
            state.ConfigVersion = s.Version;
            if (s.ChainCount == 0)
                throw new ClusterNotReadyException($"the cluster has no chains yet (config version {s.Version})");
            return s;
        }, cancellationToken, bucket).ConfigureAwait(false);
        return snapshot.ChainCount;
    }

    /// <summary>The common prefix <paramref name="key"/> rolls up into (prefix + up to and including the delimiter), or null.</summary>
    private static ByteString? CommonPrefixOf(ByteString key, ByteString prefix, ReadOnlySpan<byte> delimiter)
    {
        if (delimiter.IsEmpty || key.Length < prefix.Length)
            return null;
        int at = key.Span[prefix.Length..].IndexOf(delimiter);
        if (at < 0)
            return null;
        return ByteString.CopyFrom(key.Span[..(prefix.Length + at + delimiter.Length)]);
    }

    /// <summary>
    /// The start-after bound that skips every key starting with <paramref name="commonPrefix"/> and nothing else: the
    /// prefix followed by byte 0xFF, which never occurs in UTF-8, so it sorts after every key under the prefix and before
    /// every greater key that does not start with it. A prefix as long as a key can be is a key under itself only.
    /// </summary>
    private static ByteString PastCommonPrefix(ByteString commonPrefix)
    {
        if (commonPrefix.Length >= Limits.KeyBytesMax)
            return commonPrefix;
        var bound = new byte[commonPrefix.Length + 1];
        commonPrefix.Span.CopyTo(bound);
        bound[^1] = 0xFF;
        return UnsafeByteOperations.UnsafeWrap(bound);
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>A continuation token is the base64url of the last key or common prefix of the previous page.</summary>
    private static ByteString DecodeContinuationToken(string token, ByteString prefix)
    {
        byte[] bytes;
        try
        {
            bytes = Base64Url.DecodeFromChars(token);
            StrictUtf8.GetCharCount(bytes);
        }
        catch (Exception ex) when (ex is FormatException or DecoderFallbackException)
        {
            throw new ChainArgumentException("malformed continuation token", ex);
        }
        if (bytes.Length == 0 || bytes.Length > Limits.KeyBytesMax || !bytes.AsSpan().StartsWith(prefix.Span))
            throw new ChainArgumentException("malformed continuation token (not one of this listing)");
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    /// <summary>One page of one chain, from its tail; each page is an operation of its own (own deadline and retries).</summary>
    private Task<SourcePage> ChainPageAsync(string bucket, uint chainId, int chains, ByteString prefix, ByteString startAfter, CancellationToken cancellationToken,
        int limit = Limits.ListLimitMax)
    {
        return _retry.RunAsync("list", async (state, ct) =>
        {
            var snapshot = await _config.GetAsync(fresh: false, ct).ConfigureAwait(false);
            state.ConfigVersion = snapshot.Version;
            if (snapshot.ChainCount != chains && snapshot.ChainCount != 0)
                throw new ChainException($"the cluster went from {chains} to {snapshot.ChainCount} chains during the listing; list again");
            var route = snapshot.RouteChain(chainId, write: false, AnyReplica(state, write: false));
            var request = new ListRequest
            {
                Routing = Routing(route),
                Bucket = bucket,
                Prefix = prefix,
                StartAfter = startAfter,
                Limit = (uint)limit,
            };
            var response = await _transport.For(route.Address)
                .UnaryAsync(StoreMethods.List, request, UnaryOptions(ct)).ConfigureAwait(false);
            return new SourcePage(response.Objects, response.Truncated);
        }, cancellationToken, bucket);
    }

    // ------------------------------------------------------------------ helpers

    private async Task<ClusterConfig> FetchConfigAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _transport.For(_options.Master).UnaryAsync(MasterMethods.GetConfig, new GetConfigRequest(), UnaryOptions(cancellationToken)).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.Status is StatusCode.DeadlineExceeded or StatusCode.Unavailable)
        {
            // The master may be back while this connection still waits out TCP's back-off: the next fetch gets a new one.
            _transport.Reconnect(_options.Master);
            throw;
        }
    }

    private Task<ClusterSnapshot> FreshConfigAsync(CancellationToken cancellationToken)
    {
        CheckNotDisposed();
        return _retry.RunAsync("get config", (_, ct) => _config.GetAsync(fresh: true, ct), cancellationToken);
    }

    private async Task<Route> RouteAsync(OperationState state, string bucket, byte[] key, bool write, CancellationToken ct)
    {
        var snapshot = await _config.GetAsync(fresh: false, ct).ConfigureAwait(false);
        state.ConfigVersion = snapshot.Version;
        return snapshot.RouteKey(bucket, key, write, AnyReplica(state, write));
    }

    /// <summary>Whether this attempt's read may go to any member of the chain (CRAQ) rather than the tail.</summary>
    private bool AnyReplica(OperationState state, bool write) =>
        !write && _options.ReadFrom == ReadTarget.AnyReplica && !state.ReadAtTail;

    private CallOptions UnaryOptions(CancellationToken ct) => new() { Timeout = _options.AttemptTimeout, CancellationToken = ct };

    private static Routing Routing(Route route) => new() { ChainId = route.ChainId, Epoch = route.Epoch };

    private TimeSpan StreamBudget(long bytes)
    {
        var transfer = TransferTime(bytes);
        return transfer > _options.OperationTimeout ? transfer : _options.OperationTimeout;
    }

    private static TimeSpan TransferTime(long bytes) => TimeSpan.FromSeconds(bytes / StreamBytesPerSecond);

    private static ByteString NewRequestId() =>
        UnsafeByteOperations.UnsafeWrap(RandomNumberGenerator.GetBytes(Limits.RequestIdBytes));

    private byte[] CheckObjectArgs(string bucket, string key)
    {
        CheckNotDisposed();
        ArgumentNullException.ThrowIfNull(key);
        CheckBucketName(bucket);
        var keyBytes = EncodeKey(key, "key");
        if (Validation.CheckKey(keyBytes) is { } problem)
            throw new ChainArgumentException(problem);
        if (IsReservedKey(keyBytes))
            throw new ChainArgumentException($"keys starting with U+0001 '{ReservedPrefix[1..]}' are reserved for multipart upload state");
        return keyBytes;
    }

    private static void CheckBucketName(string bucket)
    {
        if (Validation.CheckBucket(bucket) is { } problem)
            throw new ChainArgumentException(problem);
    }

    private static ByteString EncodeListBound(string value, string what)
    {
        if (value.Length == 0)
            return ByteString.Empty;
        var bytes = EncodeKey(value, what);
        if (Validation.CheckKey(bytes) is { } problem)
            throw new ChainArgumentException($"{what}: {problem}");
        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    private static byte[] EncodeKey(string value, string what)
    {
        try
        {
            return Validation.EncodeKey(value);
        }
        catch (EncoderFallbackException ex)
        {
            throw new ChainArgumentException($"{what} is not valid Unicode (it contains an unpaired surrogate)", ex);
        }
    }

    private static ObjectInfo ToObjectInfo(ObjectMeta meta, string bucket, string? key)
    {
        if (key is null)
        {
            try
            {
                key = Validation.DecodeKey(meta.Key.Span);
            }
            catch (DecoderFallbackException ex)
            {
                throw new ChainException($"protocol error: a node listed a key in '{bucket}' that is not valid UTF-8", ex);
            }
        }
        return new ObjectInfo(
            string.IsNullOrEmpty(meta.Bucket) ? bucket : meta.Bucket,
            key,
            (long)Math.Min(meta.Size, long.MaxValue),
            Convert.ToHexStringLower(meta.Sha256.Span),
            meta.Version,
            DateTimeOffset.FromUnixTimeMilliseconds(meta.CreatedUnixMs),
            meta.ContentType)
        {
            UserMetadata = meta.UserMetadata.Count == 0 ? new Dictionary<string, string>() : new Dictionary<string, string>(meta.UserMetadata),
        };
    }

    private static IReadOnlyList<BucketInfo> ToBuckets(ClusterConfig config) =>
        config.Buckets
            .OrderBy(b => b.Name, StringComparer.Ordinal)
            .Select(b => new BucketInfo(b.Name, DateTimeOffset.FromUnixTimeMilliseconds(b.CreatedUnixMs)))
            .ToArray();

    private void CheckNotDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}
