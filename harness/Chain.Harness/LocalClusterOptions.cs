namespace Chain.Harness;

/// <summary>Where a <see cref="LocalCluster"/>'s processes listen.</summary>
public enum ClusterNetwork
{
    /// <summary>Every process on 127.0.0.1 with its own port (no privileges needed).</summary>
    Loopback,

    /// <summary>
    /// Every process in its own network namespace (root only), joined by a bridge in the root namespace where the
    /// harness and its clients run; see <see cref="NamespaceNetwork"/>. Needed by <c>Faults.NetworkNemesis</c>.
    /// </summary>
    Namespaces,

    /// <summary>
    /// Loopback, but every process advertises the port of an in-harness TCP proxy (<see cref="ProxyNetwork"/>) through
    /// which every link between processes passes: the non-root way for <c>Faults.NetworkNemesis</c> to cut links.
    /// </summary>
    Proxies,

    /// <summary>
    /// Every process inside one existing network namespace (root only), on its address with ports
    /// <see cref="LocalCluster.NamespacePort"/>+k (k = 0 master, i+1 node i); see <see cref="LocalClusterOptions.SharedNamespace"/>.
    /// The distribution benchmark puts the whole cluster behind one shaped link this way: the processes talk to each other
    /// over the namespace's loopback, everyone else reaches them through its one link.
    /// </summary>
    SharedNamespace,
}

/// <summary>The namespace of <see cref="ClusterNetwork.SharedNamespace"/>: the launcher running a command in it (<c>ip netns exec NAME</c>) and its address.</summary>
public sealed record SharedNamespacePlacement(IReadOnlyList<string> Launcher, System.Net.IPAddress Address);

/// <summary>How <see cref="LocalCluster.StartAsync"/> lays out a cluster of real server processes on loopback.</summary>
public sealed class LocalClusterOptions
{
    /// <summary>Number of storage nodes (the master comes on top).</summary>
    public int Nodes { get; set; } = 3;

    /// <summary>
    /// Root of the cluster's files: the master keeps its data in <c>master/</c>, node <c>nodeK</c> in <c>nodeK/</c>,
    /// and each process's stderr is appended to <c>&lt;role&gt;.log</c> beside them. Kept after the cluster stops
    /// unless <see cref="DeleteDataOnDispose"/> is set.
    /// </summary>
    public required string DataDirectory { get; set; }

    /// <summary>Master port; nodes use BasePort+1..BasePort+Nodes. 0 picks free ephemeral ports.</summary>
    public int BasePort { get; set; }

    /// <summary>Number of chains (server default: one per node).</summary>
    public int? Chains { get; set; }

    /// <summary>Replicas per chain (server default: min(3, nodes)).</summary>
    public int? Replicas { get; set; }

    /// <summary>How long the master waits for a node's heartbeat before removing it from its chains (server default when null).</summary>
    public TimeSpan? FailureTimeout { get; set; }

    /// <summary>Largest object a node accepts (server default when null).</summary>
    public long? MaxObjectBytes { get; set; }

    /// <summary>
    /// The zone of node index i (0-based), passed as <c>--zone</c>; null or an empty result: the node has no zone.
    /// <see cref="RoundRobinZones"/> gives z1..zK in turn.
    /// </summary>
    public Func<int, string?>? ZoneOf { get; set; }

