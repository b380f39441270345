using System.Globalization;
using Chain.Client;

namespace Chain.Harness.BellJar;

/// <summary>
/// One BellJar drill scenario: a class with a name, a time budget and a body that starts its own sealed cluster
/// through <see cref="DrillContext.StartClusterAsync"/>, writes through the context's ledger, measures, and returns.
/// The runner adds the parts every scenario shares: the budget, the watch for undeclared attempts (which fails the
/// scenario at once), the per-role rows and the clean-up. A scenario throws <see cref="DrillFailure"/> for a failed
/// check (a thrown exception of any other kind fails it too, with the exception's message).
/// </summary>
public interface IDrillScenario
{
    /// <summary>The name on the command line: <c>./chain drill NAME</c>.</summary>
    string Name { get; }

    string Description { get; }

    /// <summary>Sets the scenario belongs to: "short" (CI) and/or "full". Empty for a scenario not available yet.</summary>
    IReadOnlyList<string> Sets { get; }

    /// <summary>The whole scenario (cluster start to data check) must end within this time.</summary>
    TimeSpan Budget { get; }

    /// <summary>Runs the scenario; measurements and per-role times go into <paramref name="context"/>.</summary>
    Task RunAsync(DrillContext context, CancellationToken ct);
}

/// <summary>The fixed parts of a scenario (name, description, sets, budget); subclasses write the body.</summary>
public abstract class DrillScenario : IDrillScenario
{
    protected DrillScenario(string name, string description, TimeSpan budget, params string[] sets)
    {
        Name = name;
        Description = description;
        Budget = budget;
        Sets = sets;
    }

    public string Name { get; }

    public string Description { get; }

    public IReadOnlyList<string> Sets { get; }

    public TimeSpan Budget { get; }

    public abstract Task RunAsync(DrillContext context, CancellationToken ct);
}

