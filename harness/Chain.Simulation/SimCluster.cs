using System.Security.Cryptography;
using Chain.Master;
using Chain.Node;
using Chain.Protocol.V1;
using Chain.Rpc.Server;
using Chain.Simulation.Network;
using Chain.Simulation.Runtime;
using Chain.Storage;
using Chain.Storage.Memory;

namespace Chain.Simulation;

/// <summary>
/// The real master and storage nodes (MasterService, StorageNode with its ChainReplica, StoreService,
/// ReplicationService) in simulated processes over the in-memory network, each node on its own MemoryEngine
/// that survives crashes. Crash = the process and everything in its memory is gone (queued work, replicas,
/// Sent lists, connections); restart = a new StorageNode on the same engine, as after a real restart.
/// </summary>
internal sealed class SimCluster
{
    public const string MasterHost = "master";
    public const string Bucket = "sim";
    private static readonly Uri MasterAddress = new($"http://{MasterHost}:7000");

    private readonly SimExecutor _executor;
    private readonly SimNetwork _net;
    private readonly SimLog _log;
    private readonly SimulationParameters _parameters;
    private readonly MemoryEngine _masterEngine = new(new[] { EngineMasterStateStore.ColumnFamily });
    private readonly MemoryEngine[] _engines;
    private SimProcess? _masterProcess;
    private CancellationTokenSource? _masterStop;
    private readonly SimProcess _supervisor;

    public SimCluster(SimExecutor executor, SimNetwork net, SimLog log, SimulationParameters parameters)
    {
        _executor = executor;
        _net = net;
        _log = log;
        _parameters = parameters;
        _engines = Enumerable.Range(0, parameters.Nodes).Select(_ => new MemoryEngine(StorageNode.ColumnFamilies)).ToArray();
        NodeProcesses = new SimProcess?[parameters.Nodes];
        _supervisor = executor.NewProcess("supervisor");
        Nodes = new StorageNode?[parameters.Nodes];
    }

    /// <summary>Engine write errors are injected only once this is set (after the cluster formed).</summary>
    public bool DiskErrorsArmed { get; set; }

    public MasterService? Master { get; private set; }
    public SimProcess?[] NodeProcesses { get; }
    public StorageNode?[] Nodes { get; }
    public int NodeCount => _parameters.Nodes;
    public bool MasterUp => _masterProcess is { IsDead: false };
    public long NodeRestarts { get; private set; }

    public static string NodeId(int i) => $"node{i + 1}";

    public bool NodeUp(int i) => NodeProcesses[i] is { IsDead: false };

    // ---------------- master ----------------

    public void StartMaster()
    {
        SimProcess process = _executor.NewProcess(MasterHost);
        _masterProcess = process;
        var stop = new CancellationTokenSource();
        _masterStop = stop;
        process.Post(() =>
        {
            var master = new MasterService(new EngineMasterStateStore(new SimDisk(_masterEngine, process, TimeSpan.FromMilliseconds(_parameters.DiskLatencyMaxMs), 0, () => false)),
                new MasterOptions { ExpectNodes = _parameters.Nodes, Chains = _parameters.Chains, Replicas = _parameters.Replicas },
                process.Time, new Microsoft.Extensions.Logging.Logger<MasterService>(_log));
            var registry = new RpcServiceRegistry();
            master.Register(registry);
            _net.Listen(MasterHost, process, registry);
            Master = master;
            _ = process.Spawn(() => master.RunFailureDetectorAsync(stop.Token));
        });
    }

    public void CrashMaster()
    {
        if (_masterProcess is not { IsDead: false } process)
            return;
        process.Kill();
        _net.StopListening(MasterHost);
        _net.ResetCallsOf(process);
        Master = null;
        _log.Event("crash master");
    }

    public void RestartMaster()
    {
        if (MasterUp)
            return;
        _log.Event("restart master");
        StartMaster();
    }

    public bool PauseMaster(bool pause)
    {
        if (_masterProcess is not { IsDead: false } process)
            return false;
        if (pause)
            process.Pause();
        else
            process.Resume();
        return true;
    }

    // ---------------- nodes ----------------

    public void StartNode(int i)
    {
        string host = NodeId(i);
        SimProcess process = _executor.NewProcess(host);
        NodeProcesses[i] = process;
        var disk = new SimDisk(_engines[i], process, TimeSpan.FromMilliseconds(_parameters.DiskLatencyMaxMs), _parameters.DiskErrorPermille / 1000.0, () => DiskErrorsArmed);
        process.Post(() =>
        {
            var node = new StorageNode(disk, new NodeOptions
            {
                NodeId = host,
                MasterAddress = MasterAddress,
                Time = process.Time,
                Connect = uri => _net.Connect(process, uri),
                Spawn = process.Spawn,
                SignalContinuations = TaskCreationOptions.None,
            }, _log);
            var registry = new RpcServiceRegistry();
            node.Register(registry);
            _net.Listen(host, process, registry);
            Nodes[i] = node;
            _ = process.Spawn(async () =>
            {
                try
                {
                    await node.StartAsync(new Uri($"http://{host}:7400"), CancellationToken.None);
                }
                catch (StorageException e)
                {
                    // The real process would exit on a failed start; its supervisor starts it again.
                    _log.Event($"{host} failed to start: {e.Message}");
                    CrashNode(i);
                    _executor.At(_executor.Now + TimeSpan.TicksPerSecond, _supervisor, () => RestartNode(i));
                }
            });
        });
    }

