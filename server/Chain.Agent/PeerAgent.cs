using System.Collections.Concurrent;
using System.Security.Cryptography;
using Chain.Client;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;

namespace Chain.Agent;

/// <summary>
/// The distribution tier's peer agent in process: a chunk cache, the Peer service (serving cached chunks to other
/// peers) and the Agent service (Fetch, Status) on one RPC server, downloads directed by the tracker, and a seeding loop
/// that keeps announcing the swarms whose chunks are still cached (and reports evictions) until none is left.
/// </summary>
public sealed class PeerAgent : IAsyncDisposable
{
    /// <summary>Bytes per read and per sink call of <see cref="CopyObjectAsync"/>.</summary>
    private const int CopyFrameBytes = 1024 * 1024;

    private const string PeerIdFile = "peer-id";

    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, SwarmDownload> _swarms = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, RpcChannel> _channels = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _evicted = new();
    private readonly SemaphoreSlim _startGate = new(1, 1);
    private RpcServer? _server;
    private PeerService? _peerService;
    private ChunkWireServer? _wireServer;
    private Task _seeding = Task.CompletedTask;
    private int _disposed;

    private PeerAgent(PeerAgentOptions options, ChunkCache cache, string peerId)
    {
        Options = options;
        Cache = cache;
        PeerId = peerId;
        Client = new ChainClient(new ChainClientOptions { Master = options.Master });
        TrackerChannel = options.Tracker is null ? null : new RpcChannel(options.Tracker);
        UploadLimit = new RateLimiter(options.UploadBytesPerSecond, options.Time);
        DownloadLimit = new RateLimiter(options.DownloadBytesPerSecond, options.Time);
        Info = new PeerInfo { PeerId = peerId, Zone = options.Zone, MaxUploads = (uint)options.MaxUploads, UploadBytesPerSecond = (ulong)options.UploadBytesPerSecond };
        cache.Evicted += hex => _evicted.Enqueue(hex);
    }

    public PeerAgentOptions Options { get; }
    public ChunkCache Cache { get; }
    /// <summary>Stable across restarts: kept in the cache directory.</summary>
    public string PeerId { get; }
    public Uri Address => _server?.Address ?? throw new InvalidOperationException("not started");
    internal PeerInfo Info { get; }
    internal ChainClient Client { get; }
    internal ChunkWireClient Wire { get; } = new();
    /// <summary>Where the data port listens; null when it is off.</summary>
    public System.Net.IPEndPoint? DataEndPoint => _wireServer?.EndPoint;
    internal IRpcInvoker? TrackerChannel { get; }
    internal RateLimiter UploadLimit { get; }
    internal RateLimiter DownloadLimit { get; }
    internal PeerService? PeerServiceForTests => _peerService;
    public int UploadsInFlight => _peerService?.UploadsInFlight ?? 0;
    public long BytesUploaded => _peerService?.BytesUploaded ?? 0;

    /// <summary>The downloads this agent knows (running, or done and seeding), by swarm id.</summary>
    public IReadOnlyCollection<SwarmDownload> Downloads => _swarms.Values.ToArray();

