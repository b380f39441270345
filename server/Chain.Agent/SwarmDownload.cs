using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using Chain.Client;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Agent;

/// <summary>
/// One object's download into the cache, directed by the tracker: announce what the cache already holds (resume), then
/// keep up to <see cref="PeerAgentOptions.DownloadParallelism"/> chunk transfers in flight, asking the tracker for a
/// source per free slot and reporting each outcome. Every chunk is checked against the layout's SHA-256 before it is
/// cached; bad data is reported (VERIFICATION_FAILED) and fetched again elsewhere. A tracker that fails a call is given
/// up for the rest of the download, which then reads the missing chunks from the store. Chunks stay pinned while
/// someone holds a <see cref="Lease"/> (assembly by Fetch).
/// </summary>
public sealed class SwarmDownload
{
    private readonly PeerAgent _agent;
    private readonly object _gate = new();
    private readonly bool[] _have;
    private readonly Dictionary<string, IDisposable> _pins = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<int, Waiting> _waiting = new();
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _leases;
    private long _bytesFromPeers, _bytesFromStore, _bytesFromCache;
    private int _refetched, _chunksDone;
    private long _retryAfterMs;
    private Action<int, ReadOnlyMemory<byte>>? _onVerified;

    internal SwarmDownload(PeerAgent agent, ObjectLayout layout)
    {
        _agent = agent;
        Layout = layout;
        SwarmId = layout.Info.Sha256Hex;
        _have = new bool[layout.Chunks.Count];
        Started = agent.Options.Time.GetUtcNow();
    }

    internal sealed class Waiting(string source, DateTimeOffset since)
    {
        public string Source { get; } = source;
        public DateTimeOffset Since { get; } = since;
        public long BytesReceived;
    }

    public ObjectLayout Layout { get; }
    public string SwarmId { get; }
    public string ObjectName => Layout.Info.Bucket + "/" + Layout.Info.Key;
    public DateTimeOffset Started { get; }
    /// <summary>When every chunk was cached (null while downloading).</summary>
    public DateTimeOffset? Completed { get; private set; }
    /// <summary>Completes when every chunk is cached; faults when the download fails.</summary>
    public Task Completion => _done.Task;
    public long BytesFromPeers => Interlocked.Read(ref _bytesFromPeers);
    public long BytesFromStore => Interlocked.Read(ref _bytesFromStore);
    public long BytesFromCache => Interlocked.Read(ref _bytesFromCache);
    /// <summary>Chunks fetched again because a source's bytes failed verification.</summary>
    public int RefetchedAfterVerification => Volatile.Read(ref _refetched);
    public int ChunksDone => Volatile.Read(ref _chunksDone);
    /// <summary>Whether the tracker directed the whole download (false: it failed and the store served the rest, or none is configured).</summary>
    public bool UsedTrackerThroughout { get; private set; }
    /// <summary>Each source a chunk was assigned, in order (for tests and diagnostics): (chunk, "peer ID" or "store").</summary>
    public ConcurrentQueue<(int Chunk, string Source, Outcome.Types.Kind Result)> History { get; } = new();
    internal uint LeaseMs { get; private set; } = 10_000;

    /// <summary>
    /// From now on calls <paramref name="onVerified"/> (with any other callback given) with each chunk's index and bytes as soon as the chunk is verified and
    /// cached (on the fetching thread; the bytes are valid only during the call); returns the indexes held already (from
    /// the cache, or verified before this call), whose bytes are in the cache. A chunk verified during the call may be
    /// both returned and passed to the callback.
    /// </summary>
    internal IReadOnlyList<int> OnChunkVerified(Action<int, ReadOnlyMemory<byte>> onVerified)
    {
        lock (_gate)
        {
            Volatile.Write(ref _onVerified, _onVerified + onVerified);
            return Enumerable.Range(0, _have.Length).Where(i => _have[i]).ToList();
        }
    }

    /// <summary>Stops the calls of a callback given to <see cref="OnChunkVerified"/>.</summary>
    internal void StopChunkCallback(Action<int, ReadOnlyMemory<byte>> onVerified)
    {
        lock (_gate)
            Volatile.Write(ref _onVerified, _onVerified - onVerified);
    }

    /// <summary>Keeps the downloaded chunks pinned (never evicted) until disposed.</summary>
    public IDisposable Lease()
    {
        lock (_gate)
            _leases++;
        return new LeaseHandle(this);
    }

