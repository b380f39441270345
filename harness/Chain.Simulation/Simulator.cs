using Chain.Consistency;
using Chain.Protocol.V1;
using Chain.Simulation.Network;
using Chain.Simulation.Runtime;

namespace Chain.Simulation;

/// <summary>What one run found. <see cref="Failure"/> is null when every check passed.</summary>
public sealed record SimulationResult(
    SimulationParameters Parameters,
    string? Failure,
    ulong Trace,
    long Steps,
    TimeSpan VirtualTime,
    int Operations,
    int OkOperations,
    int InfoOperations,
    Verdict Linearizability,
    long Faults,
    long Resets,
    IReadOnlyList<Operation> History,
    IReadOnlyList<string> Log)
{
    public bool Passed => Failure is null;

    public string Summary =>
        $"{Parameters} -> {(Failure is null ? "ok" : "FAILED: " + Failure)}; {Operations} ops ({OkOperations} ok, {InfoOperations} info), " +
        $"linearizability {Linearizability}, {Faults} faults, {Resets} resets, {Steps} steps, {VirtualTime.TotalSeconds:F1}s virtual, trace {Trace:x16}";
}

/// <summary>
/// Runs the real replication protocol (master and storage nodes) in one thread over the in-memory network,
/// storage and clock, driven by one seed: the same parameters give the same run, step for step. Phases: form
/// the cluster; run the workload while the nemesis injects faults; heal everything (resume, restart, reconnect)
/// and wait until every chain has converged; read every key once more; check the history for linearizability.
/// </summary>
public static class Simulator
{
    private static readonly TimeSpan FormTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan WorkloadTimeout = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromMinutes(5);
    private const long StepsMax = 5_000_000;
    private static readonly TimeSpan StableFor = TimeSpan.FromSeconds(4);

