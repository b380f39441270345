namespace Chain.Master;

public sealed record MasterOptions
{
    /// <summary>The chain table is built once this many nodes have registered.</summary>
    public int ExpectNodes { get; init; } = 3;
    /// <summary>Number of chains; default: one per expected node.</summary>
    public int? Chains { get; init; }
    /// <summary>Chain length; default min(3, ExpectNodes).</summary>
    public int? Replicas { get; init; }
    /// <summary>A node is shown alive while its last heartbeat is younger than this.</summary>
    public TimeSpan AliveWindow { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>
    /// A node whose last heartbeat is older than this is removed from its chains (each change bumps the chain's
    /// epoch). Also the grace period after the master starts, so a restarted master ejects no one at once.
    /// </summary>
    public TimeSpan FailureTimeout { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>A syncing node whose reported progress has not moved for this long is abandoned (and may be retried).</summary>
    public TimeSpan SyncStallTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>How the master calls a node (DeleteBucket asks heads whether a bucket is empty); the simulation replaces it.</summary>
    public Func<Uri, Chain.Rpc.IRpcInvoker> Connect { get; init; } = address =>
        new Chain.Rpc.RpcChannel(address, new Chain.Rpc.RpcLimits { MaxMessageBytes = Chain.Protocol.Limits.MessageBytesMax });

    public int EffectiveChains => Chains ?? ExpectNodes;
    public int EffectiveReplicas => Replicas ?? Math.Min(3, ExpectNodes);

    public void Validate()
    {
        if (ExpectNodes < 1)
            throw new ArgumentException("expect-nodes must be at least 1");
        if (EffectiveReplicas < 1 || EffectiveReplicas > ExpectNodes)
            throw new ArgumentException($"replicas must be between 1 and expect-nodes ({ExpectNodes})");
        if (FailureTimeout < TimeSpan.FromMilliseconds(200))
            throw new ArgumentException("failure timeout must be at least 200 ms");
        if (EffectiveChains < 1 || EffectiveChains > 4096)
            throw new ArgumentException("chains must be between 1 and 4096");
    }
}