    private sealed class LeaseHandle(SwarmDownload download) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
                download.EndLease();
        }
    }

    private void EndLease()
    {
        lock (_gate)
        {
            _leases--;
            if (_leases == 0 && _done.Task.IsCompleted)
                ReleasePins();
        }
    }

    private void ReleasePins()
    {
        foreach (var pin in _pins.Values)
            pin.Dispose();
        _pins.Clear();
    }

    public DownloadStatus Status()
    {
        var status = new DownloadStatus
        {
            SwarmId = SwarmId,
            ObjectName = ObjectName,
            ChunksDone = (uint)ChunksDone,
            ChunkCount = (uint)Layout.Chunks.Count,
            RetryAfterMs = (uint)Interlocked.Read(ref _retryAfterMs),
        };
        foreach (var (chunk, waiting) in _waiting.OrderBy(w => w.Key))
        {
            status.Waiting.Add(new WaitingChunk
            {
                Chunk = (uint)chunk,
                Source = waiting.Source,
                SinceUnixMs = waiting.Since.ToUnixTimeMilliseconds(),
                BytesReceived = (ulong)Interlocked.Read(ref waiting.BytesReceived),
            });
        }
        return status;
    }

    public FetchProgress Progress() => new()
    {
        ObjectSize = (ulong)Layout.Info.Size,
        BytesFromPeers = (ulong)BytesFromPeers,
        BytesFromStore = (ulong)BytesFromStore,
        BytesFromCache = (ulong)BytesFromCache,
        ChunksDone = (uint)ChunksDone,
        ChunkCount = (uint)Layout.Chunks.Count,
        RefetchedAfterVerification = (uint)RefetchedAfterVerification,
    };

    /// <summary>Chunk indexes the cache holds now (for announces while seeding).</summary>
    internal List<uint> HeldNow()
    {
        var held = new List<uint>();
        for (int i = 0; i < Layout.Chunks.Count; i++)
        {
            if (_agent.Cache.Contains(Layout.Chunks[i].Sha256Hex))
                held.Add((uint)i);
        }
        return held;
    }

    internal AnnounceRequest AnnounceRequest(IEnumerable<uint> have, bool wants)
    {
        var request = new AnnounceRequest
        {
            Peer = _agent.Info,
            SwarmId = SwarmId,
            ObjectSize = (ulong)Layout.Info.Size,
            Wants = wants,
            ObjectName = ObjectName,
        };
        request.Have.AddRange(have);
        foreach (var chunk in Layout.Chunks)
            request.Chunks.Add(new SwarmChunk { Sha256 = UnsafeByteOperations.UnsafeWrap(chunk.Sha256), Size = (uint)chunk.Size, ChainId = chunk.ChainId });
        return request;
    }

    /// <summary>
    /// Resume: whatever the cache holds already is pinned, counted as held and not fetched again. Runs before the
    /// download is handed out, so <see cref="OnChunkVerified"/> lists these chunks.
    /// </summary>
    internal void HoldCachedChunks()
    {
        for (int i = 0; i < Layout.Chunks.Count; i++)
        {
            if (MarkHeldFromCache(i))
                Interlocked.Add(ref _bytesFromCache, Layout.Chunks[i].Size);
        }
    }

    internal async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RunCoreAsync(cancellationToken).ConfigureAwait(false);
            Completed = _agent.Options.Time.GetUtcNow();
            lock (_gate)
            {
                _done.TrySetResult();
                if (_leases == 0)
                    ReleasePins();
            }
        }
        catch (Exception e)
        {
            lock (_gate)
            {
                _done.TrySetException(e);
                ReleasePins();
            }
        }
    }

    private record struct Job(int Chunk, ulong AssignmentId, string Source);

    private sealed record Result(Outcome.Types.Kind Kind, long Bytes, long Millis, Exception? Error = null);

    private async Task RunCoreAsync(CancellationToken cancellationToken)
    {
        var chunks = Layout.Chunks;
        var options = _agent.Options;
        var tracker = _agent.TrackerChannel;
        bool useTracker = tracker is not null && await TryAnnounceAsync(tracker, wants: true, cancellationToken).ConfigureAwait(false);
        UsedTrackerThroughout = useTracker;
        var lastAnnounce = Stopwatch.StartNew();
        var outcomes = new List<Outcome>();
        var running = new Dictionary<Task<Result>, Job>();
        var attempts = new int[chunks.Count];
        int reannounced = 0; // NotFound answers in a row (bounded: a tracker that keeps forgetting is given up)
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            while (Missing() > 0 || running.Count > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int free = options.DownloadParallelism - running.Count;
                var wait = TimeSpan.FromMilliseconds(200);
                if (useTracker && tracker is not null)
                {
                    var exchange = new ExchangeRequest { PeerId = _agent.PeerId, SwarmId = SwarmId, Want = (uint)Math.Max(0, Math.Min(free, Missing() - running.Count)) };
                    exchange.Outcomes.AddRange(outcomes);
                    try
                    {
                        var response = await tracker.UnaryAsync(TrackerMethods.Exchange, exchange, TrackerCall(cancellationToken)).ConfigureAwait(false);
                        outcomes.Clear();
                        reannounced = 0;
                        lastAnnounce.Restart();
                        Interlocked.Exchange(ref _retryAfterMs, response.RetryAfterMs);
                        foreach (var assignment in response.Assignments)
                        {
                            int chunk = (int)assignment.Chunk;
                            if (chunk >= chunks.Count || Held(chunk) || running.Values.Any(j => j.Chunk == chunk))
                            {
                                // Held (or arriving) already: tell the tracker at once rather than fetch it twice.
                                outcomes.Add(new Outcome
                                {
                                    AssignmentId = assignment.AssignmentId,
                                    Chunk = assignment.Chunk,
                                    Kind = chunk < chunks.Count && Held(chunk) ? Outcome.Types.Kind.Done : Outcome.Types.Kind.SourceFailed,
                                });
                                continue;
                            }
                            var job = new Job(chunk, assignment.AssignmentId, Describe(assignment.Source));
                            running.Add(FetchAsync(job, assignment.Source, stop.Token), job);
                        }
                        if (response.RetryAfterMs > 0)
                            wait = TimeSpan.FromMilliseconds(Math.Clamp(response.RetryAfterMs, 10, 5_000));
                        if (outcomes.Count > 0)
                            wait = TimeSpan.Zero;
                    }
                    catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
                    {
                        // NotFound: the tracker lost this peer or swarm (lease expired, tracker restarted): announce again
                        // (what is held goes with it) and carry on. Anything else: the tier degrades, never blocks — the
                        // store serves what is missing.
                        outcomes.Clear();
                        if (e.Status == StatusCode.NotFound && ++reannounced <= 3 && await TryAnnounceAsync(tracker, wants: true, cancellationToken).ConfigureAwait(false))
                        {
                            lastAnnounce.Restart();
                            wait = TimeSpan.FromMilliseconds(10);
                        }
                        else
                        {
                            useTracker = false;
                            UsedTrackerThroughout = false;
                        }
                    }
                }
                if (!useTracker)
                {
                    for (int i = 0; i < chunks.Count && running.Count < options.DownloadParallelism; i++)
                    {
                        if (Held(i) || running.Values.Any(j => j.Chunk == i))
                            continue;
                        var job = new Job(i, 0, StoreSource(i));
                        running.Add(FetchAsync(job, null, stop.Token), job);
                    }
                }

                if (running.Count > 0)
                {
                    if (wait > TimeSpan.Zero)
                    {
                        using var delay = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                        var timer = Task.Delay(wait, options.Time, delay.Token);
                        await Task.WhenAny(running.Keys.Cast<Task>().Append(timer)).ConfigureAwait(false);
                        delay.Cancel();
                    }
                }
                else if (Missing() > 0 && wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, options.Time, cancellationToken).ConfigureAwait(false);
                }

                foreach (var finished in running.Keys.Where(t => t.IsCompleted).ToList())
                {
                    var job = running[finished];
                    running.Remove(finished);
                    var result = await finished.ConfigureAwait(false);
                    History.Enqueue((job.Chunk, job.Source, result.Kind));
                    if (useTracker && job.AssignmentId != 0)
                    {
                        outcomes.Add(new Outcome
                        {
                            AssignmentId = job.AssignmentId,
                            Chunk = (uint)job.Chunk,
                            Kind = result.Kind,
                            Bytes = (ulong)result.Bytes,
                            Millis = (uint)Math.Min(result.Millis, uint.MaxValue),
                        });
                    }
                    if (result.Kind == Outcome.Types.Kind.Done)
                        continue;
                    if (result.Kind == Outcome.Types.Kind.VerificationFailed)
                        Interlocked.Increment(ref _refetched);
                    if (++attempts[job.Chunk] >= options.ChunkAttemptsMax)
                    {
                        throw new ChainUnavailableException(
                            $"{ObjectName}: chunk {job.Chunk} failed {attempts[job.Chunk]} times (last from {job.Source}: {result.Error?.Message ?? result.Kind.ToString()})");
                    }
                }

                if (useTracker && tracker is not null && lastAnnounce.Elapsed > TimeSpan.FromMilliseconds(LeaseMs / 2.0))
                {
                    useTracker = await TryAnnounceAsync(tracker, wants: true, cancellationToken).ConfigureAwait(false);
                    UsedTrackerThroughout &= useTracker;
                    lastAnnounce.Restart();
                }
            }
            if (useTracker && tracker is not null && outcomes.Count > 0)
            {
                var last = new ExchangeRequest { PeerId = _agent.PeerId, SwarmId = SwarmId, Want = 0 };
                last.Outcomes.AddRange(outcomes);
                try
                {
                    await tracker.UnaryAsync(TrackerMethods.Exchange, last, TrackerCall(cancellationToken)).ConfigureAwait(false);
                }
                catch (RpcException)
                {
                    // the next seeding announce tells the tracker what this peer holds
                }
            }
        }
        finally
        {
            stop.Cancel();
            foreach (var task in running.Keys)
                _ = task.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
        }
    }

    private CallOptions TrackerCall(CancellationToken ct) => new() { Timeout = _agent.Options.TrackerTimeout, CancellationToken = ct };

    private async Task<bool> TryAnnounceAsync(IRpcInvoker tracker, bool wants, CancellationToken cancellationToken)
    {
        try
        {
            var response = await tracker.UnaryAsync(TrackerMethods.Announce, AnnounceRequest(HeldIndexes(), wants), TrackerCall(cancellationToken))
                .ConfigureAwait(false);
            if (response.LeaseMs > 0)
                LeaseMs = response.LeaseMs;
            return true;
        }
        catch (RpcException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private List<uint> HeldIndexes()
    {
        lock (_gate)
            return Enumerable.Range(0, _have.Length).Where(i => _have[i]).Select(i => (uint)i).ToList();
    }

    private bool Held(int chunk)
    {
        lock (_gate)
            return _have[chunk];
    }

    private int Missing()
    {
        lock (_gate)
            return _have.Count(h => !h);
    }

    /// <summary>Marks chunk <paramref name="index"/> (and every other index with the same content) held if the cache has it, pinning it.</summary>
    private bool MarkHeldFromCache(int index)
    {
        string hex = Layout.Chunks[index].Sha256Hex;
        lock (_gate)
        {
            if (_have[index])
                return false;
            if (!_pins.ContainsKey(hex))
            {
                if (_agent.Cache.Pin(hex) is not { } pin)
                    return false;
                _pins.Add(hex, pin);
            }
            _have[index] = true;
            _chunksDone++;
            return true;
        }
    }

    private string StoreSource(int chunk) => $"store chain {Layout.Chunks[chunk].ChainId}";

    private string Describe(Protocol.V1.ChunkSource? source) =>
        source?.KindCase == Protocol.V1.ChunkSource.KindOneofCase.Peer ? $"peer {source.Peer.PeerId} {source.Peer.Address}"
        : source?.KindCase == Protocol.V1.ChunkSource.KindOneofCase.StoreChainId ? $"store chain {source.StoreChainId}"
        : "none";

    private async Task<Result> FetchAsync(Job job, Protocol.V1.ChunkSource? source, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var chunk = Layout.Chunks[job.Chunk];
        var options = _agent.Options;
        var waiting = new Waiting(job.Source, options.Time.GetUtcNow());
        _waiting[job.Chunk] = waiting;
        var clock = Stopwatch.StartNew();
        byte[]? rented = null;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ChunkTimeout);
        try
        {
            bool fromPeer = source?.KindCase == Protocol.V1.ChunkSource.KindOneofCase.Peer;
            ReadOnlyMemory<byte> data;
            if (fromPeer && source!.Peer.DataAddress.Length > 0)
            {
                rented = ArrayPool<byte>.Shared.Rent(chunk.Size);
                data = rented.AsMemory(0, chunk.Size);
                if (!await _agent.Wire.FetchAsync(source.Peer.DataAddress, chunk.Sha256, rented.AsMemory(0, chunk.Size), _agent.DownloadLimit,
                        received => Interlocked.Exchange(ref waiting.BytesReceived, received), timeout.Token).ConfigureAwait(false))
                    return new Result(Outcome.Types.Kind.VerificationFailed, 0, clock.ElapsedMilliseconds);
            }
            else if (fromPeer)
            {
                var fromPeerData = await FromPeerAsync(source!.Peer, chunk, waiting, timeout.Token).ConfigureAwait(false);
                if (fromPeerData is null)
                    return new Result(Outcome.Types.Kind.VerificationFailed, 0, clock.ElapsedMilliseconds);
                data = fromPeerData;
            }
            else if (source is null || source.KindCase == Protocol.V1.ChunkSource.KindOneofCase.StoreChainId)
            {
                data = await _agent.Client.ReadChunkAsync(Layout, job.Chunk, timeout.Token).ConfigureAwait(false);
                await _agent.DownloadLimit.WaitAsync(data.Length, timeout.Token).ConfigureAwait(false);
                Interlocked.Exchange(ref waiting.BytesReceived, data.Length);
            }
            else
            {
                return new Result(Outcome.Types.Kind.SourceFailed, 0, 0, new InvalidOperationException("the tracker named no source"));
            }
            // Never optional: the bytes must match the layout's digest (the store's, not the tracker's or a peer's).
            if (data.Length != chunk.Size || !SHA256.HashData(data.Span).AsSpan().SequenceEqual(chunk.Sha256.Span))
                return new Result(Outcome.Types.Kind.VerificationFailed, 0, clock.ElapsedMilliseconds);
            _agent.Cache.PutVerified(chunk.Sha256, data, cancellationToken);
            for (int i = 0; i < Layout.Chunks.Count; i++)
            {
                // Read after marking: a callback given before the mark gets the chunk, one given after lists it as held.
                if (Layout.Chunks[i].Sha256Hex == chunk.Sha256Hex && MarkHeldFromCache(i))
                    Volatile.Read(ref _onVerified)?.Invoke(i, data);
            }
            if (!Held(job.Chunk))
                return new Result(Outcome.Types.Kind.SourceFailed, 0, 0, new InvalidOperationException("the chunk was evicted as soon as it was cached"));
            Interlocked.Add(ref fromPeer ? ref _bytesFromPeers : ref _bytesFromStore, data.Length);
            return new Result(Outcome.Types.Kind.Done, data.Length, clock.ElapsedMilliseconds);
        }
        catch (CacheFullException)
        {
            throw;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is RpcException or ChainException or OperationCanceledException or IOException)
        {
            return new Result(Outcome.Types.Kind.SourceFailed, 0, clock.ElapsedMilliseconds, e);
        }
        finally
        {
            _waiting.TryRemove(job.Chunk, out _);
            if (rented is not null)
                ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>The chunk from a peer, frame by frame under the download cap; null when the peer sent more (or another size) than the chunk has.</summary>
    private async Task<byte[]?> FromPeerAsync(PeerInfo peer, ObjectChunk chunk, Waiting waiting, CancellationToken cancellationToken)
    {
        if (!Uri.TryCreate(peer.Address, UriKind.Absolute, out var address))
            throw new RpcException(StatusCode.InvalidArgument, $"the tracker named peer '{peer.PeerId}' with a bad address '{peer.Address}'");
        var channel = _agent.ChannelFor(address);
        var request = new PeerChunkRequest { SwarmId = SwarmId, Sha256 = UnsafeByteOperations.UnsafeWrap(chunk.Sha256), RequesterPeerId = _agent.PeerId };
        var buffer = new byte[chunk.Size];
        int received = 0;
        bool first = true;
        await foreach (var frame in channel.ServerStreamingAsync(PeerMethods.GetChunk, request, new CallOptions { CancellationToken = cancellationToken })
                           .WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (first && frame.ChunkSize != (uint)chunk.Size)
                return null;
            first = false;
            if (received + frame.Data.Length > chunk.Size)
                return null;
            await _agent.DownloadLimit.WaitAsync(frame.Data.Length, cancellationToken).ConfigureAwait(false);
            frame.Data.Span.CopyTo(buffer.AsSpan(received));
            received += frame.Data.Length;
            Interlocked.Exchange(ref waiting.BytesReceived, received);
        }
        if (received != chunk.Size)
            throw new RpcException(StatusCode.Unavailable, $"peer {peer.PeerId} ended chunk {chunk.Sha256Hex} after {received} of {chunk.Size} bytes");
        return buffer;
    }
}