    public static SimulationResult Run(SimulationParameters parameters)
    {
        parameters.Validate();
        var executor = new SimExecutor(parameters.Seed);
        var log = new SimLog(executor, parameters.Verbose);
        var net = new SimNetwork(executor, new NetworkOptions { LatencyMax = TimeSpan.FromMilliseconds(parameters.LatencyMaxMs) });
        var cluster = new SimCluster(executor, net, log, parameters);
        var history = new SimClient.History();
        long faults = 0;
        string? failure = null;
        long stepsLeft = StepsMax;

        RunOutcome RunPhase(Func<bool> done, TimeSpan budget)
        {
            long before = executor.Steps;
            RunOutcome outcome = executor.Run(done, executor.Elapsed + budget, stepsLeft);
            stepsLeft -= executor.Steps - before;
            return outcome;
        }

        // ---- form the cluster ----
        cluster.StartMaster();
        for (int i = 0; i < parameters.Nodes; i++)
            cluster.StartNode(i);
        RunPhase(() => cluster.Master is not null, FormTimeout);
        SimProcess admin = executor.NewProcess("admin");
        admin.Post(() => _ = cluster.Master!.CreateBucketAsync(new BucketRequest { Name = SimCluster.Bucket }, CancellationToken.None));
        RunOutcome formed = RunPhase(cluster.Formed, FormTimeout);
        if (formed != RunOutcome.Done)
            failure = $"the cluster did not form ({formed})";

        // ---- workload under faults ----
        if (failure is null)
        {
            cluster.DiskErrorsArmed = true;
            int running = parameters.Clients;
            var stopNemesis = new CancellationTokenSource();
            for (int c = 0; c < parameters.Clients; c++)
            {
                int index = c;
                SimProcess process = executor.NewProcess($"client{c}");
                var client = new SimClient(process, net, executor, history, history.NextClientId++, log, parameters.CraqPercent);
                _ = process.Spawn(async () =>
                {
                    try
                    {
                        await client.RunAsync(parameters.OpsPerClient, parameters.Keys, parameters.ThinkMaxMs, index);
                    }
                    finally
                    {
                        running--;
                    }
                });
            }
            SimProcess nemesisProcess = executor.NewProcess("nemesis");
            var nemesis = new Nemesis(nemesisProcess, executor, net, cluster, log, parameters);
            _ = nemesisProcess.Spawn(() => nemesis.RunAsync(stopNemesis.Token));
            RunOutcome workload = RunPhase(() => running == 0, WorkloadTimeout);
            stopNemesis.Cancel();
            faults = nemesis.Faults;
            if (workload != RunOutcome.Done)
                failure = $"the workload did not finish ({workload}, {running} clients still running)";

            // ---- heal and settle ----
            nemesisProcess.Kill();
            log.Event("heal: resume, restart, reconnect");
            cluster.DiskErrorsArmed = false;
            net.HealAll();
            cluster.ResumeAll();
            cluster.RestartMaster();
            for (int i = 0; i < parameters.Nodes; i++)
                cluster.RestartNode(i);
            // Settled = the convergence condition held continuously for longer than the failure timeout, so
            // the master is not about to change the table again (e.g. a restarted master's grace period).
            string? unsettled = "not checked";
            long nextCheck = 0;
            long settledSince = -1;
            RunOutcome settled = RunPhase(() =>
            {
                if (executor.Now < nextCheck)
                    return false;
                nextCheck = executor.Now + TimeSpan.TicksPerMillisecond * 100;
                unsettled = cluster.Unsettled();
                if (unsettled is not null)
                {
                    settledSince = -1;
                    return false;
                }
                if (settledSince < 0)
                    settledSince = executor.Now;
                return executor.Now - settledSince >= StableFor.Ticks;
            }, SettleTimeout);
            if (unsettled is not null && unsettled.StartsWith("DIVERGED", StringComparison.Ordinal))
                failure ??= unsettled;
            else if (settled != RunOutcome.Done)
                failure ??= $"the cluster did not converge after healing ({settled}): {unsettled}";

            // ---- final reads: every acknowledged write must still be there ----
            if (failure is null)
            {
                SimProcess reader = executor.NewProcess("final-reader");
                var finalClient = new SimClient(reader, net, executor, history, history.NextClientId++, log);
                bool readsDone = false;
                int unread = 0;
                _ = reader.Spawn(async () =>
                {
                    for (int k = 0; k < parameters.Keys; k++)
                    {
                        bool read = false;
                        for (int attempt = 0; attempt < 3 && !read; attempt++)
                            read = await finalClient.ReadAsync("k" + k);
                        if (!read)
                            unread++;
                    }
                    readsDone = true;
                });
                RunOutcome reads = RunPhase(() => readsDone, TimeSpan.FromMinutes(2));
                if (reads != RunOutcome.Done)
                    failure = $"the final reads did not finish ({reads})";
                else if (unread > 0)
                    failure = $"{unread} final reads failed on a healed, converged cluster";
            }
        }

        // ---- checks ----
        Verdict verdict = Verdict.Unknown;
        if (history.Corrupt > 0)
            failure ??= $"{history.Corrupt} reads returned data that does not match its digest";
        if (executor.Escapes > 0)
            failure ??= $"{executor.Escapes} work items escaped the executor (non-deterministic): {executor.FirstEscape}";
        if (executor.Crashes.Count > 0)
            failure ??= $"work items threw: {executor.Crashes[0]}";
        if (history.Operations.Count > 0)
        {
            CheckResult check = LinearizabilityChecker.Check(history.Operations, TimeSpan.FromSeconds(10));
            verdict = check.Verdict;
            if (check.Verdict == Verdict.Invalid)
                failure ??= $"history of key {check.InvalidKey} is not linearizable (longest linearizable prefix: {string.Join(",", check.Witness)})";
        }
        if (failure is not null)
            log.Event("FAILED: " + failure);

        return new SimulationResult(parameters, failure, executor.Trace, executor.Steps, executor.Elapsed,
            history.Operations.Count,
            history.Operations.Count(o => o.Status == OpStatus.Ok),
            history.Operations.Count(o => o.Status == OpStatus.Info),
            verdict, faults, net.Resets, history.Operations, log.Lines);
    }
}
