using Chain.Protocol.V1;

namespace Chain.Master;

/// <summary>A built chain table and what it guarantees.</summary>
/// <param name="Chains">The chains, ids 0..C-1, epoch 1, head first.</param>
/// <param name="Zones">Distinct zones among the nodes (a node without a zone is a zone of its own).</param>
/// <param name="ZoneCap">
/// The most replicas any chain has in one zone: 1 when there are at least as many zones as replicas, else the
/// smallest cap the zone sizes allow (every chain keeps to it).
/// </param>
/// <param name="RolesBalanced">
/// Measured on the table: per role (head, tail, middle positions together) the per-node counts differ by at most one.
/// </param>
public sealed record ChainPlacement(IReadOnlyList<ChainInfo> Chains, int Zones, int ZoneCap, bool RolesBalanced)
{
    /// <summary>Why this table is weaker than the ideal (fewer zones than replicas, unbalanced roles), or null.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>
/// Builds the initial chain table: chains over nodes with distinct zones per chain and balanced roles.
/// <para>
/// The nodes are laid out in one cycle that interleaves the zones (largest zones first; node k of a zone of s nodes
/// at fraction (2k+1)/2s of the cycle, ties by zone order), so equal-size zones alternate strictly z1 z2 .. zZ z1 z2 ..
/// Chain i then takes the R consecutive nodes of the cycle starting at floor(i·N/C). The starts form a balanced
/// (mechanical) sequence: any L consecutive cycle positions hold floor or ceil of L·C/N starts. So each node is head
/// of floor/ceil(C/N) chains, tail of as many, and lies in the middle of floor/ceil((R-2)·C/N) chains; and when all
/// zones have the same size every window of R has distinct zones (at most ceil(R/Z) per zone with Z &lt; R zones).
/// </para>
/// <para>
/// When the windows break the zone rule (zones of different sizes), the table is built greedily instead, chain by
/// chain, head then tail then middles, each time the node with the fewest chains in that role among those whose zone
/// is still under the cap. The zone rule then still holds, heads stay within one, and tails and middles are as even as
/// the zone rule allows; <see cref="ChainPlacement.RolesBalanced"/> says whether they came out within one.
/// </para>
/// Deterministic: the result depends only on the input (ordinal string order, no hashing).
/// </summary>
public static class ChainTable
{
    /// <summary>Plain node ids, no zones: every node is its own zone.</summary>
    public static IReadOnlyList<ChainInfo> Build(IReadOnlyList<string> nodeIds, int chains, int replicas) =>
        Plan(nodeIds.Select(id => new NodeInfo { NodeId = id }).ToArray(), chains, replicas).Chains;

    public static IReadOnlyList<ChainInfo> Build(IReadOnlyList<NodeInfo> nodes, int chains, int replicas) =>
        Plan(nodes, chains, replicas).Chains;

    /// <summary>The zone a node counts in for placement: its label, or a zone of its own when it has none.</summary>
    public static string ZoneKey(NodeInfo node) =>
        string.IsNullOrEmpty(node.Zone) ? "node:" + node.NodeId : "zone:" + node.Zone;

    public static ChainPlacement Plan(IReadOnlyList<NodeInfo> nodes, int chains, int replicas)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        if (nodes.Count == 0)
            throw new ArgumentException("no nodes", nameof(nodes));
        if (nodes.Any(n => n is null || string.IsNullOrEmpty(n.NodeId)))
            throw new ArgumentException("every node needs an id", nameof(nodes));
        if (nodes.Select(n => n.NodeId).Distinct(StringComparer.Ordinal).Count() != nodes.Count)
            throw new ArgumentException("node ids must be distinct", nameof(nodes));
        if (replicas < 1 || replicas > nodes.Count)
            throw new ArgumentOutOfRangeException(nameof(replicas), $"replicas must be 1..{nodes.Count}");
        if (chains < 1)
            throw new ArgumentOutOfRangeException(nameof(chains), "chains must be at least 1");

        // Zones, largest first, then by name; nodes within a zone by id.
        var zones = nodes.GroupBy(ZoneKey, StringComparer.Ordinal)
            .Select(g => g.Select(n => n.NodeId).OrderBy(id => id, StringComparer.Ordinal).ToArray())
            .OrderByDescending(ids => ids.Length)
            .ThenBy(ids => ZoneKey(nodes.First(n => n.NodeId == ids[0])), StringComparer.Ordinal)
            .ToArray();
        var zoneOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int z = 0; z < zones.Length; z++)
            foreach (string id in zones[z])
                zoneOf[id] = z;
        int cap = ZoneCapFor(zones.Select(z => z.Length).ToArray(), replicas);
        string[] cycle = Interleave(zones);

        string[][] table = Windows(cycle, chains, replicas);
        if (!KeepsZoneCap(table, zoneOf, cap))
            table = Greedy(cycle, zoneOf, cap, chains, replicas);

