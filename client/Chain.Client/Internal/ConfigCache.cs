using Chain.Protocol;
using Chain.Protocol.V1;

namespace Chain.Client.Internal;

/// <summary>The cluster has no usable chain table yet (still forming, or a chain/node is missing): transient.</summary>
internal sealed class ClusterNotReadyException(string message) : Exception(message);

/// <summary>Where one request goes: the chain, the epoch of the table used, and the node's address.</summary>
internal readonly record struct Route(uint ChainId, ulong Epoch, string NodeId, Uri Address);

/// <summary>An immutable view of one <see cref="ClusterConfig"/>, indexed for routing.</summary>
internal sealed class ClusterSnapshot
{
    private readonly ChainInfo?[] _chainsById;
    private readonly Dictionary<string, Uri> _addresses;

    public ClusterSnapshot(ClusterConfig config)
    {
        Config = config;
        _chainsById = new ChainInfo?[config.Chains.Count];
        foreach (var chain in config.Chains)
        {
            // Chains are numbered 0..C-1; anything else leaves a hole that routing reports as not ready.
            if (chain.ChainId < (uint)_chainsById.Length)
                _chainsById[chain.ChainId] = chain;
        }
        _addresses = new Dictionary<string, Uri>(StringComparer.Ordinal);
        foreach (var status in config.Nodes)
        {
            var node = status.Node;
            if (node is null || string.IsNullOrEmpty(node.NodeId))
                continue;
            if (Uri.TryCreate(node.Address, UriKind.Absolute, out var uri))
                _addresses[node.NodeId] = uri;
        }
    }

    public ClusterConfig Config { get; }
    public ulong Version => Config.Version;
    public int ChainCount => _chainsById.Length;

    /// <summary>Writes go to the head of the key's chain, reads to its tail or, with <paramref name="anyReplica"/>, to a random member (never a syncing node).</summary>
    public Route RouteKey(string bucket, ReadOnlySpan<byte> key, bool write, bool anyReplica = false)
    {
        if (ChainCount == 0)
            throw new ClusterNotReadyException($"the cluster has no chains yet (config version {Version})");
        uint chainId = Placement.ChainFor(bucket, key, ChainCount);
        return RouteChain(chainId, write, anyReplica);
    }

    public Route RouteChain(uint chainId, bool write, bool anyReplica = false)
    {
        if (chainId >= (uint)ChainCount || _chainsById[chainId] is not { } chain)
            throw new ClusterNotReadyException($"chain {chainId} is missing from config version {Version}");
        if (chain.Nodes.Count == 0)
            throw new ClusterNotReadyException($"chain {chainId} has no nodes in config version {Version}");
        string nodeId = write ? chain.Nodes[0] : anyReplica ? chain.Nodes[Random.Shared.Next(chain.Nodes.Count)] : chain.Nodes[^1];
        if (!_addresses.TryGetValue(nodeId, out var address))
            throw new ClusterNotReadyException($"node '{nodeId}' of chain {chainId} has no address in config version {Version}");
        return new Route(chainId, chain.Epoch, nodeId, address);
    }
}

/// <summary>
/// Caches the master's configuration. Callers that find it stale (a node said stale-epoch / not-head / not-tail /
/// not-ready, or was unreachable) invalidate it; concurrent refreshes are coalesced into one fetch, which is not tied
/// to any single caller's cancellation.
/// </summary>
internal sealed class ConfigCache
{
    private readonly Func<CancellationToken, Task<ClusterConfig>> _fetch;
    private readonly CancellationToken _shutdown;
    private readonly object _gate = new();
    private ClusterSnapshot? _current;
    private bool _stale;
    private Task<ClusterSnapshot>? _inflight;
    private bool _lastFetchFailed;
    private long _lastFailureMs;
    private const long FailedFetchPauseMs = 500;
    private int _fetches;

    public ConfigCache(Func<CancellationToken, Task<ClusterConfig>> fetch, CancellationToken shutdown = default)
    {
        _fetch = fetch;
        _shutdown = shutdown;
    }

    /// <summary>Number of fetches started (for tests and diagnostics).</summary>
    public int Fetches => Volatile.Read(ref _fetches);

    public ClusterSnapshot? Current
    {
        get { lock (_gate) return _current; }
    }

    /// <summary>
    /// The cached snapshot, or a fresh one when there is none, it is stale, or <paramref name="fresh"/> is set. A stale
    /// snapshot is still served while the master is unreachable (the last fetch failed): the data path does not need
    /// the master — every node checks the epoch a request was routed with, so a table that really is out of date
    /// costs a rejected attempt, never a wrong answer — and a fetch keeps being retried in the background.
    /// </summary>
    public Task<ClusterSnapshot> GetAsync(bool fresh, CancellationToken cancellationToken)
    {
        Task<ClusterSnapshot> task;
        lock (_gate)
        {
            if (!fresh && !_stale && _current is not null)
                return Task.FromResult(_current);
            if (!fresh && _lastFetchFailed && _current is not null)
            {
                // Not more than one background attempt per FailedFetchPause while the master stays away.
                if (_inflight is null && Environment.TickCount64 - _lastFailureMs >= FailedFetchPauseMs)
                    _inflight = StartFetch();
                return Task.FromResult(_current);
            }
            task = _inflight ??= StartFetch();
            if (!fresh && _current is not null)
                return FetchOrFallBackAsync(task, _current, cancellationToken);
        }
        return task.WaitAsync(cancellationToken);
    }

    /// <summary>How long a caller holding a stale table waits for the master before routing with the table it has.</summary>
    private static readonly TimeSpan StaleFallbackWait = TimeSpan.FromMilliseconds(500);

    private static async Task<ClusterSnapshot> FetchOrFallBackAsync(Task<ClusterSnapshot> fetch, ClusterSnapshot current, CancellationToken cancellationToken)
    {
        try
        {
            return await fetch.WaitAsync(StaleFallbackWait, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return current; // the master is slow or away: the nodes will say if the table really is out of date
        }
    }

    /// <summary>Marks the cache stale if it still holds the version the caller used (or older).</summary>
    public void Invalidate(ulong? usedVersion)
    {
        lock (_gate)
        {
            if (_current is null)
                return;
            if (usedVersion is null || _current.Version <= usedVersion.Value)
                _stale = true;
        }
    }

    /// <summary>Takes a configuration that arrived another way (e.g. in a bucket response) if it is newer.</summary>
    public void Offer(ClusterConfig? config)
    {
        if (config is null)
            return;
        lock (_gate)
        {
            if (_current is null || config.Version > _current.Version)
            {
                _current = new ClusterSnapshot(config);
                _stale = false;
            }
        }
    }

    private Task<ClusterSnapshot> StartFetch()
    {
        Interlocked.Increment(ref _fetches);
        Task<ClusterSnapshot> fetch = Task.Run(FetchAsync);
        // A background fetch nobody awaits still has its failure observed.
        _ = fetch.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return fetch;
    }

    private async Task<ClusterSnapshot> FetchAsync()
    {
        try
        {
            var config = await _fetch(_shutdown).ConfigureAwait(false);
            var snapshot = new ClusterSnapshot(config);
            lock (_gate)
            {
                // The master is the source of truth: what it says now replaces what we had, even if its version is
                // lower (a master that restarted from scratch).
                _current = snapshot;
                _stale = false;
                _lastFetchFailed = false;
                _inflight = null;
            }
            return snapshot;
        }
        catch
        {
            lock (_gate)
            {
                _inflight = null;
                _lastFetchFailed = true;
                _lastFailureMs = Environment.TickCount64;
            }
            throw;
        }
    }
}
