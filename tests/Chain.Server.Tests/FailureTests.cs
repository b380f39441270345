using System.Collections.Concurrent;
using System.Text;
using Chain.Client;
using Chain.Protocol;
using Chain.Protocol.V1;

namespace Chain.Server.Tests;

/// <summary>
/// Failure detection and reconfiguration on an in-process cluster: a node that stops heartbeating is removed
/// from its chains (epoch bumped), the chain keeps taking writes, and no acknowledged write is lost.
/// </summary>
public class FailureTests
{
    public enum Victim { Head, Middle, Tail }

    [Theory]
    [InlineData(Victim.Head)]
    [InlineData(Victim.Middle)]
    [InlineData(Victim.Tail)]
    public async Task A_crashed_node_is_removed_and_no_acknowledged_write_is_lost(Victim victim)
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 1, failureTimeout: TimeSpan.FromSeconds(3));
        using ChainClient client = c.CreateClient(operationTimeout: TimeSpan.FromSeconds(30));
        await client.CreateBucketAsync("fail");
        int[] chain = c.ChainNodes(0);
        int crashed = victim switch { Victim.Head => chain[0], Victim.Middle => chain[1], _ => chain[2] };
        ulong epochBefore = c.Master.Current.Chains[0].Epoch;

        var acked = new ConcurrentDictionary<string, byte[]>();
        using var stopWriters = new CancellationTokenSource();
        Task[] writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (int i = 0; i < 400 && !stopWriters.IsCancellationRequested; i++)
            {
                string key = $"w{w}/{i}";
                byte[] value = Encoding.UTF8.GetBytes($"{key}@{Environment.TickCount64}");
                await client.PutAsync("fail", key, value);
                acked[key] = value;
            }
        })).ToArray();

        // Let some writes through, then crash the victim while writes are in flight.
        using (var warm = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            while (acked.Count < 40)
                await Task.Delay(5, warm.Token);
        await c.CrashNodeAsync(crashed);
        var live = Enumerable.Range(0, 3).Where(i => i != crashed).ToArray();
        await c.WaitForConfigAsync(cfg => !cfg.Chains[0].Nodes.Contains(c.Nodes[crashed].NodeId), live, TimeSpan.FromSeconds(20));
        int ackedAtReconfiguration = acked.Count;

        // The chain keeps taking writes after the reconfiguration.
        using (var more = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            while (acked.Count < ackedAtReconfiguration + 40)
                await Task.Delay(5, more.Token);
        stopWriters.Cancel();
        await Task.WhenAll(writers);

        ChainInfo after = c.Master.Current.Chains[0];
        Assert.True(after.Nodes.Count == 2, $"chain is [{string.Join(",", after.Nodes)}] at epoch {after.Epoch}; crashed {c.Nodes[crashed].NodeId}; chain was [{string.Join(",", chain.Select(i => c.Nodes[i].NodeId))}]");
        Assert.True(after.Epoch > epochBefore);
        foreach (var (key, value) in acked)
            Assert.Equal(value, await client.GetBytesAsync("fail", key));
        // The surviving replicas agree.
        int[] survivors = c.ChainNodes(0);
        Assert.Equal(ReplicationTests.Digest(c.Engines[survivors[0]]), ReplicationTests.Digest(c.Engines[survivors[1]]));
    }

    [Fact]
    public async Task A_chain_whose_every_node_failed_keeps_its_head_and_promotes_no_one()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(nodes: 3, chains: 1, failureTimeout: TimeSpan.FromSeconds(1));
        string head = c.Master.Current.Chains[0].Nodes[0];
        for (int i = 0; i < 3; i++)
            await c.CrashNodeAsync(i);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (c.Master.Current.Chains[0].Nodes.Count != 1)
            await Task.Delay(20, timeout.Token);
        Assert.Equal(new[] { head }, c.Master.Current.Chains[0].Nodes);
    }
}
