using System.Globalization;
using Chain.Client;

namespace Chain.Harness.Faults;

/// <summary>
/// Network partitions with iptables DROP rules inside the namespaces of a cluster started with
/// <see cref="ClusterNetwork.Namespaces"/> (root), or with blocked directions in the TCP proxies of a cluster started
/// with <see cref="ClusterNetwork.Proxies"/> (any user; see <see cref="ProxyNetwork"/> for how that differs). Process numbering is the cluster's: 0 = master, i+1 = node i.
/// A cut between processes a and b drops, in a's namespace, INPUT from b and OUTPUT to b (and the same in b's);
/// a one-way cut a→b drops only a's OUTPUT to b and b's INPUT from a. Rules match peer addresses only, so the
/// harness's clients (root namespace, the bridge address) keep reaching every process. Every rule carries the
/// comment <see cref="RuleComment"/>; heal deletes exactly the rules its fault added (one -D per -I).
/// <para>Targets: IsolateNode — node index (mod nodes); IsolateHead/IsolateTail — chain id (mod chains), resolved
/// from the master's table at injection time; IsolateMaster — ignored; PartitionHalves, Bridge, OneWay — a seed for
/// the random split (deterministic for a given seed and cluster size).</para>
/// </summary>
public sealed class NetworkNemesis : INemesis
{
    public const string RuleComment = "chain-nemesis";

    private static readonly FaultKind[] Kinds =
    {
        FaultKind.PartitionHalves, FaultKind.IsolateNode, FaultKind.IsolateHead, FaultKind.IsolateTail,
        FaultKind.IsolateMaster, FaultKind.Bridge, FaultKind.OneWay,
    };

    private readonly LocalCluster _cluster;
    private readonly NamespaceNetwork? _network;
    private readonly ProxyNetwork? _proxies;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly List<(Fault Fault, IReadOnlyList<DropRule> Rules)> _active = new();

    public NetworkNemesis(LocalCluster cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        _cluster = cluster;
        _network = cluster.Network;
        _proxies = cluster.Proxies;
        if (_network is null && _proxies is null)
            throw new InvalidOperationException(
                "NetworkNemesis needs a cluster started with LocalClusterOptions.Network = Namespaces (root: iptables) " +
                "or Proxies (any user: in-harness TCP proxies)");
    }

    private int ProcessCount => _cluster.Nodes.Count + 1;

    /// <summary>
    /// One DROP rule in one process's namespace: chain INPUT (packets from <paramref name="Peer"/>) or OUTPUT (packets to
    /// it). In proxy mode the same rule blocks the proxy direction Peer→Process (INPUT) or Process→Peer (OUTPUT).
    /// Processes are numbered as in the cluster: 0 = master, i+1 = node i.
    /// </summary>
    public sealed record DropRule(int Process, string Chain, int Peer)
    {
        internal IEnumerable<string> Spec(NamespaceNetwork network) => new[]
        {
            Chain, Chain == "INPUT" ? "-s" : "-d", network.AddressOf(Peer) + "/32", "-m", "comment", "--comment", RuleComment, "-j", "DROP",
        };

        internal (int From, int To) Direction => Chain == "INPUT" ? (Peer, Process) : (Process, Peer);

        public override string ToString() => $"p{Process}:{Chain} {(Chain == "INPUT" ? "from" : "to")} p{Peer}";
    }

    public bool Supports(FaultKind kind) => Kinds.Contains(kind);

    /// <summary>The rules of every fault in effect.</summary>
    public IReadOnlyList<DropRule> ActiveRules
    {
        get
        {
            lock (_active)
                return _active.SelectMany(a => a.Rules).ToArray();
        }
    }

