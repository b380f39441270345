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

    [Fact]
    public async Task A_spare_syncs_from_the_tail_while_writes_continue_and_becomes_the_new_tail()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(nodes: 4, chains: 1, replicas: 3, failureTimeout: TimeSpan.FromSeconds(3));
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("spare");
        for (int i = 0; i < 50; i++)
            await client.PutAsync("spare", $"before/{i}", Encoding.UTF8.GetBytes($"v{i}"));
        await client.PutAsync("spare", "big", new byte[3 * Limits.ChunkBytes + 5]);
        int[] chain = c.ChainNodes(0);
        int spare = Enumerable.Range(0, 4).Single(i => !chain.Contains(i));

        var acked = new ConcurrentDictionary<string, byte[]>();
        using var stop = new CancellationTokenSource();
        Task writer = Task.Run(async () =>
        {
            for (int i = 0; i < 100_000 && !stop.IsCancellationRequested; i++)
            {
                byte[] v = Encoding.UTF8.GetBytes($"during/{i}");
                await client.PutAsync("spare", $"during/{i % 100}", v);
                acked[$"during/{i % 100}"] = v;
            }
        });
        await c.CrashNodeAsync(chain[1]);
        var live = Enumerable.Range(0, 4).Where(i => i != chain[1]).ToArray();
        await c.WaitForConfigAsync(cfg => cfg.Chains[0].Nodes.Count == 3 && cfg.Chains[0].Nodes[^1] == c.Nodes[spare].NodeId
            && cfg.Chains[0].Syncing.Count == 0, live, TimeSpan.FromSeconds(40));
        int atPromotion = acked.Count;
        using (var more = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            while (acked.Count < Math.Min(100, atPromotion + 20) && !writer.IsFaulted)
                await Task.Delay(5, more.Token);
        stop.Cancel();
        await writer;

        foreach (var (key, value) in acked)
            Assert.Equal(value, await client.GetBytesAsync("spare", key));
        Assert.Equal(new byte[3 * Limits.ChunkBytes + 5], await client.GetBytesAsync("spare", "big"));
        int[] after = c.ChainNodes(0);
        Assert.Equal(spare, after[^1]);
        // All three replicas, including the synced one, end identical.
        Assert.Single(after.Select(i => ReplicationTests.Digest(c.Engines[i])).Distinct());
        Assert.Single(after.Select(i => ReplicationTests.ReadApplied(c.Engines[i], 0)).Distinct());
    }

    [Fact]
    public async Task A_returning_node_rejoins_copying_only_the_chunks_it_lacks()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(nodes: 3, chains: 1, failureTimeout: TimeSpan.FromSeconds(3));
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("rejoin");
        var random = new Random(7);
        var objects = new Dictionary<string, byte[]>();
        for (int i = 0; i < 12; i++)
        {
            byte[] v = new byte[Limits.ChunkBytes];
            random.NextBytes(v);
            objects[$"big/{i}"] = v;
            await client.PutAsync("rejoin", $"big/{i}", v);
        }
        int[] chain = c.ChainNodes(0);
        int returning = chain[2];
        await c.CrashNodeAsync(returning);
        var live = chain.Take(2).ToArray();
        await c.WaitForConfigAsync(cfg => cfg.Chains[0].Nodes.Count == 2, live, TimeSpan.FromSeconds(20));
        // Written while it was away: these it must copy.
        for (int i = 0; i < 2; i++)
        {
            byte[] v = new byte[Limits.ChunkBytes];
            random.NextBytes(v);
            objects[$"new/{i}"] = v;
            await client.PutAsync("rejoin", $"new/{i}", v);
        }
        await client.DeleteAsync("rejoin", "big/0");
        objects.Remove("big/0");

        await c.RestartCrashedNodeAsync(returning);
        await c.WaitForConfigAsync(cfg => cfg.Chains[0].Nodes.Count == 3 && cfg.Chains[0].Nodes[^1] == c.Nodes[returning].NodeId
            && cfg.Chains[0].Syncing.Count == 0, Enumerable.Range(0, 3), TimeSpan.FromSeconds(30));

        // The old tail (now middle) sent the snapshot: it skipped the 12 chunks the returning node held.
        var (sent, skipped) = c.Nodes[chain[1]].GetReplica(0)!.SnapshotBytes;
        Assert.True(skipped >= 12L * Limits.ChunkBytes, $"skipped {skipped} bytes");
        Assert.True(sent < 3L * Limits.ChunkBytes, $"sent {sent} bytes");
        foreach (var (key, value) in objects)
            Assert.Equal(value, await client.GetBytesAsync("rejoin", key));
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.GetBytesAsync("rejoin", "big/0"));
        int[] after = c.ChainNodes(0);
        Assert.Single(after.Select(i => ReplicationTests.Digest(c.Engines[i])).Distinct());
    }
}
