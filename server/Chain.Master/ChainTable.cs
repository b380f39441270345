using Chain.Protocol.V1;

namespace Chain.Master;

/// <summary>Builds the initial chain table: balanced placement of chains over nodes.</summary>
public static class ChainTable
{
    /// <summary>
    /// Chain i takes the nodes i, i+1, ..., i+replicas-1 (mod node count) of the nodes sorted by id, so with
    /// chains == nodes every node is head of one chain, tail of one and middle of the others. With more chains
    /// than nodes the rotation repeats, keeping each node's head/middle/tail counts within one of each other.
    /// </summary>
    public static IReadOnlyList<ChainInfo> Build(IReadOnlyList<string> nodeIds, int chains, int replicas)
    {
        if (nodeIds.Count == 0)
            throw new ArgumentException("no nodes", nameof(nodeIds));
        if (replicas < 1 || replicas > nodeIds.Count)
            throw new ArgumentOutOfRangeException(nameof(replicas), $"replicas must be 1..{nodeIds.Count}");
        if (chains < 1)
            throw new ArgumentOutOfRangeException(nameof(chains));
        var sorted = nodeIds.OrderBy(id => id, StringComparer.Ordinal).ToArray();
        var table = new List<ChainInfo>(chains);
        for (int i = 0; i < chains; i++)
        {
            var chain = new ChainInfo { ChainId = (uint)i, Epoch = 1 };
            for (int r = 0; r < replicas; r++)
                chain.Nodes.Add(sorted[(i + r) % sorted.Length]);
            table.Add(chain);
        }
        return table;
    }
}
