using System.Diagnostics;
using Chain.Client;

namespace Chain.Harness.BellJar.Scenarios;

/// <summary>
/// Cold start: a sealed cluster is loaded and fully stopped, then the master and the nodes are started from their
/// disks one by one in a seeded random order with nothing else running; measured: the time until every chain serves
/// (a write and a read on a key of every chain), and until the master answers. Then the data check.
/// </summary>
public sealed class ColdStartScenario : DrillScenario
{
    private const int Nodes = 4;
    private const int Chains = 4;

    public ColdStartScenario()
        : base("cold-start", "every process started from its disk in a random order, nothing else running; time until every chain serves",
            TimeSpan.FromSeconds(150), "short", "full")
    {
    }

    public override async Task RunAsync(DrillContext context, CancellationToken ct)
    {
        LocalCluster cluster = await context.StartClusterAsync(Nodes, Chains, 3, ct).ConfigureAwait(false);
        await context.CreateBucketAsync(ct).ConfigureAwait(false);
        await context.LoadAsync("before", small: 40, chunked: 2, ct).ConfigureAwait(false);

        IReadOnlyDictionary<string, int> failures = await cluster.StopAllAsync().ConfigureAwait(false);
        if (failures.Count > 0)
            throw new DrillFailure("a graceful stop failed: " + string.Join(", ", failures.Select(f => $"{f.Key} exit {f.Value}")));

        // Process -1 is the master, i >= 0 node i.
        int[] order = Enumerable.Range(-1, Nodes + 1).ToArray();
        context.Random.Shuffle(order);
        context.Measure("start order", string.Join(" ", order.Select(p => p < 0 ? "master" : LocalCluster.NodeId(p))));
        var stopwatch = Stopwatch.StartNew();
        foreach (int process in order)
        {
            if (process < 0)
                await cluster.StartMasterAsync(ct).ConfigureAwait(false);
            else
                await cluster.StartNodeAsync(process, ct).ConfigureAwait(false);
        }
        context.Measure("every process READY", stopwatch.Elapsed);

        await using (ChainClient client = context.Client(TimeSpan.FromSeconds(2)))
        {
            await DrillProbes.WaitForAsync(async token =>
            {
                try
                {
                    await client.GetStatusAsync(token).ConfigureAwait(false);
                    return true;
                }
                catch (Exception e) when (e is ChainException or TimeoutException or IOException or System.Net.Http.HttpRequestException)
                {
                    return false;
                }
            }, ct).ConfigureAwait(false);
        }
        context.SetTimeToServe("master", stopwatch.Elapsed);
        await DrillProbes.WaitUntilEveryChainServesAsync(context, Chains, ct).ConfigureAwait(false);
        TimeSpan serving = stopwatch.Elapsed;
        context.SetTimeToServe("node", serving);
        context.Measure("time until every chain serves (from the first start)", serving);
        await context.VerifyLedgerAsync(ct).ConfigureAwait(false);
    }
}