/// <summary>A check of a scenario that did not hold.</summary>
public sealed class DrillFailure : Exception
{
    public DrillFailure(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A scenario's verdict.</summary>
public enum DrillStatus
{
    Pass,
    Fail,
}

/// <summary>Options of a drill run.</summary>
public sealed record DrillOptions
{
    /// <summary>Where the clusters' data and logs go (one directory per scenario).</summary>
    public required string WorkDirectory { get; init; }

    /// <summary>Seeds random choices (start order, keys, victims); printed so a run can be repeated.</summary>
    public long Seed { get; init; }

    /// <summary>The manifests to seal with (default: <see cref="ManifestSet.Load"/> of the default directory).</summary>
    public ManifestSet? Manifests { get; init; }

    public string? ServerDllPath { get; init; }

    /// <summary>Progress lines; null for none.</summary>
    public TextWriter? Log { get; init; }

    /// <summary>How often the runner reads the recorded attempts while a scenario runs.</summary>
    public TimeSpan WatchInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Multiplies every scenario's time budget (slow machines; tests that want a fast failure use less than 1).</summary>
    public double BudgetScale { get; init; } = 1;

    /// <summary>
    /// Self-test of the seal: after the cluster starts, node index N is given its master's address as a host name
    /// (<c>--master http://master.belljar.invalid:PORT</c>) for its next start, so it does a DNS lookup — an undeclared
    /// dependency the drill must catch and name. Null: no sabotage.
    /// </summary>
    public int? MisconfigureNodeMasterAsHostName { get; init; }

    /// <summary>Keep the clusters' data and logs after the run.</summary>
    public bool KeepData { get; init; }
}

/// <summary>What a scenario's run exposes to its body: the sealed cluster, the ledger, the measurements.</summary>
public sealed class DrillContext
{
    private readonly List<(string Name, string Value)> _measurements = new();
    private readonly Dictionary<string, string> _timeToServe = new(StringComparer.Ordinal);
    private readonly List<string> _findings = new();
    private readonly List<UndeclaredAttempt> _earlierAttempts = new();

    internal DrillContext(IDrillScenario scenario, DrillOptions options, ManifestSet manifests, string directory)
    {
        Scenario = scenario;
        Options = options;
        Manifests = manifests;
        Directory = directory;
        Random = new Random(unchecked((int)options.Seed ^ scenario.Name.Length * 7919));
        Ledger = new WriteLedger(options.Seed);
    }

    public IDrillScenario Scenario { get; }

    public DrillOptions Options { get; }

    public ManifestSet Manifests { get; }

    /// <summary>This scenario's data directory.</summary>
    public string Directory { get; }

    /// <summary>Seeded from <see cref="DrillOptions.Seed"/>.</summary>
    public Random Random { get; }

    public WriteLedger Ledger { get; }

    /// <summary>The scenario's sealed cluster, once started.</summary>
    public LocalCluster? Cluster { get; private set; }

    /// <summary>The data check's result, once <see cref="VerifyLedgerAsync"/> ran.</summary>
    public LedgerCheck? DataCheck { get; private set; }

    internal IReadOnlyList<(string Name, string Value)> Measurements => _measurements;

    internal IReadOnlyDictionary<string, string> TimeToServe => _timeToServe;

    internal IReadOnlyList<string> Findings => _findings;

    /// <summary>
    /// Starts the scenario's sealed cluster (namespaces, manifests; failure timeout 3 s unless <paramref name="configure"/>
    /// changes it); one per scenario.
    /// </summary>
    public async Task<LocalCluster> StartClusterAsync(int nodes, int chains, int replicas, CancellationToken ct, Action<LocalClusterOptions>? configure = null)
    {
        if (Cluster is not null)
            throw new InvalidOperationException("a scenario starts one cluster");
        var options = new LocalClusterOptions
        {
            Nodes = nodes,
            Chains = chains,
            Replicas = replicas,
            DataDirectory = Path.Combine(Directory, "cluster"),
            Network = ClusterNetwork.Namespaces,
            Seal = Manifests,
            ServerDllPath = Options.ServerDllPath,
            FailureTimeout = TimeSpan.FromSeconds(3),
        };
        configure?.Invoke(options);
        Log($"starting a sealed cluster: {options.Nodes} nodes, {options.Chains?.ToString(CultureInfo.InvariantCulture) ?? "default"} chains");
        Cluster = await LocalCluster.StartAsync(options, ct).ConfigureAwait(false);
        if (Options.MisconfigureNodeMasterAsHostName is { } index)
        {
            NodeProcess node = Cluster.Nodes[index];
            node.ExtraArguments = new[] { "--master", $"http://master.belljar.invalid:{Cluster.Master.Port.ToString(CultureInfo.InvariantCulture)}" };
            Log($"self-test: {node.Id} will be started with its master's address as a host name");
        }
        return Cluster;
    }

    /// <summary>
    /// Stops the scenario's cluster and removes its namespaces, keeping what its seal recorded for the report
    /// (<see cref="EarlierAttempts"/>); the scenario may then start or adopt another (<see cref="AdoptCluster"/>).
    /// </summary>
    public async Task RetireClusterAsync(CancellationToken ct)
    {
        LocalCluster old = RequireCluster();
        if (old.Seal is { } seal)
        {
            IReadOnlyList<UndeclaredAttempt> attempts = await seal.AttemptsAsync(ct).ConfigureAwait(false);
            lock (_earlierAttempts)
                _earlierAttempts.AddRange(attempts);
        }
        Cluster = null;
        await old.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Makes a cluster started elsewhere (e.g. restored from a backup) the scenario's cluster, watched and reported like its own.</summary>
    public void AdoptCluster(LocalCluster cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        if (Cluster is not null)
            throw new InvalidOperationException("retire the scenario's cluster before adopting another");
        Cluster = cluster;
    }

    /// <summary>Attempts recorded by clusters the scenario retired.</summary>
    internal IReadOnlyList<UndeclaredAttempt> EarlierAttempts
    {
        get { lock (_earlierAttempts) return _earlierAttempts.ToList(); }
    }

    /// <summary>A client of the cluster with short attempts (a drill measures, it does not wait out long timeouts).</summary>
    public ChainClient Client(TimeSpan? operationTimeout = null) => RequireCluster().CreateClient(o => o with
    {
        OperationTimeout = operationTimeout ?? TimeSpan.FromSeconds(15),
        AttemptTimeout = TimeSpan.FromSeconds(2),
        ChunkBytes = WriteLedger.ChunkBytes,
    });

    public LocalCluster RequireCluster() => Cluster ?? throw new InvalidOperationException("the scenario has not started its cluster");

    /// <summary>Records a figure for the report ("time to serve", "ops ok/failed per second", ...).</summary>
    public void Measure(string name, string value)
    {
        lock (_measurements)
            _measurements.Add((name, value));
        Log($"  {name}: {value}");
    }

    public void Measure(string name, TimeSpan value) => Measure(name, Seconds(value));

    /// <summary>The time role <paramref name="role"/> took to serve in this scenario (the report's column).</summary>
    public void SetTimeToServe(string role, TimeSpan value)
    {
        lock (_timeToServe)
            _timeToServe[role] = Seconds(value);
    }

    /// <summary>Something the scenario learned that the report must show (not a failure by itself).</summary>
    public void Finding(string text)
    {
        lock (_findings)
            _findings.Add(text);
        Log($"  finding: {text}");
    }

    public void Log(string line)
    {
        if (Options.Log is { } log)
        {
            lock (log)
            {
                log.WriteLine($"[{Scenario.Name}] {line}");
                log.Flush();
            }
        }
    }

    /// <summary>Creates the ledger's bucket (retrying while the cluster settles).</summary>
    public async Task CreateBucketAsync(CancellationToken ct)
    {
        await using ChainClient client = Client();
        await client.CreateBucketAsync(WriteLedger.Bucket, ct).ConfigureAwait(false);
    }

    /// <summary>Writes <paramref name="small"/> small and <paramref name="chunked"/> chunked objects; fails when one is not acknowledged.</summary>
    public async Task LoadAsync(string prefix, int small, int chunked, CancellationToken ct)
    {
        await using ChainClient client = Client(TimeSpan.FromSeconds(30));
        var keys = Enumerable.Range(0, small).Select(_ => (Key: Ledger.NextKey(prefix), Chunked: false))
            .Concat(Enumerable.Range(0, chunked).Select(_ => (Key: Ledger.NextKey(prefix + "-big"), Chunked: true))).ToList();
        int failed = 0;
        await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (item, token) =>
        {
            if (!await Ledger.WriteAsync(client, item.Key, item.Chunked, token).ConfigureAwait(false))
                Interlocked.Increment(ref failed);
        }).ConfigureAwait(false);
        if (failed > 0)
            throw new DrillFailure($"{failed} of {keys.Count} writes of the '{prefix}' load were not acknowledged by a healthy cluster");
    }

    /// <summary>
    /// The data check: every acknowledged write (or those in <paramref name="only"/>) present and identical; throws
    /// <see cref="DrillFailure"/> when not.
    /// </summary>
    public async Task VerifyLedgerAsync(CancellationToken ct, IReadOnlyList<KeyValuePair<string, int>>? only = null)
    {
        await using ChainClient client = Client(TimeSpan.FromSeconds(30));
        LedgerCheck check = await Ledger.VerifyAsync(client, only ?? Ledger.Acknowledged(), ct).ConfigureAwait(false);
        DataCheck = check;
        Measure("data check", check.ToString());
        if (!check.Ok)
            throw new DrillFailure("data check failed: " + check);
    }

    internal static string Seconds(TimeSpan value) => value.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture) + " s";
}

/// <summary>One row of the report: a role in a scenario.</summary>
public sealed record RoleRow(string Scenario, string Role, string Declared, IReadOnlyList<UndeclaredAttempt> Attempts,
    string TimeToServe, string DataVerified, DrillStatus Status);

/// <summary>The outcome of one scenario.</summary>
public sealed record ScenarioResult(string Name, string Description, DrillStatus Status, string? Failure, TimeSpan Elapsed, TimeSpan Budget,
    IReadOnlyList<RoleRow> Roles, IReadOnlyList<(string Name, string Value)> Measurements, IReadOnlyList<string> Findings,
    IReadOnlyList<UndeclaredAttempt> Attempts);
