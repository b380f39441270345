using System.Net;
using Chain.Client;
using Chain.Master;
using Chain.Node;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Chain.Storage;
using Chain.Storage.Memory;
using Chain.Storage.RocksDb;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Chain.Server.Tests;

/// <summary>
/// A whole cluster in this process: a master and N storage nodes on real loopback sockets, each node on its own
/// engine (memory by default, RocksDB on request). Fast enough for the unit tier; the real-process tier lives
/// in Chain.Integration.Tests.
/// </summary>
public sealed class InProcessCluster : IAsyncDisposable
{
    private readonly List<RpcServer> _servers = new();
    private readonly List<RpcServer> _nodeServers = new();
    private readonly List<string?> _nodeDirs = new();
    private long? _objectBytesMax;
    private TimeSpan _chunkGcGrace;
    private Func<int, string?>? _zoneOf;
    private readonly CancellationTokenSource _stop = new();
    private Task _detector = Task.CompletedTask;
    private readonly List<IAsyncDisposable> _disposables = new();
    private readonly List<string> _tempDirs = new();
    private Func<int, Func<Uri, IRpcInvoker>?>? _connect;

    private InProcessCluster()
    {
    }

    public Uri MasterAddress { get; private set; } = null!;
    public MasterService Master { get; private set; } = null!;
    public List<StorageNode> Nodes { get; } = new();
    public List<IKvEngine> Engines { get; } = new();
    public List<Uri> NodeAddresses { get; } = new();