    public async Task<string> InjectAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        if (!Supports(fault.Kind))
            throw new NotSupportedException($"{nameof(NetworkNemesis)} does not inject {fault.Kind}");
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            (IReadOnlyList<DropRule> rules, string what) = await PlanAsync(fault, cancellationToken).ConfigureAwait(false);
            var added = new List<DropRule>(rules.Count);
            try
            {
                foreach (DropRule rule in rules)
                {
                    if (_network is not null)
                        await _network.IptablesAsync(rule.Process, rule.Spec(_network).Prepend("-I"), cancellationToken).ConfigureAwait(false);
                    else
                        _proxies!.Block(rule.Direction.From, rule.Direction.To);
                    added.Add(rule);
                }
            }
            catch
            {
                await RemoveAsync(added).ConfigureAwait(false);
                throw;
            }
            lock (_active)
                _active.Add((fault, added));
            return $"{what}: {added.Count} DROP rules";
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task HealAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            IReadOnlyList<DropRule>? rules = null;
            lock (_active)
            {
                int at = _active.FindIndex(a => a.Fault == fault);
                if (at >= 0)
                {
                    rules = _active[at].Rules;
                    _active.RemoveAt(at);
                }
            }
            if (rules is not null)
                await RemoveAsync(rules).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task HealAllAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            DropRule[] rules;
            lock (_active)
            {
                rules = _active.SelectMany(a => a.Rules).ToArray();
                _active.Clear();
            }
            await RemoveAsync(rules).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Packets dropped so far by the nemesis's rules in process k's namespace (the iptables counters); in proxy mode the
    /// chunks the proxies have held back in blocked directions, all processes together.
    /// </summary>
    public async Task<long> DroppedPacketsAsync(int process, CancellationToken cancellationToken = default)
    {
        if (_network is null)
            return _proxies!.HeldChunks;
        long total = 0;
        foreach (string chain in new[] { "INPUT", "OUTPUT" })
        {
            string listing = await _network.IptablesAsync(process, new[] { "-L", chain, "-v", "-n", "-x" }, cancellationToken).ConfigureAwait(false);
            foreach (string line in listing.Split('\n'))
            {
                if (!line.Contains(RuleComment, StringComparison.Ordinal))
                    continue;
                string first = line.TrimStart().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                total += long.Parse(first, CultureInfo.InvariantCulture);
            }
        }
        return total;
    }

