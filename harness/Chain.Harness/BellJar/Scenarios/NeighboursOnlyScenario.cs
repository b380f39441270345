using Chain.Protocol.V1;

namespace Chain.Harness.BellJar.Scenarios;

/// <summary>
/// Neighbours only: 6 nodes in 2 chains of 3, so a node's peers are a strict subset of the nodes. The middle node of
/// chain 0 gets an allowlist narrowed to the members of its chains and the master; load, a restart of that node
/// within the failure timeout (it stays a member and catches up from its predecessor), load again, until every chain
/// converges. Any attempt of that node toward a node outside its chains fails the scenario and names the
/// code path's destination (a finding: the node needs more than its neighbours).
/// </summary>
public sealed class NeighboursOnlyScenario : DrillScenario
{
    private const int Nodes = 6;
    private const int Chains = 2;
    private static readonly TimeSpan RestartWithin = TimeSpan.FromSeconds(15);

    public NeighboursOnlyScenario()
        : base("neighbours-only", "a node that can reach only its chain neighbours and the master still does its job (restart, catch-up)",
            TimeSpan.FromSeconds(180), "short", "full")
    {
    }

    public override async Task RunAsync(DrillContext context, CancellationToken ct)
    {
        LocalCluster cluster = await context.StartClusterAsync(Nodes, Chains, 3, ct, o =>
        {
            // Long enough that the restarted node stays a member and catches up from its predecessor (no spare sync).
            o.FailureTimeout = RestartWithin;
        }).ConfigureAwait(false);
        SealedNetwork seal = cluster.Seal!;
        ClusterConfig config = await DrillProbes.ConfigAsync(cluster, ct).ConfigureAwait(false)
            ?? throw new DrillFailure("the master did not answer GetConfig");
        ChainInfo first = config.Chains.First(c => c.ChainId == 0);
        if (first.Nodes.Count < 3)
            throw new DrillFailure($"chain 0 has {first.Nodes.Count} members, the scenario needs 3");
        string victim = first.Nodes[1];
        int victimProcess = seal.IndexOf(victim);
        int victimIndex = victimProcess - 1;
        var peers = config.Chains.Where(c => c.Nodes.Contains(victim) || c.Syncing.Contains(victim))
            .SelectMany(c => c.Nodes.Concat(c.Syncing)).Where(n => n != victim).Distinct().ToList();
        if (peers.Count >= Nodes - 1)
            throw new DrillFailure($"{victim}'s chains hold every node: its neighbours are not a strict subset");
        await seal.NarrowAsync(victimProcess, peers.Select(seal.IndexOf).Prepend(0), ct).ConfigureAwait(false);
        context.Measure("narrowed node", $"{victim} (middle of chain 0) may reach master, {string.Join(", ", peers)} (not {string.Join(", ", cluster.Nodes.Select(n => n.Id).Where(n => n != victim && !peers.Contains(n)))})");

        await context.CreateBucketAsync(ct).ConfigureAwait(false);
        await context.LoadAsync("before", small: 40, chunked: 3, ct).ConfigureAwait(false);
        // Writes in flight across the restart: chain 0's are sequenced by the head while the victim is down and
        // re-sent to it by its predecessor when it is back (the clients wait, within their 30 s deadline).
        Task during = context.LoadAsync("during-restart", small: 30, chunked: 2, ct);
        var restart = System.Diagnostics.Stopwatch.StartNew();
        await cluster.KillNodeAsync(victimIndex).ConfigureAwait(false);
        await cluster.StartNodeAsync(victimIndex, ct).ConfigureAwait(false);
        context.Measure($"{victim} killed (SIGKILL) and started again from its disk (READY)", restart.Elapsed);
        await during.ConfigureAwait(false);
        if (restart.Elapsed >= RestartWithin)
            throw new DrillFailure($"the restart took {restart.Elapsed.TotalSeconds:0.0} s, longer than the failure timeout: the master replaced the node");
        await context.LoadAsync("after", small: 40, chunked: 3, ct).ConfigureAwait(false);

        // Caught up: the victim is still a member of chain 0 (nothing syncing) and every chain's members agree.
        // A restarted middle node is sent what it missed by its predecessor on reconnect.
        ConvergenceResult? last = null;
        await DrillProbes.WaitForAsync(async token =>
        {
            ClusterConfig? now = await DrillProbes.ConfigAsync(cluster, token).ConfigureAwait(false);
            if (now is null || !now.Chains.Any(c => c.Nodes.Contains(victim) && c.Syncing.Count == 0))
                return false;
            last = await ConvergenceChecker.CheckAsync(cluster, new ConvergenceOptions { Timeout = TimeSpan.FromSeconds(5) }, token).ConfigureAwait(false);
            return last.Converged;
        }, ct).ConfigureAwait(false);
        TimeSpan caughtUp = restart.Elapsed;
        context.SetTimeToServe("node", caughtUp);
        context.Measure($"{victim} restarted until every chain converged", caughtUp);

        await ProbeHeadAsync(context, seal, config, ct).ConfigureAwait(false);
        await context.VerifyLedgerAsync(ct).ConfigureAwait(false);
        var blocked = (await seal.AttemptsOfAsync(victimProcess, ct).ConfigureAwait(false)).Where(a => a.Declared).ToList();
        if (blocked.Count > 0)
            throw new DrillFailure($"{victim} needed more than its neighbours: " + string.Join("; ", blocked));
        context.Measure("attempts of the narrowed node outside its neighbours", "none");
    }

