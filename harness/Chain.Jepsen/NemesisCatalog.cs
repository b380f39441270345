using Chain.Harness;
using Chain.Harness.Faults;

namespace Chain.Jepsen;

/// <summary>
/// A nemesis implementation the runner can use: the fault kinds it injects, how to build one for a cluster, and what
/// the cluster needs for it (<paramref name="Prepare"/> adjusts the options before start-up, e.g. a network namespace
/// per process for a network nemesis; called only when the spec schedules one of <paramref name="Kinds"/>).
/// </summary>
public sealed record NemesisFactory(string Name, IReadOnlyList<FaultKind> Kinds, Func<LocalCluster, INemesis> Create,
    Action<LocalClusterOptions>? Prepare = null);

/// <summary>
/// The names of fault kinds on the command line, and the nemesis implementations behind them. A run builds one
/// <see cref="CompositeNemesis"/> from <see cref="Factories"/>; each fault goes to the first that supports it.
/// </summary>
public static class NemesisCatalog
{
    /// <summary>Command-line name → fault kind.</summary>
    public static readonly IReadOnlyDictionary<string, FaultKind> Names = new Dictionary<string, FaultKind>(StringComparer.OrdinalIgnoreCase)
    {
        ["kill"] = FaultKind.KillNode,
        ["pause"] = FaultKind.PauseNode,
        ["kill-master"] = FaultKind.KillMaster,
        ["partition"] = FaultKind.PartitionHalves,
        ["isolate"] = FaultKind.IsolateNode,
        ["isolate-head"] = FaultKind.IsolateHead,
        ["isolate-tail"] = FaultKind.IsolateTail,
        ["isolate-master"] = FaultKind.IsolateMaster,
        ["bridge"] = FaultKind.Bridge,
        ["one-way"] = FaultKind.OneWay,
        ["disk-full"] = FaultKind.DiskFull,
        ["corrupt"] = FaultKind.Corrupt,
        ["clock"] = FaultKind.ClockOffset,
    };

    /// <summary>
    /// The nemeses a run is built from, in routing order. Adding one is one line here, e.g.
    /// <c>new NemesisFactory("network", NetworkKinds, c =&gt; new NetworkNemesis(c), o =&gt; o.Network = ...)</c>.
    /// </summary>
    public static readonly IReadOnlyList<NemesisFactory> Factories = new[]
    {
        new NemesisFactory("process", new[] { FaultKind.KillNode, FaultKind.PauseNode, FaultKind.KillMaster }, cluster => new ProcessNemesis(cluster)),
        new NemesisFactory("network", new[]
            {
                FaultKind.PartitionHalves, FaultKind.IsolateNode, FaultKind.IsolateHead, FaultKind.IsolateTail,
                FaultKind.IsolateMaster, FaultKind.Bridge, FaultKind.OneWay,
            },
            cluster => new NetworkNemesis(cluster),
            // iptables in a namespace per process as root; in-harness TCP proxies otherwise.
            options => options.Network = Environment.IsPrivilegedProcess ? ClusterNetwork.Namespaces : ClusterNetwork.Proxies),
        new NemesisFactory("disk", new[] { FaultKind.DiskFull }, cluster => new DiskNemesis(cluster),
            options => options.NodeDataTmpfsBytes = 384L * 1024 * 1024),
        new NemesisFactory("corrupt", new[] { FaultKind.Corrupt }, cluster => new CorruptNemesis(cluster)),
        new NemesisFactory("clock", new[] { FaultKind.ClockOffset }, cluster => new ClockNemesis(cluster)),
    };

    public static string NameOf(FaultKind kind) => Names.First(p => p.Value == kind).Key;

    /// <summary>The fault kinds some factory in <paramref name="factories"/> (default <see cref="Factories"/>) injects.</summary>
    public static IReadOnlySet<FaultKind> SupportedKinds(IEnumerable<NemesisFactory>? factories = null) =>
        (factories ?? Factories).SelectMany(f => f.Kinds).ToHashSet();

    /// <summary>Parses "kill,pause,partition" (or "none"); unknown names and kinds without an implementation are errors.</summary>
    public static IReadOnlyList<FaultKind> Parse(string text, IEnumerable<NemesisFactory>? factories = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Trim() is "" or "none")
            return Array.Empty<FaultKind>();
        IReadOnlySet<FaultKind> supported = SupportedKinds(factories);
        var kinds = new List<FaultKind>();
        foreach (string raw in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Names.TryGetValue(raw, out FaultKind kind))
                throw new ArgumentException($"unknown nemesis '{raw}' (known: {string.Join(", ", Names.Keys)})");
            if (!supported.Contains(kind))
                throw new ArgumentException($"nemesis '{raw}' ({kind}) has no implementation in this build (available: {string.Join(", ", supported.Select(NameOf))})");
            if (!kinds.Contains(kind))
                kinds.Add(kind);
        }
        return kinds;
    }

    /// <summary>Lets every factory that injects one of <paramref name="needed"/> adjust the cluster's options.</summary>
    public static void PrepareCluster(LocalClusterOptions options, IEnumerable<FaultKind> needed, IEnumerable<NemesisFactory>? factories = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(needed);
        var kinds = needed.ToHashSet();
        foreach (NemesisFactory factory in factories ?? Factories)
        {
            if (factory.Kinds.Any(kinds.Contains))
                factory.Prepare?.Invoke(options);
        }
    }

    /// <summary>One nemesis for <paramref name="cluster"/> that routes every kind in <paramref name="needed"/>.</summary>
    public static CompositeNemesis Create(LocalCluster cluster, IEnumerable<FaultKind> needed, IEnumerable<NemesisFactory>? factories = null)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(needed);
        NemesisFactory[] chosen = (factories ?? Factories).ToArray();
        IReadOnlySet<FaultKind> supported = SupportedKinds(chosen);
        FaultKind[] missing = needed.Where(k => !supported.Contains(k)).Distinct().ToArray();
        if (missing.Length > 0)
            throw new NotSupportedException($"no nemesis in this build injects {string.Join(", ", missing)}");
        // Only the nemeses the run needs: some need a cluster laid out for them (namespaces, tmpfs) and refuse others.
        var kinds = needed.ToHashSet();
        return new CompositeNemesis(chosen.Where(f => f.Kinds.Any(kinds.Contains)).Select(f => f.Create(cluster)).ToArray());
    }
}
