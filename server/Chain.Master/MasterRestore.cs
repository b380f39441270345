using Chain.Protocol.V1;

namespace Chain.Master;

/// <summary>
/// The master's state for a cluster restored from a backup (<c>Chain.Server restore-master</c>): the backup's chain
/// table, nodes and buckets, with every chain's epoch bumped by <see cref="EpochBump"/> (so no message of the old
/// cluster's life — its epochs moved on after the backup a few times at most — is accepted), no syncing or former
/// nodes (the members all hold the chain's snapshot), every bucket active, and each node at its new address when one
/// is given (nodes also re-register with their address on start; the master accepts a known id at a new address).
/// </summary>
public static class MasterRestore
{
    public const ulong EpochBump = 1000;

    public static ClusterConfig Restored(ClusterConfig backup, IReadOnlyDictionary<string, string> addresses)
    {
        ArgumentNullException.ThrowIfNull(backup);
        ArgumentNullException.ThrowIfNull(addresses);
        if (backup.Chains.Count == 0)
            throw new ArgumentException("the backup's config has no chain table");
        var known = backup.Nodes.Select(n => n.Node.NodeId).ToHashSet(StringComparer.Ordinal);
        foreach (string id in addresses.Keys)
        {
            if (!known.Contains(id))
                throw new ArgumentException($"node '{id}' is not in the backup (its nodes: {string.Join(", ", known)})");
        }
        ClusterConfig next = backup.Clone();
        next.Version = backup.Version + 1;
        foreach (ChainInfo chain in next.Chains)
        {
            if (chain.Nodes.Count == 0)
                throw new ArgumentException($"chain {chain.ChainId} has no members in the backup's config");
            chain.Epoch += EpochBump;
            chain.Syncing.Clear();
            chain.Former.Clear();
        }
        foreach (NodeStatus status in next.Nodes)
        {
            if (addresses.TryGetValue(status.Node.NodeId, out string? address))
                status.Node.Address = address;
            status.Alive = false;
            status.LastHeartbeatUnixMs = 0;
        }
        foreach (BucketInfo bucket in next.Buckets)
            bucket.State = BucketState.BucketActive;
        return next;
    }
}
