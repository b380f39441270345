using System.Collections.Concurrent;
using System.Text;
using Chain.Client;
using Chain.Harness;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;

namespace Chain.Integration.Tests;

/// <summary>
/// SIGKILL of the head, a middle node or the tail of a chain under concurrent writes and reads, with real
/// processes: the master removes the node (epoch bumped), the chain keeps serving, every acknowledged write
/// stays readable, and the surviving replicas end identical.
/// </summary>
[Trait("Category", "Integration")]
public sealed class FailoverTests : LocalClusterTest
{
    public FailoverTests() : base("failover")
    {
    }

    protected override LocalClusterOptions Options(string dataDirectory) =>
        new() { Nodes = 3, Chains = 1, DataDirectory = dataDirectory, FailureTimeout = TimeSpan.FromSeconds(3) };

    public enum Victim { Head, Middle, Tail }

    [Theory]
    [InlineData(Victim.Head)]
    [InlineData(Victim.Middle)]
    [InlineData(Victim.Tail)]
    public async Task Sigkill_under_load_loses_no_acknowledged_write(Victim victim)
    {
        using ChainClient admin = Cluster.CreateClient();
        await admin.CreateBucketAsync("load");
        ClusterStatus before = await admin.GetStatusAsync();
        string victimId = before.Chains[0].NodeIds[(int)victim];
        int victimIndex = Cluster.Nodes.ToList().FindIndex(n => n.Id == victimId);

        var acked = new ConcurrentDictionary<string, byte[]>();
        long writes = 0;
        var staleReads = new ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 4).Select(_ => Cluster.CreateClient()).ToArray();
        Task[] load = clients.Select((client, w) => Task.Run(async () =>
        {
            for (int i = 0; i < 20_000 && !stop.IsCancellationRequested; i++)
            {
                string key = $"w{w}/k{i % 20}";
                byte[] value = Encoding.UTF8.GetBytes($"{w}:{i}");
                await client.PutAsync("load", key, value);
                acked[key] = value;
                Interlocked.Increment(ref writes);
                // Read back our own latest write: it must never be older than what was acknowledged.
                byte[] read = await client.GetBytesAsync("load", key);
                if (!read.AsSpan().SequenceEqual(value))
                    staleReads.Add($"{key}: read {Encoding.UTF8.GetString(read)}, acknowledged {Encoding.UTF8.GetString(value)}");
            }
        })).ToArray();
        try
        {
            await WaitUntilAsync(() => Interlocked.Read(ref writes) >= 40, TimeSpan.FromSeconds(30), "writes before the kill");
            await Cluster.KillNodeAsync(victimIndex);
            await WaitUntilAsync(async () => !(await admin.GetStatusAsync()).Chains[0].NodeIds.Contains(victimId),
                TimeSpan.FromSeconds(30), "the master removing the killed node");
            long atReconfiguration = Interlocked.Read(ref writes);
            await WaitUntilAsync(() => Interlocked.Read(ref writes) >= atReconfiguration + 40 || load.Any(t => t.IsFaulted), TimeSpan.FromSeconds(30),
                () => DescribeAsync(admin, $"writes after the kill ({Interlocked.Read(ref writes)} acknowledged, {atReconfiguration} at reconfiguration)"));
            stop.Cancel();
            await Task.WhenAll(load);
        }
        finally
        {
            stop.Cancel();
            foreach (ChainClient c in clients)
                c.Dispose();
        }

        Assert.Empty(staleReads);
        ClusterStatus after = await admin.GetStatusAsync();
        Assert.Equal(2, after.Chains[0].NodeIds.Count);
        Assert.True(after.Chains[0].Epoch > before.Chains[0].Epoch);
        foreach (var (key, value) in acked)
            Assert.Equal(value, await admin.GetBytesAsync("load", key));

        var addresses = after.Nodes.ToDictionary(n => n.NodeId, n => new Uri(n.Address));
        var digests = new List<string>();
        foreach (string nodeId in after.Chains[0].NodeIds)
        {
            using var channel = new RpcChannel(addresses[nodeId]);
            ReplicaStateResponse state = await channel.UnaryAsync(AdminMethods.ReplicaState, new ReplicaStateRequest { ChainId = 0 });
            digests.Add(Convert.ToHexString(state.ObjectsSha256.ToByteArray()) + "@" + state.AppliedSeq);
        }
        Assert.Single(digests.Distinct());
    }

    /// <summary>What each live replica of chain 0 reports, for failure messages.</summary>
    private static async Task<string> DescribeAsync(ChainClient admin, string what)
    {
        ClusterStatus status = await admin.GetStatusAsync();
        var lines = new List<string> { what, $"chain 0 epoch {status.Chains[0].Epoch}: [{string.Join(",", status.Chains[0].NodeIds)}]" };
        foreach (NodeView node in status.Nodes)
        {
            try
            {
                using var channel = new RpcChannel(new Uri(node.Address));
                ReplicaStateResponse s = await channel.UnaryAsync(AdminMethods.ReplicaState, new ReplicaStateRequest { ChainId = 0 },
                    new CallOptions { Timeout = TimeSpan.FromSeconds(2) });
                lines.Add($"{node.NodeId}: position {s.Position} epoch {s.Epoch} applied {s.AppliedSeq} acked {s.AckedSeq}");
            }
            catch (RpcException e)
            {
                lines.Add($"{node.NodeId}: {e.Status}");
            }
        }
        return string.Join("\n", lines);
    }

    private static Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what) =>
        WaitUntilAsync(() => Task.FromResult(condition()), timeout, () => Task.FromResult(what));

    private static Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what) =>
        WaitUntilAsync(condition, timeout, () => Task.FromResult(what));

    private static Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, Func<Task<string>> what) =>
        WaitUntilAsync(() => Task.FromResult(condition()), timeout, what);

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<Task<string>> what)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (!await condition())
        {
            try
            {
                await Task.Delay(20, cts.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"timed out after {timeout} waiting for {await what()}");
            }
        }
    }
}