    public static async Task<PeerAgent> StartAsync(PeerAgentOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var cache = ChunkCache.Open(options.CacheDirectory, options.CacheBytes);
        var agent = new PeerAgent(options, cache, LoadPeerId(options.CacheDirectory));
        try
        {
            var registry = new RpcServiceRegistry();
            agent._peerService = new PeerService(cache, agent.UploadLimit, options);
            agent._peerService.Register(registry);
            new AgentService(agent).Register(registry);
            agent._server = await RpcServer.StartAsync(options.Listen, registry, cancellationToken: cancellationToken).ConfigureAwait(false);
            var advertised = options.AdvertiseAddress ?? agent._server.Address;
            agent.Info.Address = advertised.ToString().TrimEnd('/');
            if (options.DataPort >= 0)
            {
                agent._wireServer = ChunkWireServer.Start(new System.Net.IPEndPoint(options.Listen.Address, options.DataPort), cache,
                    agent._peerService, options);
                agent.Info.DataAddress = $"{advertised.Host}:{agent._wireServer.EndPoint.Port}";
            }
            agent._seeding = agent.SeedLoopAsync(agent._stop.Token);
            return agent;
        }
        catch
        {
            await agent.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static string LoadPeerId(string directory)
    {
        string path = Path.Combine(directory, PeerIdFile);
        if (File.Exists(path))
        {
            string id = File.ReadAllText(path).Trim();
            if (id.Length > 0)
                return id;
        }
        string fresh = "peer-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        string temp = path + ".tmp";
        File.WriteAllText(temp, fresh);
        File.Move(temp, path, overwrite: true);
        return fresh;
    }

    /// <summary>
    /// The download of <paramref name="bucket"/>/<paramref name="key"/>: joins one in progress for the same content, or
    /// starts one (resuming from whatever the cache holds).
    /// </summary>
    public async Task<SwarmDownload> DownloadAsync(string bucket, string key, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var layout = await Client.GetLayoutAsync(bucket, key, cancellationToken).ConfigureAwait(false);
        await _startGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            string swarm = layout.Info.Sha256Hex;
            if (_swarms.TryGetValue(swarm, out var existing) && !existing.Completion.IsCompleted)
                return existing;
            var download = new SwarmDownload(this, layout);
            download.HoldCachedChunks();
            _swarms[swarm] = download;
            _ = Task.Run(() => download.RunAsync(_stop.Token), CancellationToken.None);
            return download;
        }
        finally
        {
            _startGate.Release();
        }
    }

    /// <summary>
    /// Hands a completed download's bytes to <paramref name="sink"/> in order, out of the cache (each chunk pinned while
    /// read), and checks the whole object's SHA-256 at the end: the caller must discard what it received if this throws.
    /// </summary>
    public async Task CopyObjectAsync(SwarmDownload download, Func<ReadOnlyMemory<byte>, CancellationToken, Task> sink, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(download);
        ArgumentNullException.ThrowIfNull(sink);
        using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[CopyFrameBytes];
        foreach (var chunk in download.Layout.Chunks)
        {
            using var pin = Cache.Pin(chunk.Sha256Hex)
                ?? throw new RpcException(StatusCode.Unavailable, $"chunk {chunk.Sha256Hex} of {download.ObjectName} left the cache during assembly");
            // Synchronous reads of page-cached files: async file I/O would only add a thread hop per read.
            using var file = File.OpenHandle(Cache.PathOf(chunk.Sha256Hex), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
            long left = chunk.Size;
            long offset = 0;
            while (left > 0)
            {
                ct.ThrowIfCancellationRequested();
                int read = RandomAccess.Read(file, buffer.AsSpan(0, (int)Math.Min(buffer.Length, left)), offset);
                offset += read;
                if (read == 0)
                    throw new RpcException(StatusCode.DataLoss, $"cached chunk {chunk.Sha256Hex} is shorter than {chunk.Size} bytes");
                whole.AppendData(buffer, 0, read);
                await sink(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                left -= read;
            }
        }
        string digest = Convert.ToHexStringLower(whole.GetHashAndReset());
        if (digest != download.Layout.Info.Sha256Hex)
            throw new RpcException(StatusCode.DataLoss, $"{download.ObjectName}: assembled SHA-256 {digest}, expected {download.Layout.Info.Sha256Hex}");
    }

    /// <summary>
    /// Downloads <paramref name="bucket"/>/<paramref name="key"/> through the swarm straight into the file
    /// <paramref name="path"/>: each chunk is written at its offset as soon as it is verified (chunks already cached are
    /// copied from the cache), so the copy is whole when the last chunk arrives, instead of being assembled afterwards.
    /// The bytes go to <c>PATH.part</c>, renamed to <paramref name="path"/> only once every chunk is in; on failure the
    /// part file is deleted and nothing is left at <paramref name="path"/>.
    /// </summary>
    public async Task<SwarmDownload> DownloadToFileAsync(string bucket, string key, string path, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var download = await DownloadAsync(bucket, key, ct).ConfigureAwait(false);
        string part = path + ".part";
        using var lease = download.Lease();
        try
        {
            var chunks = download.Layout.Chunks;
            var offsets = new long[chunks.Count];
            for (int i = 1; i < chunks.Count; i++)
                offsets[i] = offsets[i - 1] + chunks[i - 1].Size;
            using (var file = File.OpenHandle(part, FileMode.Create, FileAccess.Write, FileShare.None, FileOptions.None, download.Layout.Info.Size))
            {
                // The callback runs on the fetching threads: it must never throw into a fetch (the chunk is held
                // already), so a failed write is kept and fails this call once the download is done.
                Exception? failed = null;
                int closed = 0;
                void Write(int index, ReadOnlyMemory<byte> data)
                {
                    if (Volatile.Read(ref closed) != 0)
                        return;
                    try
                    {
                        RandomAccess.Write(file, data.Span, offsets[index]);
                    }
                    catch (Exception e) when (e is IOException or ObjectDisposedException or UnauthorizedAccessException)
                    {
                        Interlocked.CompareExchange(ref failed, e, null);
                    }
                }
                Action<int, ReadOnlyMemory<byte>> callback = Write;
                try
                {
                    foreach (int index in download.OnChunkVerified(callback))
                    {
                        using var pin = Cache.Pin(chunks[index].Sha256Hex)
                            ?? throw new RpcException(StatusCode.Unavailable, $"chunk {chunks[index].Sha256Hex} of {download.ObjectName} left the cache during assembly");
                        byte[] bytes = File.ReadAllBytes(Cache.PathOf(chunks[index].Sha256Hex));
                        if (bytes.Length != chunks[index].Size)
                            throw new RpcException(StatusCode.DataLoss, $"cached chunk {chunks[index].Sha256Hex} holds {bytes.Length} bytes, not {chunks[index].Size}");
                        RandomAccess.Write(file, bytes, offsets[index]);
                    }
                    await download.Completion.WaitAsync(ct).ConfigureAwait(false);
                }
                finally
                {
                    download.StopChunkCallback(callback);
                    Volatile.Write(ref closed, 1);
                }
                if (Volatile.Read(ref failed) is { } error)
                    throw new IOException($"writing {download.ObjectName} to {part}: {error.Message}", error);
            }
            File.Move(part, path, overwrite: true);
            return download;
        }
        catch
        {
            File.Delete(part);
            throw;
        }
    }

    public AgentStatusResponse Status()
    {
        var status = new AgentStatusResponse
        {
            PeerId = PeerId,
            CacheBytes = (ulong)Cache.UsedBytes,
            CacheCapacityBytes = (ulong)Cache.CapacityBytes,
            UploadsInFlight = (uint)UploadsInFlight,
        };
        foreach (var download in _swarms.Values.Where(d => !d.Completion.IsCompleted))
            status.Downloads.Add(download.Status());
        return status;
    }

    internal RpcChannel ChannelFor(Uri address) => _channels.GetOrAdd(address.ToString(), _ => new RpcChannel(address));

    /// <summary>
    /// Seeding: completed swarms are re-announced (wants = false, what the cache still holds) within the tracker's lease,
    /// evictions are reported as EVICTED outcomes, and a swarm with nothing left cached is left.
    /// </summary>
    private async Task SeedLoopAsync(CancellationToken cancellationToken)
    {
        var lastAnnounce = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var interval = Options.SeedInterval;
                foreach (var download in _swarms.Values)
                {
                    var lease = TimeSpan.FromMilliseconds(download.LeaseMs / 3.0);
                    if (lease < interval)
                        interval = lease < TimeSpan.FromMilliseconds(100) ? TimeSpan.FromMilliseconds(100) : lease;
                }
                await Task.Delay(interval, Options.Time, cancellationToken).ConfigureAwait(false);
                var evicted = new HashSet<string>(StringComparer.Ordinal);
                while (_evicted.TryDequeue(out var hex))
                    evicted.Add(hex);
                foreach (var download in _swarms.Values)
                    await SeedOneAsync(download, evicted, lastAnnounce, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    private async Task SeedOneAsync(SwarmDownload download, HashSet<string> evicted, Dictionary<string, DateTimeOffset> lastAnnounce, CancellationToken ct)
    {
        var chunks = download.Layout.Chunks;
        var tracker = TrackerChannel;
        var call = new CallOptions { Timeout = Options.TrackerTimeout, CancellationToken = ct };
        try
        {
            if (evicted.Count > 0 && tracker is not null)
            {
                var report = new ExchangeRequest { PeerId = PeerId, SwarmId = download.SwarmId, Want = 0 };
                for (int i = 0; i < chunks.Count; i++)
                {
                    if (evicted.Contains(chunks[i].Sha256Hex) && !Cache.Contains(chunks[i].Sha256Hex))
                        report.Outcomes.Add(new Outcome { Chunk = (uint)i, Kind = Outcome.Types.Kind.Evicted });
                }
                if (report.Outcomes.Count > 0)
                    await tracker.UnaryAsync(TrackerMethods.Exchange, report, call).ConfigureAwait(false);
            }
            if (!download.Completion.IsCompleted)
                return; // a running download renews its own lease
            var held = download.HeldNow();
            if (held.Count == 0)
            {
                _swarms.TryRemove(new KeyValuePair<string, SwarmDownload>(download.SwarmId, download));
                lastAnnounce.Remove(download.SwarmId);
                if (tracker is not null)
                    await tracker.UnaryAsync(TrackerMethods.Leave, new LeaveRequest { PeerId = PeerId, SwarmId = download.SwarmId }, call).ConfigureAwait(false);
                return;
            }
            if (download.Completion.IsFaulted || tracker is null)
                return;
            var now = Options.Time.GetUtcNow();
            if (lastAnnounce.TryGetValue(download.SwarmId, out var last) && now - last < TimeSpan.FromMilliseconds(download.LeaseMs / 2.0))
                return;
            await tracker.UnaryAsync(TrackerMethods.Announce, download.AnnounceRequest(held, wants: false), call).ConfigureAwait(false);
            lastAnnounce[download.SwarmId] = now;
        }
        catch (RpcException)
        {
            // the tracker is away: try again next round (seeding is best effort)
        }
    }

    /// <summary>Stops serving and downloading (in-flight transfers are cut off at once, like a killed process).</summary>
    public async Task StopAsync()
    {
        _stop.Cancel();
        if (_wireServer is not null)
            await _wireServer.DisposeAsync().ConfigureAwait(false);
        if (_server is not null)
            await _server.StopAsync(TimeSpan.Zero).ConfigureAwait(false);
        try
        {
            await _seeding.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await StopAsync().ConfigureAwait(false);
        if (_server is not null)
            await _server.DisposeAsync().ConfigureAwait(false);
        foreach (var channel in _channels.Values)
            channel.Dispose();
        TrackerChannel?.Dispose();
        Wire.Dispose();
        await Client.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