    public static async Task<InProcessCluster> StartAsync(int nodes = 3, int? chains = null, int? replicas = null, long? objectBytesMax = null,
        bool rocksDb = false, TimeSpan? failureTimeout = null, Func<int, Func<Uri, IRpcInvoker>?>? connect = null, TimeSpan? chunkGcGrace = null,
        Func<int, string?>? zoneOf = null)
    {
        var cluster = new InProcessCluster { _connect = connect, _chunkGcGrace = chunkGcGrace ?? NodeOptionsDefaults.ChunkGcGrace, _zoneOf = zoneOf };
        var masterEngine = new MemoryEngine(new[] { EngineMasterStateStore.ColumnFamily });
        cluster.Master = new MasterService(new EngineMasterStateStore(masterEngine),
            new MasterOptions { ExpectNodes = nodes, Chains = chains, Replicas = replicas, FailureTimeout = failureTimeout ?? TimeSpan.FromSeconds(3) },
            TimeProvider.System, Loggers.CreateLogger<MasterService>());
        if (failureTimeout is not null)
            cluster._detector = cluster.Master.RunFailureDetectorAsync(cluster._stop.Token);
        var masterRegistry = new RpcServiceRegistry();
        cluster.Master.Register(masterRegistry);
        RpcServer masterServer = await RpcServer.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), masterRegistry, Options());
        cluster._servers.Add(masterServer);
        cluster.MasterAddress = masterServer.Address;

        cluster._objectBytesMax = objectBytesMax;
        for (int i = 0; i < nodes; i++)
        {
            string? dir = null;
            if (rocksDb)
            {
                dir = Path.Combine(Path.GetTempPath(), "chain-test-" + Guid.NewGuid().ToString("N"));
                cluster._tempDirs.Add(dir);
            }
            cluster._nodeDirs.Add(dir);
            cluster.Engines.Add(null!);
            cluster.Nodes.Add(null!);
            cluster._nodeServers.Add(null!);
            cluster.NodeAddresses.Add(null!);
            await cluster.StartNodeAsync(i);
        }
        await cluster.WaitUntilFormedAsync();
        return cluster;
    }

    private static IKvEngine OpenEngine(string? dir) => dir is null
        ? new MemoryEngine(StorageNode.ColumnFamilies)
        : RocksDbEngine.Open(dir, new RocksDbOptions { ColumnFamilies = StorageNode.ColumnFamilies.ToArray(), BlobColumnFamilies = StorageNode.BlobColumnFamilies.ToArray() });

    private async Task StartNodeAsync(int i, IKvEngine? reuse = null)
    {
        IKvEngine engine = reuse ?? OpenEngine(_nodeDirs[i]);
        var node = new StorageNode(engine, new NodeOptions
        {
            NodeId = $"node{i + 1}",
            MasterAddress = MasterAddress,
            Zone = _zoneOf?.Invoke(i) ?? "",
            ObjectBytesMax = _objectBytesMax ?? Limits.ObjectBytesMaxDefault,
            HeartbeatInterval = TimeSpan.FromMilliseconds(100),
            ChunkGcGrace = _chunkGcGrace,
            // Node i's channels to peers and the master (a seam for tests that hold traffic); null: real channels.
            Connect = _connect?.Invoke(i),
        }, Loggers);
        var registry = new RpcServiceRegistry();
        node.Register(registry);
        RpcServer server = await RpcServer.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), registry, Options());
        Engines[i] = engine;
        Nodes[i] = node;
        _nodeServers[i] = server;
        NodeAddresses[i] = server.Address;
        await node.StartAsync(server.Address, CancellationToken.None);
    }

    /// <summary>Crashes node i: its server and replicas stop at once (its engine stays open, unused).</summary>
    public async Task CrashNodeAsync(int i)
    {
        await _nodeServers[i].DisposeAsync();
        await Nodes[i].DisposeAsync();
    }

    /// <summary>Stops node i cleanly: server, replicas, and its engine closed (RocksDB: flushed), so its files can be changed.</summary>
    public async Task StopNodeAsync(int i)
    {
        await CrashNodeAsync(i);
        Engines[i].Dispose();
    }

    /// <summary>Starts a node stopped with <see cref="StopNodeAsync"/> again from its directory, on a new port.</summary>
    public async Task StartStoppedNodeAsync(int i)
    {
        await StartNodeAsync(i);
        await WaitUntilFormedAsync();
    }

    /// <summary>The RocksDB directory of node i (null for memory engines).</summary>
    public string? NodeDirectory(int i) => _nodeDirs[i];

    /// <summary>Starts a crashed node again on its surviving data (same engine), on a new port.</summary>
    public Task RestartCrashedNodeAsync(int i) => StartNodeAsync(i, Engines[i]);

    /// <summary>Waits (bounded) until the master's table satisfies <paramref name="condition"/> and every live node runs it.</summary>
    public async Task WaitForConfigAsync(Func<ClusterConfig, bool> condition, IEnumerable<int> liveNodes, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            ClusterConfig master = Master.Current;
            if (condition(master) && liveNodes.All(i => Nodes[i].Config?.Version == master.Version))
                return;
            await Task.Delay(20, cts.Token);
        }
    }

    /// <summary>
    /// Stops every node (server, replicas, engine), reopens each engine from its directory and starts the nodes
    /// again on new ports. Only meaningful with RocksDB engines.
    /// </summary>
    public async Task RestartAllNodesAsync()
    {
        for (int i = 0; i < Nodes.Count; i++)
        {
            await _nodeServers[i].DisposeAsync();
            await Nodes[i].DisposeAsync();
            Engines[i].Dispose();
        }
        for (int i = 0; i < Nodes.Count; i++)
            await StartNodeAsync(i);
        await WaitUntilFormedAsync();
    }

    /// <summary>Set CHAIN_TEST_LOG=Debug (or another level) to see the nodes' logs on stderr.</summary>
    private static readonly ILoggerFactory Loggers =
        Enum.TryParse(Environment.GetEnvironmentVariable("CHAIN_TEST_LOG"), true, out LogLevel level)
            ? LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; }).SetMinimumLevel(level))
            : NullLoggerFactory.Instance;

    private static RpcServerOptions Options() => new() { Limits = new RpcLimits { MaxMessageBytes = Limits.MessageBytesMax } };

    /// <summary>Waits (bounded) until every node runs the master's current config with all chains.</summary>
    private async Task WaitUntilFormedAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            ClusterConfig master = Master.Current;
            bool addressesCurrent = master.Nodes.Count == Nodes.Count && NodeAddresses.All(a =>
                master.Nodes.Any(n => n.Node.Address == a.ToString().TrimEnd('/')));
            if (master.Chains.Count > 0 && addressesCurrent && Nodes.All(n => n.Config?.Version == master.Version))
                return;
            await Task.Delay(10, timeout.Token);
        }
    }

    public ChainClient CreateClient(TimeSpan? operationTimeout = null, int? chunkBytes = null) => new(new ChainClientOptions
    {
        Master = MasterAddress,
        OperationTimeout = operationTimeout ?? TimeSpan.FromSeconds(30),
        ChunkBytes = chunkBytes ?? Limits.ChunkBytes,
    });

    public RpcChannel Channel(int node) => new(NodeAddresses[node], new RpcLimits { MaxMessageBytes = Limits.MessageBytesMax });

    /// <summary>The nodes of a chain, head first, as indexes into <see cref="Nodes"/>.</summary>
    public int[] ChainNodes(uint chainId) =>
        Master.Current.Chains[(int)chainId].Nodes.Select(id => Nodes.FindIndex(n => n.NodeId == id)).ToArray();

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _detector;
        foreach (RpcServer server in _servers.Concat(_nodeServers))
            await server.DisposeAsync();
        foreach (StorageNode node in Nodes)
            await node.DisposeAsync();
        foreach (IKvEngine engine in Engines)
            engine.Dispose();
        foreach (string dir in _tempDirs)
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