    /// <summary>Heals what is left; tolerates a cluster already disposed (its namespaces, and so the rules, are gone).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await HealAllAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (InvalidOperationException) when (_network is not null)
        {
            if (await NamespacesExistAsync().ConfigureAwait(false))
                throw;
        }
        _gate.Dispose();
    }

    private async Task<bool> NamespacesExistAsync()
    {
        string list = await Shell.RunAsync(_network!.IpTool, new[] { "netns", "list" }, CancellationToken.None).ConfigureAwait(false);
        return list.Contains(_network.Tag + "-", StringComparison.Ordinal);
    }

    private async Task RemoveAsync(IEnumerable<DropRule> rules)
    {
        var failures = new List<string>();
        foreach (DropRule rule in rules)
        {
            try
            {
                if (_network is not null)
                    await _network.IptablesAsync(rule.Process, rule.Spec(_network).Prepend("-D"), CancellationToken.None).ConfigureAwait(false);
                else
                    _proxies!.Unblock(rule.Direction.From, rule.Direction.To);
            }
            catch (Exception e) when (e is ShellCommandException or InvalidOperationException)
            {
                failures.Add($"{rule}: {e.Message}");
            }
        }
        if (failures.Count > 0)
            throw new InvalidOperationException("could not remove every DROP rule: " + string.Join("; ", failures));
    }

    private async Task<(IReadOnlyList<DropRule> Rules, string What)> PlanAsync(Fault fault, CancellationToken ct)
    {
        int processes = ProcessCount;
        int nodes = processes - 1;
        var everyone = Enumerable.Range(0, processes).ToArray();
        switch (fault.Kind)
        {
            case FaultKind.IsolateNode:
                {
                    int victim = 1 + Mod(fault.Target, nodes);
                    return (Cut(new[] { victim }, everyone.Where(p => p != victim)), $"isolated {Name(victim)}");
                }
            case FaultKind.IsolateHead:
            case FaultKind.IsolateTail:
                {
                    (int victim, ChainView chain) = await ChainEndAsync(fault, ct).ConfigureAwait(false);
                    string end = fault.Kind == FaultKind.IsolateHead ? "head" : "tail";
                    return (Cut(new[] { victim }, everyone.Where(p => p != victim)),
                        $"isolated {Name(victim)}, {end} of chain {chain.ChainId} (epoch {chain.Epoch}: [{string.Join(",", chain.NodeIds)}])");
                }
            case FaultKind.IsolateMaster:
                return (Cut(new[] { 0 }, everyone.Where(p => p != 0)), "isolated the master from every node");
            case FaultKind.PartitionHalves:
                {
                    int[] order = Shuffle(everyone, fault.Target);
                    int[] left = order[..(processes / 2)];
                    int[] right = order[(processes / 2)..];
                    return (Cut(left, right), $"partitioned {Names(left)} | {Names(right)}");
                }
            case FaultKind.Bridge:
                {
                    if (processes < 3)
                        throw new InvalidOperationException("a bridge needs at least three processes");
                    int[] order = Shuffle(everyone, fault.Target);
                    int bridge = order[0];
                    int[] rest = order[1..];
                    int[] left = rest[..(rest.Length / 2)];
                    int[] right = rest[(rest.Length / 2)..];
                    return (Cut(left, right), $"partitioned {Names(left)} | {Names(right)}, bridged by {Name(bridge)}");
                }
            case FaultKind.OneWay:
                {
                    int[] order = Shuffle(everyone, fault.Target);
                    int from = order[0];
                    int to = order[1];
                    // In proxy mode both rules block the same direction: the link's block count goes to 2 and heal takes both.
                    var rules = new[] { new DropRule(from, "OUTPUT", to), new DropRule(to, "INPUT", from) };
                    return (rules, $"dropped packets from {Name(from)} to {Name(to)} (one way)");
                }
            default:
                throw new NotSupportedException($"{nameof(NetworkNemesis)} does not inject {fault.Kind}");
        }
    }

    /// <summary>Rules that cut every process of <paramref name="a"/> from every process of <paramref name="b"/>, both ways.</summary>
    private IReadOnlyList<DropRule> Cut(IEnumerable<int> a, IEnumerable<int> b)
    {
        var rules = new List<DropRule>();
        int[] right = b.ToArray();
        foreach (int x in a)
        {
            foreach (int y in right)
            {
                rules.Add(new DropRule(x, "INPUT", y));
                rules.Add(new DropRule(x, "OUTPUT", y));
                rules.Add(new DropRule(y, "INPUT", x));
                rules.Add(new DropRule(y, "OUTPUT", x));
            }
        }
        return rules;
    }

    private async Task<(int Process, ChainView Chain)> ChainEndAsync(Fault fault, CancellationToken ct)
    {
        await using ChainClient client = _cluster.CreateClient(o => o with { OperationTimeout = TimeSpan.FromSeconds(10), AttemptTimeout = TimeSpan.FromSeconds(3) });
        ClusterStatus status = await client.GetStatusAsync(ct).ConfigureAwait(false);
        if (status.Chains.Count == 0)
            throw new InvalidOperationException("the master has no chains yet");
        var chains = status.Chains.OrderBy(c => c.ChainId).ToArray();
        ChainView chain = chains[Mod(fault.Target, chains.Length)];
        if (chain.NodeIds.Count == 0)
            throw new InvalidOperationException($"chain {chain.ChainId} has no nodes");
        string nodeId = fault.Kind == FaultKind.IsolateHead ? chain.NodeIds[0] : chain.NodeIds[^1];
        int index = _cluster.Nodes.ToList().FindIndex(n => n.Id == nodeId);
        if (index < 0)
            throw new InvalidOperationException($"chain {chain.ChainId} names {nodeId}, which is not a node of this cluster");
        return (index + 1, chain);
    }

    private string Name(int process) => process == 0 ? "master" : _cluster.Nodes[process - 1].Id;

    private string Names(IEnumerable<int> processes) => "{" + string.Join(",", processes.Select(Name)) + "}";

    private static int[] Shuffle(int[] items, int seed)
    {
        int[] copy = items.ToArray();
        new Random(seed).Shuffle(copy);
        return copy;
    }

    private static int Mod(int value, int modulus) => ((value % modulus) + modulus) % modulus;
}
