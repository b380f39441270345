using System.Collections.Concurrent;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Chain.Storage;
using Chain.Storage.Memory;
using Chain.Storage.RocksDb;
using Microsoft.Extensions.Logging;

namespace Chain.Node;

/// <summary>
/// A storage node: registers with the master, follows the chain table, and runs one <see cref="ChainReplica"/>
/// per chain it belongs to. The data path keeps working with the last known table while the master is away.
/// </summary>
public sealed class StorageNode : IAsyncDisposable
{
    private readonly NodeOptions _options;
    private readonly NodeStore _store;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<uint, ChainReplica> _replicas = new();
    private readonly ConcurrentDictionary<string, IRpcInvoker> _channels = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _configGate = new(1, 1);
    private readonly object _refreshLock = new();
    private readonly CancellationTokenSource _stopping = new();
    // The master's channel: not shared with the chain channels, and replaced by a new one (a new connection) after
    // consecutive failed calls — an HTTP/2 connection whose packets were dropped waits out TCP's retransmission
    // back-off, seconds after the master is reachable again.
    private IRpcInvoker _master;
    private int _masterFailures;

    /// <summary>Register and heartbeat calls: longer than a lease (a later answer grants no lease anyway).</summary>
    private static readonly TimeSpan MasterCallTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ConfigFetchTimeout = TimeSpan.FromSeconds(5);
    private const int MasterFailuresBeforeReconnect = 2;
    private Task _heartbeats = Task.CompletedTask;
    private ClusterConfig? _config;
    private Task<ClusterConfig?>? _refresh;
    private Uri? _advertised;
    private bool _fresh;
    private long _leaseUntilTimestamp;

    public StorageNode(IKvEngine engine, NodeOptions options, ILoggerFactory loggers)
    {
        options.Validate();
        _options = options;
        _store = new NodeStore(engine);
        _loggers = loggers;
        _log = loggers.CreateLogger<StorageNode>();
        _master = Connect(options.MasterAddress);
        InFlightBytes = new ByteBudget(Limits.NodeInFlightBytesMax, options.SignalContinuations);
        Integrity = new ChunkIntegrity(this, loggers.CreateLogger<ChunkIntegrity>());
        string? owner = _store.LoadNodeId();
        if (owner is not null && owner != options.NodeId)
            throw new InvalidOperationException($"data directory belongs to node '{owner}', not '{options.NodeId}'");
    }

    public static IReadOnlyList<string> ColumnFamilies => NodeStore.ColumnFamilies;
    public static IReadOnlyList<string> BlobColumnFamilies => NodeStore.BlobColumnFamilies;

    public string NodeId => _options.NodeId;
    internal NodeOptions Options => _options;
    internal NodeStore Store => _store;
    /// <summary>Chunk bytes in flight from this node as head, over all its chains.</summary>
    internal ByteBudget InFlightBytes { get; }
    /// <summary>Detection, reporting and repair of damaged chunks.</summary>
    internal ChunkIntegrity Integrity { get; }
    public ClusterConfig? Config => Volatile.Read(ref _config);

    /// <summary>
    /// True once this process has fetched the config from the master. Until then the node serves no client:
    /// the table it persisted before a restart may be stale (it may have been removed from its chains).
    /// </summary>
    public bool HasFreshConfig => Volatile.Read(ref _fresh);

    /// <summary>
    /// Whether this node holds a read lease: granted by a heartbeat answer that confirmed the config this node
    /// runs, valid for the granted time from when the heartbeat was sent (monotonic clock, which keeps running
    /// while the process is stopped). A tail without a lease answers no reads.
    /// </summary>
    public bool HasReadLease => _options.Time.GetTimestamp() < Interlocked.Read(ref _leaseUntilTimestamp);

    /// <summary>Registers the RPC services of a node.</summary>
    public void Register(RpcServiceRegistry registry)
    {
        new StoreService(this, _loggers.CreateLogger<StoreService>()).Register(registry);
        new ReplicationService(this, _loggers.CreateLogger<ReplicationService>()).Register(registry);
        new AdminService(this).Register(registry);
        new ChunkService(this, _loggers.CreateLogger<ChunkService>()).Register(registry);
        new BackupService(this, _loggers.CreateLogger<BackupService>()).Register(registry);
    }

    /// <summary>Loads the last known config, then registers with the master in the background and follows it.</summary>
    public async Task StartAsync(Uri? advertisedAddress, CancellationToken cancellationToken)
    {
        _advertised = advertisedAddress ?? _options.AdvertisedAddress
            ?? throw new ArgumentException("the node needs an advertised address", nameof(advertisedAddress));
        if (_store.LoadNodeId() is null)
            await _store.SaveNodeIdAsync(_options.NodeId);
        ClusterConfig? saved = _store.LoadConfig();
        if (saved is not null)
            await ApplyConfigAsync(saved, persist: false);
        _heartbeats = _options.Spawn(() => FollowMasterAsync(_stopping.Token));
    }

