using Chain.Protocol.V1;

namespace Chain.Harness.BellJar.Scenarios;

/// <summary>
/// Region loss (full set): 6 nodes in 2 zones, every chain with replicas in both; one zone's nodes are killed at once.
/// Measured: the time until every chain serves again (each kept a replica) and until full replication (every chain
/// back to its replica count on the survivors, nothing syncing). Then the data check.
/// </summary>
public sealed class RegionLossScenario : DrillScenario
{
    private const int Nodes = 6;
    private const int Chains = 6;
    private const int Replicas = 3;

    public RegionLossScenario()
        : base("region-loss", "one zone (half of the nodes) lost at once; chains serve from survivors; time to full re-replication",
            TimeSpan.FromSeconds(240), "full")
    {
    }

    public override async Task RunAsync(DrillContext context, CancellationToken ct)
    {
        LocalCluster cluster = await context.StartClusterAsync(Nodes, Chains, Replicas, ct, o =>
        {
            o.ZoneOf = LocalClusterOptions.RoundRobinZones(2);
        }).ConfigureAwait(false);
        await context.CreateBucketAsync(ct).ConfigureAwait(false);
        await context.LoadAsync("before", small: 60, chunked: 4, ct).ConfigureAwait(false);

        int[] lost = Enumerable.Range(0, Nodes).Where(i => i % 2 == 1).ToArray(); // zone z2
        var survivors = Enumerable.Range(0, Nodes).Where(i => i % 2 == 0).Select(LocalCluster.NodeId).ToHashSet();
        context.Measure("zone lost", "z2: " + string.Join(", ", lost.Select(LocalCluster.NodeId)));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Task.WhenAll(lost.Select(cluster.KillNodeAsync)).ConfigureAwait(false);

        TimeSpan serving = await DrillProbes.WaitUntilEveryChainServesAsync(context, Chains, ct).ConfigureAwait(false);
        context.SetTimeToServe("node", serving);
        context.Measure("every chain serves again, after the loss", serving);
        await DrillProbes.WaitForAsync(async token =>
        {
            ClusterConfig? config = await DrillProbes.ConfigAsync(cluster, token).ConfigureAwait(false);
            return config is not null && config.Chains.Count == Chains && config.Chains.All(c =>
                c.Nodes.Count == Replicas && c.Syncing.Count == 0 && c.Nodes.All(survivors.Contains));
        }, ct).ConfigureAwait(false);
        TimeSpan replicated = clock.Elapsed;
        context.SetTimeToServe("master", replicated);
        context.Measure($"full replication ({Replicas} replicas of every chain on the survivors, nothing syncing), after the loss", replicated);
        await context.VerifyLedgerAsync(ct).ConfigureAwait(false);
    }
}