    /// <summary>Zones z1..z<paramref name="zones"/> assigned to the nodes in turn (node 0 → z1, node 1 → z2, ...).</summary>
    public static Func<int, string?> RoundRobinZones(int zones)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(zones, 1);
        return i => "z" + (i % zones + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Extra arguments appended to every storage node's command line (e.g. <c>--unsafe-test-break ack-before-tail</c>).</summary>
    public IReadOnlyList<string> ExtraNodeArguments { get; set; } = [];

    /// <summary>Extra environment variables for every storage node process (e.g. <c>CHAIN_ALLOW_UNSAFE_TEST_BREAKS=1</c>).</summary>
    public IReadOnlyDictionary<string, string> NodeEnvironment { get; set; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Node ids by index; null: <c>node1</c>..<c>nodeN</c> (<see cref="LocalCluster.NodeId"/>). A restored cluster keeps its backup's ids.</summary>
    public IReadOnlyList<string>? NodeIds { get; set; }

    /// <summary>
    /// Runs after the ports and addresses are chosen and before any process starts: lays out data directories (a
    /// restore from a backup does, with the server's offline restore commands). The master then starts on the data
    /// it finds, exactly as on a restart.
    /// </summary>
    public Func<LocalClusterLayout, CancellationToken, Task>? PrepareDataAsync { get; set; }

    internal string IdOf(int index) => NodeIds is { } ids ? ids[index] : LocalCluster.NodeId(index);

    /// <summary>Loopback (default) or one network namespace per process (root only).</summary>
    public ClusterNetwork Network { get; set; } = ClusterNetwork.Loopback;

    /// <summary>Where the processes run with <see cref="ClusterNetwork.SharedNamespace"/> (required then, ignored otherwise).</summary>
    public SharedNamespacePlacement? SharedNamespace { get; set; }

    /// <summary>
    /// BellJar (root only, needs <see cref="ClusterNetwork.Namespaces"/>): when set, each process's namespace is sealed
    /// before it starts — outbound traffic dropped but for its role's manifest (<see cref="BellJar.SealedNetwork"/>),
    /// every other attempt recorded. Null: no seal.
    /// </summary>
    public BellJar.ManifestSet? Seal { get; set; }

    /// <summary>
    /// When set (root only), each node's data directory is a tmpfs of this many bytes, mounted at start and unmounted
    /// on dispose, so that <c>Faults.DiskNemesis</c> can fill it. Null: the data directories are plain directories.
    /// </summary>
    public long? NodeDataTmpfsBytes { get; set; }

    /// <summary>Path of Chain.Server.dll; null means <see cref="ServerLocator"/>'s search.</summary>
    public string? ServerDllPath { get; set; }

    /// <summary>Bound on the whole start-up: every READY line plus the cluster becoming healthy.</summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a graceful stop (SIGTERM) may take before the process is killed.</summary>
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Delete <see cref="DataDirectory"/> when the cluster is disposed (for throw-away clusters).</summary>
    public bool DeleteDataOnDispose { get; set; }

    /// <summary>Also start an S3 gateway process (`Chain.Server gateway`) once the cluster is healthy (loopback only).</summary>
    public LocalGatewayOptions? Gateway { get; set; }

    /// <summary>Also start the distribution tier's tracker (`Chain.Server tracker`) once the cluster is healthy (loopback only).</summary>
    public LocalTrackerOptions? Tracker { get; set; }

    internal void Validate()
    {
        if (Nodes < 1)
            throw new ArgumentOutOfRangeException(nameof(Nodes), Nodes, "a cluster needs at least one node");
        if (string.IsNullOrWhiteSpace(DataDirectory))
            throw new ArgumentException("DataDirectory must be set", nameof(DataDirectory));
        if (BasePort < 0 || BasePort + Nodes > 65535)
            throw new ArgumentOutOfRangeException(nameof(BasePort), BasePort, $"ports {BasePort}..{BasePort + Nodes} are not all valid TCP ports");
        if (Chains is < 1)
            throw new ArgumentOutOfRangeException(nameof(Chains), Chains, "chains must be at least 1");
        if (Replicas is < 1 || Replicas > Nodes)
            throw new ArgumentOutOfRangeException(nameof(Replicas), Replicas, $"replicas must be between 1 and the number of nodes ({Nodes})");
        if (MaxObjectBytes is < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxObjectBytes), MaxObjectBytes, "max object bytes must be positive");
        if (ExtraNodeArguments is null || ExtraNodeArguments.Any(a => a is null))
            throw new ArgumentException("ExtraNodeArguments must not be or contain null", nameof(ExtraNodeArguments));
        if (NodeEnvironment is null || NodeEnvironment.Keys.Any(string.IsNullOrEmpty))
            throw new ArgumentException("NodeEnvironment must not be null or have empty names", nameof(NodeEnvironment));

        if (NodeIds is not null && (NodeIds.Count != Nodes || NodeIds.Any(id => string.IsNullOrWhiteSpace(id) || id.IndexOfAny(new[] { '/', '\\', '.' }) >= 0)
                || NodeIds.Distinct(StringComparer.Ordinal).Count() != Nodes))
            throw new ArgumentException($"NodeIds must hold {Nodes} distinct ids usable as directory names", nameof(NodeIds));
        if (!Enum.IsDefined(Network))
            throw new ArgumentOutOfRangeException(nameof(Network), Network, "unknown network mode");
        if (Network == ClusterNetwork.SharedNamespace && (SharedNamespace is null || SharedNamespace.Launcher.Count == 0))
            throw new ArgumentException("Network = SharedNamespace needs SharedNamespace (a launcher and an address)", nameof(SharedNamespace));
        if (Seal is not null && Network != ClusterNetwork.Namespaces)
            throw new ArgumentException("a sealed cluster (Seal) needs Network = Namespaces", nameof(Seal));
        if (NodeDataTmpfsBytes is < TmpfsMounts.BytesMin)
            throw new ArgumentOutOfRangeException(nameof(NodeDataTmpfsBytes), NodeDataTmpfsBytes, $"a node's tmpfs needs at least {TmpfsMounts.BytesMin} bytes (RocksDB preallocates its WAL)");
        if (Gateway is not null && Network != ClusterNetwork.Loopback)
            throw new ArgumentException("a gateway is started only on a loopback cluster", nameof(Gateway));
        if (Gateway is { } gateway && gateway.AccessKeys.Any(k => k.Key.Length == 0 || k.Value.Length == 0 || k.Key.Contains(':')))
            throw new ArgumentException("gateway access keys need an id without ':' and a secret", nameof(Gateway));
        if (Tracker is not null && Network is not (ClusterNetwork.Loopback or ClusterNetwork.SharedNamespace))
            throw new ArgumentException("a tracker is started only on a loopback cluster or in the cluster's shared namespace", nameof(Tracker));
        if (Tracker is { } tracker && (tracker.Port is < 0 or > 65535 || tracker.LeaseMs is < 100 || tracker.MaxStoreFetches is < 1))
            throw new ArgumentException("tracker: port 0-65535, lease at least 100 ms, max store fetches at least 1", nameof(Tracker));
        if (StartTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(StartTimeout), StartTimeout, "start timeout must be positive");
        if (StopTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(StopTimeout), StopTimeout, "stop timeout must be positive");
    }
}

/// <summary>The gateway a <see cref="LocalCluster"/> starts (see <see cref="LocalClusterOptions.Gateway"/>).</summary>
public sealed record LocalGatewayOptions
{
    /// <summary>The default access key of a local development cluster (`chain up`).</summary>
    public const string DevAccessKeyId = "chain-dev";
    public const string DevSecretKey = "chain-dev-secret";

