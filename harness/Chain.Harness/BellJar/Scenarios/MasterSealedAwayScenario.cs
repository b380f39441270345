using Chain.Client;

namespace Chain.Harness.BellJar.Scenarios;

/// <summary>
/// Master sealed away: clients keep reading and writing (bounded load) while the master's namespace drops every
/// packet in and out for a fixed window; reported: ok/failed operations per second and how long the data path kept
/// working. After the unseal: the master sees every node again, a config change (creating a bucket) works, every
/// chain serves; then the data check (writes acknowledged during the window included).
/// </summary>
public sealed class MasterSealedAwayScenario : DrillScenario
{
    private const int Nodes = 3;
    private const int Chains = 3;
    private static readonly TimeSpan Before = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan After = TimeSpan.FromSeconds(3);

    public MasterSealedAwayScenario()
        : base("master-sealed-away", "the master unreachable for a fixed window while clients read and write; recovery after it returns",
            TimeSpan.FromSeconds(150), "short", "full")
    {
    }

    public override async Task RunAsync(DrillContext context, CancellationToken ct)
    {
        LocalCluster cluster = await context.StartClusterAsync(Nodes, Chains, 3, ct).ConfigureAwait(false);
        SealedNetwork seal = cluster.Seal!;
        await context.CreateBucketAsync(ct).ConfigureAwait(false);
        await context.LoadAsync("before", small: 30, chunked: 2, ct).ConfigureAwait(false);

        using var stopLoad = CancellationTokenSource.CreateLinkedTokenSource(ct);
        (BoundedLoad load, Task running) = BoundedLoad.Start(context, writers: 2, readers: 2, maxOperations: 50_000,
            maxTime: Before + Window + After + TimeSpan.FromSeconds(60), operationTimeout: TimeSpan.FromSeconds(2), stopLoad.Token);
        await Task.Delay(Before, ct).ConfigureAwait(false);
        TimeSpan sealedAt = load.Elapsed;
        await seal.SealAwayAsync(0, ct).ConfigureAwait(false);
        context.Log("master sealed away");
        await Task.Delay(Window, ct).ConfigureAwait(false);
        await seal.UnsealAsync(0, ct).ConfigureAwait(false);
        TimeSpan unsealedAt = load.Elapsed;
        context.Log("master back");
        var unsealClock = System.Diagnostics.Stopwatch.StartNew();

        await cluster.WaitUntilHealthyAsync(TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        TimeSpan masterBack = unsealClock.Elapsed;
        context.SetTimeToServe("master", masterBack);
        context.Measure("master sees every node alive again, after the unseal", masterBack);
        await using (ChainClient client = context.Client(TimeSpan.FromSeconds(30)))
        {
            if (!await client.CreateBucketAsync("drill-after", ct).ConfigureAwait(false))
                throw new DrillFailure("creating a bucket after the master returned said it already exists");
        }
        context.Measure("config change (create bucket) works, after the unseal", unsealClock.Elapsed);
        await DrillProbes.WaitUntilEveryChainServesAsync(context, Chains, ct).ConfigureAwait(false);
        TimeSpan dataBack = unsealClock.Elapsed;
        context.SetTimeToServe("node", dataBack);
        context.Measure("every chain serves, after the unseal", dataBack);

        await Task.Delay(After, ct).ConfigureAwait(false);
        await stopLoad.CancelAsync().ConfigureAwait(false);
        await running.WaitAsync(TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        Report(context, load, sealedAt, unsealedAt);
        await context.VerifyLedgerAsync(ct).ConfigureAwait(false);
    }

    private static void Report(DrillContext context, BoundedLoad load, TimeSpan sealedAt, TimeSpan unsealedAt)
    {
        int sealSecond = (int)sealedAt.TotalSeconds;
        int unsealSecond = (int)unsealedAt.TotalSeconds;
        double windowSeconds = (unsealedAt - sealedAt).TotalSeconds;
        foreach (LoadKind kind in new[] { LoadKind.Write, LoadKind.Read })
        {
            string name = kind == LoadKind.Write ? "writes" : "reads";
            var rows = load.PerSecond(kind);
            var window = rows.Where(r => r.Second >= sealSecond && r.Second < unsealSecond).ToList();
            context.Measure($"{name} ok/failed per second (0 = master sealed away)", BoundedLoad.Format(rows, sealSecond));
            context.Measure($"{name} in the window", $"{window.Sum(r => r.Ok)} ok, {window.Sum(r => r.Failed)} failed over {windowSeconds:0.0} s");
            // Kept working up to the last second of the window in which an operation of this kind succeeded.
            bool everySecond = Enumerable.Range(sealSecond, unsealSecond - sealSecond).All(second => window.Any(r => r.Second == second && r.Ok > 0));
            int lastOk = window.Where(r => r.Ok > 0).Select(r => r.Second).DefaultIfEmpty(sealSecond - 1).Max();
            context.Measure($"{name} kept working after the master went away",
                everySecond ? $"the whole window ({windowSeconds:0.0} s)" : $"about {lastOk + 1 - sealSecond} s of {windowSeconds:0.0} s");
        }
    }
}
