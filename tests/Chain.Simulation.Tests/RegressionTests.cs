using Xunit;
using Xunit.Abstractions;

namespace Chain.Simulation.Tests;

/// <summary>
/// Schedules that once failed, kept with their seeds. Each replays exactly; the comment says what it found and
/// where it was fixed.
/// </summary>
public class RegressionTests(ITestOutputHelper output)
{
    private void Replay(string schedule)
    {
        SimulationResult result = Simulator.Run(SimulationParameters.Parse(schedule));
        output.WriteLine(result.Summary);
        if (!result.Passed)
            foreach (string line in result.Log.TakeLast(80))
                output.WriteLine(line);
        Assert.True(result.Passed, result.Summary);
    }

    /// <summary>
    /// Acknowledged writes lost. The head (node1) is paused for 4.1 s with two client puts queued; the master
    /// removes it and the chain continues as [node2, node3]. On resume node1 still runs its old config, applies
    /// the two puts as seq 12 and 13 of its own (divergent) history, then learns the config that re-adds it as a
    /// syncing node — without ever seeing the one that removed it. Its replica, updated in place, had no successor
    /// and counted as "alone", so it acknowledged both puts to the clients; the sync then replaced its data with
    /// the tail's snapshot at 11 and both acknowledged writes were gone. Fixed in StorageNode.ApplyConfigAsync:
    /// a node rejoining as a syncing node starts a fresh replica, failing what the old one had in flight.
    /// </summary>
    [Fact]
    public void DeposedHeadRejoiningAsSyncingNodeDoesNotAcknowledgeItsOwnWrites() =>
        Replay("seed=577364915 nodes=3 chains=1 replicas=3 clients=3 keys=1 ops=6 think=634ms crash=3% partition=3% drop=9% pause=10% " +
            "master-crash=2% disk-errors=1‰ latency=12ms disk=2ms");
}