    /// <summary>The port on 127.0.0.1; 0 picks a free one.</summary>
    public int Port { get; init; }
    /// <summary>Access key id → secret (empty: no authentication).</summary>
    public IReadOnlyDictionary<string, string> AccessKeys { get; init; } = new Dictionary<string, string> { [DevAccessKeyId] = DevSecretKey };
    public IReadOnlyList<string> AnonymousReadBuckets { get; init; } = [];
    public long? MaxObjectBytes { get; init; }

    /// <summary>Serve the build caches (ccache, Bazel, Gradle) under <see cref="BuildCachePrefix"/> too.</summary>
    public bool BuildCache { get; init; } = true;

    public const string BuildCachePrefix = "/_cache";
}

/// <summary>The tracker a <see cref="LocalCluster"/> starts (see <see cref="LocalClusterOptions.Tracker"/>).</summary>
public sealed record LocalTrackerOptions
{
    /// <summary>The port on 127.0.0.1; 0 picks a free one.</summary>
    public int Port { get; init; }
    /// <summary>The peers' lease (null: the tracker's default).</summary>
    public int? LeaseMs { get; init; }
    /// <summary>Concurrent store fetches per swarm (null: the tracker's default).</summary>
    public int? MaxStoreFetches { get; init; }
}

/// <summary>Where a <see cref="LocalCluster"/> keeps its data and how its nodes are reached (for <see cref="LocalClusterOptions.PrepareDataAsync"/>).</summary>
public sealed record LocalClusterLayout(string ServerDllPath, string DotnetHost, string MasterDataDirectory, IReadOnlyList<LocalClusterNodeLayout> Nodes);

/// <summary>One node of a <see cref="LocalClusterLayout"/>: its id, data directory and the address the others use.</summary>
public sealed record LocalClusterNodeLayout(string NodeId, string DataDirectory, string Address);