    internal ChainReplica? GetReplica(uint chainId) => _replicas.TryGetValue(chainId, out ChainReplica? r) ? r : null;

    internal IRpcInvoker Channel(Uri address) => _channels.GetOrAdd(address.ToString(), _ => Connect(address));

    private IRpcInvoker Connect(Uri address) => _options.Connect is { } connect
        ? connect(address)
        : new RpcChannel(address, new RpcLimits { MaxMessageBytes = Limits.MessageBytesMax });

    /// <summary>
    /// Counts a failed call to the master; after <see cref="MasterFailuresBeforeReconnect"/> in a row the channel is
    /// replaced, and the old one is disposed once every call on it has timed out.
    /// </summary>
    private void MasterCallFailed()
    {
        if (++_masterFailures < MasterFailuresBeforeReconnect)
            return;
        _masterFailures = 0;
        IRpcInvoker retired = Interlocked.Exchange(ref _master, Connect(_options.MasterAddress));
        _ = _options.Spawn(async () =>
        {
            try
            {
                await Task.Delay(ConfigFetchTimeout * 2, _options.Time, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
            }
            retired.Dispose();
        });
    }

    /// <summary>Fetches the config from the master now (coalescing concurrent callers); null if unreachable.</summary>
    internal Task<ClusterConfig?> RefreshConfigAsync()
    {
        lock (_refreshLock)
        {
            if (_refresh is { IsCompleted: false })
                return _refresh;
            _refresh = FetchAndApplyAsync();
            return _refresh;
        }
    }

    private async Task<ClusterConfig?> FetchAndApplyAsync()
    {
        try
        {
            ClusterConfig config = await _master.UnaryAsync(MasterMethods.GetConfig, new GetConfigRequest(),
                new CallOptions { Timeout = ConfigFetchTimeout, CancellationToken = _stopping.Token });
            await ApplyConfigAsync(config, persist: true);
            Volatile.Write(ref _fresh, true);
            return config;
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            _log.LogWarning("fetching the config from the master failed: {Error}", e.Message);
            return null;
        }
    }

    private async Task FollowMasterAsync(CancellationToken stop)
    {
        bool registered = false;
        TimeSpan retry = TimeSpan.FromMilliseconds(100);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                if (!registered)
                {
                    await _master.UnaryAsync(MasterMethods.Register, new RegisterRequest
                    {
                        Node = new NodeInfo { NodeId = _options.NodeId, Address = _advertised!.ToString().TrimEnd('/'), Zone = _options.Zone },
                    }, new CallOptions { Timeout = MasterCallTimeout, CancellationToken = stop });
                    registered = true;
                    _log.LogInformation("registered with the master at {Master}", _options.MasterAddress);
                    await RefreshConfigAsync();
                }
                var heartbeat = new HeartbeatRequest { NodeId = _options.NodeId, ConfigVersion = Config?.Version ?? 0 };
                foreach (ChainReplica replica in _replicas.Values)
                {
                    // The caught-up flag is reported with the epoch it belongs to (see ChainReplica._syncComplete).
                    (ulong epoch, bool caughtUp) = replica.SyncState;
                    heartbeat.Chains.Add(new ChainProgress
                    {
                        ChainId = replica.ChainId, Epoch = epoch, AppliedSeq = replica.DurableSeq, CaughtUp = caughtUp,
                        SyncBytes = (ulong)replica.SyncBytesReceived,
                    });
                }
                long sentAt = _options.Time.GetTimestamp();
                HeartbeatResponse beat = await _master.UnaryAsync(MasterMethods.Heartbeat, heartbeat,
                    new CallOptions { Timeout = MasterCallTimeout, CancellationToken = stop });
                if (beat.ConfigVersion == heartbeat.ConfigVersion && _fresh)
                {
                    long until = sentAt + (long)(beat.LeaseMs / 1000.0 * _options.Time.TimestampFrequency);
                    if (until > Interlocked.Read(ref _leaseUntilTimestamp))
                        Interlocked.Exchange(ref _leaseUntilTimestamp, until);
                }
                // Fetch the new table in the background: heartbeats keep their pace whatever the fetch costs. Also
                // while this process has not fetched it yet (the fetch after registering failed): the persisted
                // table may carry the master's current version, and without a fetch the node would never serve.
                if (!Volatile.Read(ref _fresh) || beat.ConfigVersion != (Config?.Version ?? ulong.MaxValue))
                    _ = RefreshConfigAsync();
                retry = TimeSpan.FromMilliseconds(100);
                _masterFailures = 0;
                await Task.Delay(_options.HeartbeatInterval, _options.Time, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException || !stop.IsCancellationRequested)
            {
                if (e is RpcException { Status: StatusCode.FailedPrecondition })
                    registered = false;
                if (e is RpcException { Status: StatusCode.DeadlineExceeded or StatusCode.Unavailable })
                    MasterCallFailed();
                if (e is RpcException)
                    _log.LogDebug("node {Node}: master unreachable or refused: {Error}", _options.NodeId, e.Message);
                else
                    _log.LogError(e, "node {Node}: following the master failed; retrying", _options.NodeId);
                try
                {
                    await Task.Delay(retry, _options.Time, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                retry = TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, _options.HeartbeatInterval.Ticks));
            }
        }
    }