        var result = new List<ChainInfo>(chains);
        for (int i = 0; i < chains; i++)
        {
            var chain = new ChainInfo { ChainId = (uint)i, Epoch = 1 };
            chain.Nodes.AddRange(table[i]);
            result.Add(chain);
        }
        bool balanced = RolesWithinOne(table, cycle);
        var warnings = new List<string>();
        if (zones.Length < replicas)
            warnings.Add($"only {zones.Length} zone(s) for {replicas} replicas: a chain may keep up to {cap} replicas in one zone");
        if (!balanced)
            warnings.Add($"zone sizes {string.Join("/", zones.Select(z => z.Length))} do not allow balanced roles with distinct zones here: " +
                         "head/middle/tail counts per node differ by more than one (zones of equal size avoid this)");
        return new ChainPlacement(result, zones.Length, cap, balanced) { Warnings = warnings };
    }

    /// <summary>The smallest m with sum over zones of min(size, m) ≥ replicas: the fewest replicas per zone possible.</summary>
    public static int ZoneCapFor(IReadOnlyList<int> zoneSizes, int replicas)
    {
        int m = 1;
        while (zoneSizes.Sum(s => Math.Min(s, m)) < replicas)
            m++;
        return m;
    }

    /// <summary>One cycle over all nodes spreading every zone's nodes evenly: node k of s at (2k+1)/2s, ties by zone order.</summary>
    private static string[] Interleave(string[][] zones) =>
        zones.SelectMany((ids, z) => ids.Select((id, k) => (Id: id, Zone: z, Num: 2L * k + 1, Den: 2L * ids.Length)))
            .Order(Comparer<(string Id, int Zone, long Num, long Den)>.Create((a, b) =>
            {
                int byPhase = (a.Num * b.Den).CompareTo(b.Num * a.Den);
                return byPhase != 0 ? byPhase : a.Zone.CompareTo(b.Zone);
            }))
            .Select(x => x.Id)
            .ToArray();

    /// <summary>Chain i: the <paramref name="replicas"/> cycle positions from floor(i·N/C) on.</summary>
    private static string[][] Windows(string[] cycle, int chains, int replicas)
    {
        int n = cycle.Length;
        var table = new string[chains][];
        for (int i = 0; i < chains; i++)
        {
            int start = (int)((long)i * n / chains);
            table[i] = new string[replicas];
            for (int r = 0; r < replicas; r++)
                table[i][r] = cycle[(start + r) % n];
        }
        return table;
    }

    private static bool KeepsZoneCap(string[][] table, Dictionary<string, int> zoneOf, int cap) =>
        table.All(chain => chain.GroupBy(id => zoneOf[id]).All(g => g.Count() <= cap));

    /// <summary>
    /// Chain by chain, head, tail, then middles: the node with the fewest chains in that role (then in any role, then
    /// cycle order from the chain's own offset) among the nodes not yet in the chain whose zone is under the cap.
    /// Any pick under the cap leaves the chain completable: the zones' remaining room is at least the places left.
    /// </summary>
    private static string[][] Greedy(string[] cycle, Dictionary<string, int> zoneOf, int cap, int chains, int replicas)
    {
        int n = cycle.Length;
        var roleCount = new int[3, n]; // 0 head, 1 tail, 2 middle
        var total = new int[n];
        var table = new string[chains][];
        for (int i = 0; i < chains; i++)
        {
            var chain = new string[replicas];
            var used = new HashSet<int>();
            var inZone = new Dictionary<int, int>();
            int offset = (int)((long)i * n / chains);
            int[] order = replicas == 1 ? [0] : [0, replicas - 1, .. Enumerable.Range(1, replicas - 2)];
            foreach (int position in order)
            {
                int role = position == 0 ? 0 : position == replicas - 1 ? 1 : 2;
                int best = -1;
                for (int step = 0; step < n; step++)
                {
                    int k = (offset + step) % n;
                    if (used.Contains(k) || inZone.GetValueOrDefault(zoneOf[cycle[k]]) >= cap)
                        continue;
                    if (best < 0 || roleCount[role, k] < roleCount[role, best]
                        || (roleCount[role, k] == roleCount[role, best] && total[k] < total[best]))
                        best = k;
                }
                chain[position] = cycle[best];
                used.Add(best);
                inZone[zoneOf[cycle[best]]] = inZone.GetValueOrDefault(zoneOf[cycle[best]]) + 1;
                roleCount[role, best]++;
                if (replicas == 1)
                    roleCount[1, best]++;
                total[best]++;
            }
            table[i] = chain;
        }
        return table;
    }

    /// <summary>Per role — head, tail, middle positions together — whether per-node counts differ by at most one.</summary>
    public static bool RolesWithinOne(IReadOnlyList<IReadOnlyList<string>> table, IReadOnlyCollection<string> nodeIds)
    {
        foreach (Func<IReadOnlyList<string>, IEnumerable<string>> role in RoleSelectors)
        {
            var counts = nodeIds.ToDictionary(id => id, _ => 0, StringComparer.Ordinal);
            foreach (IReadOnlyList<string> chain in table)
                foreach (string id in role(chain))
                    counts[id]++;
            if (counts.Values.Max() - counts.Values.Min() > 1)
                return false;
        }
        return true;
    }

    /// <summary>The nodes of a chain in each role: head (position 0), tail (last position), middle (all others).</summary>
    public static readonly IReadOnlyList<Func<IReadOnlyList<string>, IEnumerable<string>>> RoleSelectors =
    [
        chain => chain.Take(1),
        chain => chain.Skip(chain.Count - 1),
        chain => chain.Skip(1).Take(Math.Max(0, chain.Count - 2)),
    ];
}
