using System.Text;
using Chain.Client;
using Chain.Consistency;
using Chain.Harness;
using Chain.Protocol.V1;

namespace Chain.Integration.Tests;

/// <summary>The replica convergence checker against a real cluster: healthy clusters converge; silent members are named.</summary>
public sealed class ConvergenceTests() : LocalClusterTest("convergence")
{
    protected override LocalClusterOptions Options(string dataDirectory) => new()
    {
        Nodes = 3,
        Chains = 3,
        Replicas = 3,
        DataDirectory = dataDirectory,
        // The paused node must stay in its chains while it is paused.
        FailureTimeout = TimeSpan.FromSeconds(60),
    };

    [Fact]
    public async Task A_healthy_cluster_converges_after_concurrent_writes_and_a_paused_member_is_reported()
    {
        const int writers = 4, perWriter = 25;
        var clients = Enumerable.Range(0, writers).Select(_ => Cluster.CreateClient()).ToArray();
        try
        {
            await clients[0].CreateBucketAsync("conv");
            await Task.WhenAll(clients.Select((client, w) => Task.Run(async () =>
            {
                for (int i = 0; i < perWriter; i++)
                    await client.PutAsync("conv", $"k{(w * perWriter + i) % 17}", Encoding.UTF8.GetBytes($"{w}:{i}"));
            })));
        }
        finally
        {
            foreach (ChainClient c in clients)
                await c.DisposeAsync();
        }

        ConvergenceResult result = await ConvergenceChecker.CheckAsync(Cluster, new ConvergenceOptions { Timeout = TimeSpan.FromSeconds(30) });
        string description = string.Join("\n", result.Chains.Select(c => c.Describe()));
        Assert.True(result.Converged, description);
        Assert.True(result.Quiet);
        Assert.Equal(Verdict.Valid, result.Verdict);
        Assert.Equal(3, result.Chains.Count);
        Assert.All(result.Chains, c =>
        {
            Assert.Equal(3, c.Replicas.Count);
            Assert.Empty(c.Differing);
            Assert.Equal(Enumerable.Range(0, 3), c.Replicas.Select(r => r.Position));
        });
        // 17 keys were written: every chain's object count adds up to them (each replica counts its chain's objects).
        Assert.Equal(17UL, result.Chains.Aggregate(0UL, (sum, c) => sum + c.Replicas[0].ObjectCount));
        Assert.True(result.Chains.Sum(c => (long)c.Replicas[0].AppliedSeq) > 0);
        CheckerVerdict verdict = result.ToVerdict();
        Assert.Equal("convergence", verdict.Checker);
        Assert.Equal(Verdict.Valid, verdict.Verdict);

        // A paused member cannot answer: the check does not claim convergence and names it.
        Cluster.SuspendNode(1);
        try
        {
            ConvergenceResult paused = await ConvergenceChecker.CheckAsync(Cluster, new ConvergenceOptions
            {
                Timeout = TimeSpan.FromSeconds(3),
                CallTimeout = TimeSpan.FromSeconds(1.5),
            });
            Assert.False(paused.Converged);
            Assert.Equal(Verdict.Unknown, paused.Verdict);
            Assert.All(paused.Chains, c => Assert.Equal(["node2"], c.Differing));
            Assert.All(paused.Chains, c => Assert.NotNull(c.Replicas.Single(r => r.NodeId == "node2").Error));
        }
        finally
        {
            Cluster.ResumeNode(1);
        }

        ConvergenceResult resumed = await ConvergenceChecker.CheckAsync(Cluster, new ConvergenceOptions { Timeout = TimeSpan.FromSeconds(30) });
        Assert.True(resumed.Converged, string.Join("\n", resumed.Chains.Select(c => c.Describe())));
    }
}

/// <summary>The comparison rule on hand-made reports (no cluster needed).</summary>
public class ConvergenceCompareTests
{
    private static readonly ChainInfo Chain = new() { ChainId = 2, Epoch = 5, Nodes = { "a", "b", "c" } };

    private static ReplicaDigest R(string node, ulong applied, string sha, ulong count = 3, string? error = null) =>
        new(node, 5, 0, applied, applied, count, sha, error);

    [Fact]
    public void IdenticalMembersConverge()
    {
        ChainConvergence c = ConvergenceChecker.Compare(Chain, [R("a", 9, "AA"), R("b", 9, "AA"), R("c", 9, "AA")]);
        Assert.True(c.Converged);
        Assert.Empty(c.Differing);
    }

    [Fact]
    public void AMemberWithOtherObjectsAtTheSameSequenceNumberDiffers()
    {
        ChainConvergence c = ConvergenceChecker.Compare(Chain, [R("a", 9, "AA"), R("b", 9, "BB"), R("c", 9, "AA")]);
        Assert.False(c.Converged);
        Assert.Equal(["b"], c.Differing);
        Assert.Contains("DIFFER (b)", c.Describe());
    }

    [Fact]
    public void LaggingSilentAndLeaderlessMembersDiffer()
    {
        Assert.Equal(["c"], ConvergenceChecker.Compare(Chain, [R("a", 9, "AA"), R("b", 9, "AA"), R("c", 8, "AA")]).Differing);
        Assert.Equal(["c"], ConvergenceChecker.Compare(Chain, [R("a", 9, "AA"), R("b", 9, "AA"), R("c", 0, "", error: "timeout")]).Differing);
        Assert.Equal(["a", "b", "c"], ConvergenceChecker.Compare(Chain, [R("a", 9, "AA"), R("b", 9, "BB"), R("c", 9, "CC")]).Differing);
        Assert.Equal(["a", "b"], ConvergenceChecker.Compare(Chain, [R("a", 9, "AA"), R("b", 9, "AA", count: 4)]).Differing);
    }
}

public class FaultPeriodMappingTests
{
    [Fact]
    public void FaultEventsBecomeReportPeriodsAndUnhealedOnesLastToTheEnd()
    {
        var healed = new Chain.Harness.Faults.FaultEvent(new(Chain.Harness.Faults.FaultKind.PauseNode, 1, TimeSpan.FromSeconds(4)), "SIGSTOP node2", 100, 500);
        var open = new Chain.Harness.Faults.FaultEvent(new(Chain.Harness.Faults.FaultKind.KillMaster, 0, TimeSpan.FromSeconds(1)), "", 50, 0);
        var periods = Chain.Harness.Faults.FaultPeriods.From([healed, open], runEndTicks: 900);
        Assert.Equal(2, periods.Count);
        Assert.Equal(new Chain.Consistency.Report.FaultPeriod("KillMaster(0, 1000 ms)", 50, 900), periods[0]);
        Assert.Equal(new Chain.Consistency.Report.FaultPeriod("PauseNode(1, 4000 ms): SIGSTOP node2", 100, 500), periods[1]);
    }
}