    /// <summary>Adopts a config if it is newer than the current one: creates or updates this node's replicas.</summary>
    private async Task ApplyConfigAsync(ClusterConfig config, bool persist)
    {
        await _configGate.WaitAsync();
        try
        {
            ClusterConfig? current = _config;
            if (current is not null && config.Version <= current.Version)
                return;
            if (persist)
                await _store.SaveConfigAsync(config);
            var addresses = config.Nodes.ToDictionary(n => n.Node.NodeId, n => n.Node, StringComparer.Ordinal);
            foreach (ChainInfo chain in config.Chains)
            {
                // A syncing node sits after the tail: it receives the tail's stream but is not a member.
                var line = chain.Nodes.Concat(chain.Syncing).ToList();
                int position = line.IndexOf(_options.NodeId);
                if (position < 0)
                    continue;
                bool syncing = position >= chain.Nodes.Count;
                NodeInfo? predecessor = position > 0 ? addresses.GetValueOrDefault(line[position - 1]) : null;
                NodeInfo? successor = position < line.Count - 1 ? addresses.GetValueOrDefault(line[position + 1]) : null;
                bool successorSyncing = position + 1 >= chain.Nodes.Count && successor is not null;
                var role = new ChainRole(chain.ChainId, chain.Epoch, position, line.Count, predecessor, successor, syncing, successorSyncing);
                if (_replicas.TryGetValue(chain.ChainId, out ChainReplica? replica) && syncing && !replica.Role.Syncing)
                {
                    // Rejoining as a syncing node without having seen the config that removed this node (it was
                    // paused or cut off): the replica still holds what it had in flight as a member, e.g. writes it
                    // proposed as a deposed head. Those were never committed by the chain and the sync replaces them,
                    // so they must not be acknowledged: a syncing replica has no successor and would count as alone.
                    // Start a fresh replica; disposing the old one fails its waiters (clients retry at the head).
                    _log.LogWarning("node {Node} rejoins chain {Chain} as a syncing node (epoch {Epoch}); dropping its previous replica",
                        _options.NodeId, chain.ChainId, chain.Epoch);
                    _replicas.TryRemove(chain.ChainId, out _);
                    await replica.DisposeAsync();
                    replica = null;
                }
                if (replica is not null)
                    replica.UpdateRole(role);
                else
                    _replicas[chain.ChainId] = new ChainReplica(_store, _options, role, Channel, _loggers.CreateLogger<ChainReplica>(), InFlightBytes);
            }
            // Chains this node was removed from: stop serving them at once (a deposed replica must answer
            // nothing). Its data stays on disk for a later sync.
            foreach (uint chainId in _replicas.Keys.ToArray())
            {
                bool member = config.Chains.Any(c => c.ChainId == chainId && (c.Nodes.Contains(_options.NodeId) || c.Syncing.Contains(_options.NodeId)));
                if (!member && _replicas.TryRemove(chainId, out ChainReplica? removed))
                {
                    _log.LogWarning("node {Node} is no longer in chain {Chain} (config version {Version}); replica stopped",
                        _options.NodeId, chainId, config.Version);
                    await removed.DisposeAsync();
                }
            }
            Volatile.Write(ref _config, config);
            _log.LogInformation("running config version {Version}: {Count} of {Chains} chains on this node",
                config.Version, _replicas.Count, config.Chains.Count);
        }
        finally
        {
            _configGate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        try
        {
            await _heartbeats;
        }
        catch (OperationCanceledException)
        {
        }
        foreach (ChainReplica replica in _replicas.Values)
            await replica.DisposeAsync();
        foreach (IRpcInvoker channel in _channels.Values)
            channel.Dispose();
        _master.Dispose();
    }
}