    /// <summary>
    /// The finding part: a head is not a "neighbours only" node. Narrowed to its chain and the master, the head of chain 0
    /// is asked to commit a distributed object of a key on chain 0 whose chunks landed partly on chain 1: the commit asks
    /// chain 1's head whether it holds them (Admin.HasChunks). Reported (blocked destinations, whether the put was
    /// acknowledged), not judged; the allowlist is widened again afterwards.
    /// </summary>
    private static async Task ProbeHeadAsync(DrillContext context, SealedNetwork seal, ClusterConfig config, CancellationToken ct)
    {
        ChainInfo chain0 = config.Chains.First(c => c.ChainId == 0);
        string head = chain0.Nodes[0];
        int headProcess = seal.IndexOf(head);
        string key = KeyWithChunkOnOtherChain(context.Ledger);
        await seal.NarrowAsync(headProcess, chain0.Nodes.Where(n => n != head).Select(seal.IndexOf).Prepend(0), ct).ConfigureAwait(false);
        bool acknowledged;
        await using (Chain.Client.ChainClient client = context.Client(TimeSpan.FromSeconds(12)))
            acknowledged = await context.Ledger.WriteAsync(client, key, chunked: true, ct).ConfigureAwait(false);
        var blocked = (await seal.AttemptsOfAsync(headProcess, ct).ConfigureAwait(false)).Where(a => a.Declared).ToList();
        await seal.WidenAsync(headProcess, ct).ConfigureAwait(false);
        string outcome = acknowledged ? "the put was acknowledged" : "the put was not acknowledged within 12 s";
        context.Measure($"head {head} of chain 0 narrowed to its neighbours, committing a distributed object with a chunk on chain 1",
            outcome + "; blocked: " + (blocked.Count == 0 ? "nothing" : string.Join("; ", blocked)));
        if (blocked.Count > 0)
            context.Finding($"a head needs more than its neighbours: committing a distributed object asks the head of every chunk's chain (Admin.HasChunks); {head} -> {string.Join(", ", blocked.Select(b => b.DestinationName).Distinct())}; {outcome}");
    }

    /// <summary>A fresh key on chain 0 whose chunked content has a chunk on chain 1.</summary>
    private static string KeyWithChunkOnOtherChain(WriteLedger ledger)
    {
        for (int attempt = 0; attempt < 10_000; attempt++)
        {
            string key = DrillProbes.KeyOnChain(ledger, 0, Chains);
            byte[] content = ledger.Content(key, WriteLedger.ChunkedBytes);
            for (int offset = 0; offset < content.Length; offset += WriteLedger.ChunkBytes)
            {
                byte[] id = System.Security.Cryptography.SHA256.HashData(content.AsSpan(offset, Math.Min(WriteLedger.ChunkBytes, content.Length - offset)));
                if (Chain.Protocol.Placement.ChainForChunk(id, Chains) == 1)
                    return key;
            }
        }
        throw new InvalidOperationException("no key on chain 0 with a chunk on chain 1");
    }
}