    public void CrashNode(int i)
    {
        if (NodeProcesses[i] is not { IsDead: false } process)
            return;
        process.Kill();
        _net.StopListening(NodeId(i));
        _net.ResetCallsOf(process);
        Nodes[i] = null;
        _log.Event($"crash {NodeId(i)}");
    }

    public void RestartNode(int i)
    {
        if (NodeUp(i))
            return;
        NodeRestarts++;
        _log.Event($"restart {NodeId(i)}");
        StartNode(i);
    }

    public void Pause(int i, bool pause)
    {
        if (NodeProcesses[i] is not { IsDead: false } process)
            return;
        if (pause)
            process.Pause();
        else
            process.Resume();
    }

    public void ResumeAll()
    {
        foreach (SimProcess? p in NodeProcesses)
            if (p is { IsDead: false, IsPaused: true })
                p.Resume();
        if (_masterProcess is { IsDead: false, IsPaused: true })
            _masterProcess.Resume();
    }

    // ---------------- observation ----------------

    /// <summary>True once the master has built the table, the bucket exists and every node runs the current config.</summary>
    public bool Formed() =>
        Master is { } master && master.Current.Chains.Count > 0 && master.Current.Buckets.Count > 0
        && Nodes.All(n => n is not null && n.HasFreshConfig && n.Config?.Version == master.Current.Version);

    /// <summary>
    /// Null when the cluster has settled: full chains, nobody syncing, every node on the master's config, and the
    /// members of every chain holding identical object records with everything acknowledged. Else what is missing.
    /// </summary>
    public string? Unsettled()
    {
        if (Master is not { } master)
            return "master down";
        ClusterConfig config = master.Current;
        int replicas = Math.Min(_parameters.Replicas, _parameters.Nodes);
        for (int i = 0; i < Nodes.Length; i++)
        {
            if (Nodes[i] is not { } node)
                return $"{NodeId(i)} down";
            if (!node.HasFreshConfig || node.Config?.Version != config.Version)
                return $"{NodeId(i)} runs config {node.Config?.Version}, master has {config.Version}";
        }
        foreach (ChainInfo chain in config.Chains)
        {
            if (chain.Nodes.Count != replicas || chain.Syncing.Count > 0)
                return $"chain {chain.ChainId}: [{string.Join(",", chain.Nodes)}] syncing [{string.Join(",", chain.Syncing)}]";
            ulong? seq = null;
            string? digest = null;
            foreach (string id in chain.Nodes)
            {
                StorageNode node = Nodes[int.Parse(id.AsSpan(4), System.Globalization.CultureInfo.InvariantCulture) - 1]!;
                ChainReplica? replica = node.GetReplica(chain.ChainId);
                if (replica is null || replica.Role.Epoch != chain.Epoch)
                    return $"chain {chain.ChainId}: {id} has no replica at epoch {chain.Epoch}";
                if (id == chain.Nodes[^1] && !node.HasReadLease)
                    return $"chain {chain.ChainId}: tail {id} holds no read lease";
                if (replica.AckedSeq != replica.DurableSeq)
                    return $"chain {chain.ChainId}: {id} acked {replica.AckedSeq} of {replica.DurableSeq}";
                if (seq is not null && replica.DurableSeq != seq)
                    return $"chain {chain.ChainId}: {id} at {replica.DurableSeq}, predecessor at {seq}";
                seq = replica.DurableSeq;
            }
            foreach (string id in chain.Nodes)
            {
                StorageNode node = Nodes[int.Parse(id.AsSpan(4), System.Globalization.CultureInfo.InvariantCulture) - 1]!;
                string d = ObjectsDigest(node, chain.ChainId);
                if (digest is not null && d != digest)
                    return $"DIVERGED chain {chain.ChainId}: {id} holds other object records than its predecessor at the same sequence number {seq}";
                digest = d;
            }
        }
        return null;
    }

    private static string ObjectsDigest(StorageNode node, uint chainId)
    {
        byte[] prefix = NodeStore.ChainPrefix(chainId);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using IKvIterator it = node.Store.Engine.Iterate(NodeStore.Objects, prefix, KvKeys.PrefixUpperBound(prefix));
        for (it.SeekToFirst(); it.Valid; it.Next())
        {
            hash.AppendData(it.Key);
            hash.AppendData(it.Value);
        }
        return Convert.ToHexString(hash.GetHashAndReset());
    }
}
