using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Chain.Client;
using Chain.Harness;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;

namespace Chain.Integration.Tests;

/// <summary>
/// A spare node extends a chain that lost a member, with real processes: SIGKILL of the middle node of a 3-replica
/// chain in a 4-node cluster under concurrent writes and reads; the master removes it, lists the spare as syncing,
/// the spare copies the chain from the tail while writes continue and becomes the new tail. No stale read, every
/// acknowledged write readable, all three replicas identical.
/// </summary>
[Trait("Category", "Integration")]
public sealed class SpareTests : LocalClusterTest
{
    public SpareTests() : base("spare")
    {
    }

    protected override LocalClusterOptions Options(string dataDirectory) =>
        new() { Nodes = 4, Chains = 1, Replicas = 3, DataDirectory = dataDirectory, FailureTimeout = TimeSpan.FromSeconds(3) };

    [Fact]
    public async Task Spare_replaces_a_killed_middle_node_under_load()
    {
        using var probe = new ClusterProbe(Cluster);
        using ChainClient admin = Cluster.CreateClient();
        await admin.CreateBucketAsync("load");

        ChainInfo before = await probe.ChainAsync(0);
        Assert.Equal(3, before.Nodes.Count);
        Assert.Empty(before.Syncing);
        string victimId = before.Nodes[1];
        string spareId = Assert.Single(Cluster.Nodes.Select(n => n.Id).Except(before.Nodes));
        int victimIndex = probe.IndexOf(victimId);

        await using var load = WriteLoad.Start(Cluster, "load");
        await load.WaitForWritesAsync(40, TimeSpan.FromSeconds(30), probe, "writes before the kill");

        await Cluster.KillNodeAsync(victimIndex);
        long atKill = load.Writes;
        bool sawSyncing = false;
        ChainInfo? extended = null;
        await ClusterWait.UntilAsync(async () =>
        {
            load.ThrowIfFailed();
            ChainInfo? chain = await probe.TryChainAsync(0);
            if (chain is null)
                return false;
            sawSyncing |= chain.Syncing.Contains(spareId);
            if (chain.Nodes.Count == 3 && chain.Nodes.Contains(spareId) && !chain.Nodes.Contains(victimId) && chain.Syncing.Count == 0)
            {
                extended = chain;
                return true;
            }
            return false;
        }, TimeSpan.FromSeconds(60), () => probe.DescribeAsync(
            $"the master to replace {victimId} by the spare {spareId} in chain 0 (3 nodes, nothing syncing; " +
            $"{atKill} writes acknowledged at the kill, spare seen syncing: {sawSyncing})", load));
        long atExtension = load.Writes;

        await load.WaitForWritesAsync(atExtension + 40, TimeSpan.FromSeconds(30), probe,
            $"writes after the spare joined ({atExtension} acknowledged when it joined)");
        await load.StopAsync();

        Assert.Empty(load.StaleReads);
        Assert.NotNull(extended);
        Assert.True(extended.Epoch > before.Epoch, $"epoch {extended.Epoch} after the extension, {before.Epoch} before the kill");
        Assert.Equal(spareId, extended.Nodes[^1]);
        ChainInfo after = await probe.ChainAsync(0);
        Assert.Equal(extended.Nodes, after.Nodes);
        Assert.Empty(after.Syncing);

        foreach (var (key, value) in load.Acknowledged)
            Assert.Equal(value, await admin.GetBytesAsync("load", key));

        await probe.AssertReplicasIdenticalAsync(0, after.Nodes.ToList(), TimeSpan.FromSeconds(30), load);
    }
}

/// <summary>
/// A SIGKILLed tail that is restarted rejoins its chain, with real processes: the master removes it (epoch bump),
/// writes continue on two nodes, the node restarts and re-registers, the master picks it (a former member) as the
/// syncing node, it copies what it missed from the tail (including multi-chunk objects) while writes continue, and
/// becomes the tail again. No stale read, every acknowledged write readable byte for byte, all three replicas identical.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RejoinTests : LocalClusterTest
{
    private const int ThreeMiB = 3 * 1024 * 1024;

    public RejoinTests() : base("rejoin")
    {
    }

    protected override LocalClusterOptions Options(string dataDirectory) =>
        new() { Nodes = 3, Chains = 1, Replicas = 3, DataDirectory = dataDirectory, FailureTimeout = TimeSpan.FromSeconds(3) };

    [Fact]
    public async Task Killed_tail_restarts_syncs_under_load_and_rejoins_as_tail()
    {
        using var probe = new ClusterProbe(Cluster);
        using ChainClient admin = Cluster.CreateClient();
        await admin.CreateBucketAsync("data");
        await admin.CreateBucketAsync("load");

        // ~200 objects of varied sizes, a few of them 3 MiB (several chunks), all on the node that will be killed.
        var expected = new ConcurrentDictionary<string, byte[]>();
        await Parallel.ForEachAsync(Enumerable.Range(0, 200), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
        {
            string key = $"pre/{i:D3}";
            byte[] value = TestData.Content(i, SizeOf(i));
            await admin.PutAsync("data", key, value, cancellationToken: ct);
            expected[key] = value;
        });
        Assert.Equal(3, expected.Values.Count(v => v.Length >= ThreeMiB));

        ChainInfo before = await probe.ChainAsync(0);
        Assert.Equal(3, before.Nodes.Count);
        string victimId = before.Nodes[^1];
        int victimIndex = probe.IndexOf(victimId);

        await using var load = WriteLoad.Start(Cluster, "load");
        await load.WaitForWritesAsync(40, TimeSpan.FromSeconds(30), probe, "writes before the kill");

        await Cluster.KillNodeAsync(victimIndex);
        ChainInfo? removed = null;
        await ClusterWait.UntilAsync(async () =>
        {
            load.ThrowIfFailed();
            ChainInfo? chain = await probe.TryChainAsync(0);
            if (chain is { Nodes.Count: 2 } && !chain.Nodes.Contains(victimId))
                removed = chain;
            return removed is not null;
        }, TimeSpan.FromSeconds(30), () => probe.DescribeAsync($"the master to remove the killed tail {victimId}", load));
        ulong removedEpoch = removed!.Epoch;
        Assert.True(removedEpoch > before.Epoch, $"epoch {removedEpoch} after the removal, {before.Epoch} before");

        // Changes the killed node can only learn through the sync: a new multi-chunk object, overwrites, deletes.
        var deleted = new List<string>();
        {
            byte[] big = TestData.Content(1000, ThreeMiB + 4321);
            await admin.PutAsync("data", "down/big", big);
            expected["down/big"] = big;
            for (int i = 10; i < 15; i++)
            {
                string key = $"pre/{i:D3}";
                byte[] value = TestData.Content(2000 + i, 500 + i);
                await admin.PutAsync("data", key, value);
                expected[key] = value;
            }
            foreach (int i in new[] { 20, 21, 22, 3 }) // pre/003 is one of the 3 MiB objects
            {
                string key = $"pre/{i:D3}";
                Assert.True(await admin.DeleteAsync("data", key));
                expected.TryRemove(key, out _);
                deleted.Add(key);
            }
        }
        await load.WaitForWritesAsync(load.Writes + 40, TimeSpan.FromSeconds(30), probe, "writes on the shortened chain");

        await Cluster.StartNodeAsync(victimIndex);
        long atRestart = load.Writes;
        long? atSyncingSeen = null;
        ChainInfo? rejoined = null;
        await ClusterWait.UntilAsync(async () =>
        {
            load.ThrowIfFailed();
            ChainInfo? chain = await probe.TryChainAsync(0);
            if (chain is null)
                return false;
            if (atSyncingSeen is null && chain.Syncing.Contains(victimId))
                atSyncingSeen = load.Writes;
            if (chain.Nodes.Count == 3 && chain.Nodes[^1] == victimId && chain.Epoch > removedEpoch && chain.Syncing.Count == 0)
                rejoined = chain;
            return rejoined is not null;
        }, TimeSpan.FromSeconds(60), () => probe.DescribeAsync(
            $"the restarted {victimId} to rejoin chain 0 as its tail ({atRestart} writes acknowledged at the restart, " +
            $"first seen syncing at {atSyncingSeen?.ToString() ?? "never"})", load));
        long atPromotion = load.Writes;

        // Reads now go to the rejoined tail: keep writing and reading back a while longer.
        await load.WaitForWritesAsync(atPromotion + 40, TimeSpan.FromSeconds(30), probe,
            $"writes after {victimId} became the tail ({atPromotion} acknowledged then)");
        await load.StopAsync();

        Assert.Empty(load.StaleReads);
        Assert.True(atPromotion - atRestart >= 40,
            $"only {atPromotion - atRestart} writes were acknowledged while {victimId} was syncing (restart at {atRestart}, " +
            $"first seen syncing at {atSyncingSeen?.ToString() ?? "never"}, tail at {atPromotion}): a sync must not hold up writes");
        ChainInfo after = await probe.ChainAsync(0);
        Assert.Equal(rejoined!.Nodes, after.Nodes);
        Assert.Equal(victimId, after.Nodes[^1]);
        Assert.Empty(after.Syncing);

        foreach (var (key, value) in load.Acknowledged)
            Assert.Equal(value, await admin.GetBytesAsync("load", key));
        foreach (var (key, value) in expected)
        {
            byte[] read = await admin.GetBytesAsync("data", key);
            Assert.True(read.AsSpan().SequenceEqual(value),
                $"data/{key}: read {read.Length} bytes sha256 {TestData.Hex(read)}, wrote {value.Length} bytes sha256 {TestData.Hex(value)}");
        }
        foreach (string key in deleted)
            await Assert.ThrowsAsync<ObjectNotFoundException>(() => admin.GetBytesAsync("data", key));

        await probe.AssertReplicasIdenticalAsync(0, after.Nodes.ToList(), TimeSpan.FromSeconds(30), load);
    }

    /// <summary>Varied sizes: empty, small, around the chunk boundary, larger, and three of 3 MiB (and a bit).</summary>
    private static int SizeOf(int i) => i switch
    {
        0 => 0,
        3 or 70 or 137 => ThreeMiB + (i == 3 ? 0 : i * 11),
        7 => Limits.StreamFrameBytes - 1,
        57 => Limits.StreamFrameBytes,
        107 => Limits.StreamFrameBytes + 1,
        _ when i % 10 == 5 => 64 * 1024 + i * 97,
        _ => 1 + i * 7919 % 8192,
    };

}

/// <summary>
/// Concurrent writers with a bounded loop (count and time): each puts its own keys and reads back what it just wrote;
/// a read that does not return the acknowledged value is a stale read.
/// </summary>
internal sealed class WriteLoad : IAsyncDisposable
{
    private readonly ChainClient[] _clients;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _workers;
    private long _writes;

    private WriteLoad(LocalCluster cluster, string bucket, int writers, int maxWritesPerWriter, TimeSpan maxDuration)
    {
        _clients = Enumerable.Range(0, writers).Select(_ => cluster.CreateClient()).ToArray();
        _workers = _clients.Select((client, w) => Task.Run(() => RunAsync(client, bucket, w, maxWritesPerWriter, maxDuration))).ToArray();
    }

    /// <summary>Latest acknowledged value of every key written.</summary>
    public ConcurrentDictionary<string, byte[]> Acknowledged { get; } = new();

    public ConcurrentQueue<string> StaleReads { get; } = new();

    /// <summary>Acknowledged writes so far.</summary>
    public long Writes => Interlocked.Read(ref _writes);

    /// <summary>Every writer has ended (stopped, reached its bounds or failed).</summary>
    public bool Finished => _workers.All(t => t.IsCompleted);

    public static WriteLoad Start(LocalCluster cluster, string bucket, int writers = 4, int maxWritesPerWriter = 20_000, TimeSpan? maxDuration = null) =>
        new(cluster, bucket, writers, maxWritesPerWriter, maxDuration ?? TimeSpan.FromSeconds(80));

    /// <summary>Throws when a writer failed (an operation the client gave up on), with that failure inside.</summary>
    public void ThrowIfFailed()
    {
        Exception? failure = _workers.FirstOrDefault(t => t.IsFaulted)?.Exception?.GetBaseException();
        if (failure is not null)
            throw new InvalidOperationException($"a writer failed after {Writes} acknowledged writes: {failure.Message}", failure);
    }

    public string Describe() =>
        $"load: {Writes} writes acknowledged, {StaleReads.Count} stale reads, " +
        (Finished ? "finished" : "running") +
        (_workers.FirstOrDefault(t => t.IsFaulted)?.Exception?.GetBaseException() is { } e ? $", a writer failed: {e.GetType().Name}: {e.Message}" : "");

    /// <summary>Waits (bounded) until at least <paramref name="target"/> writes were acknowledged.</summary>
    public Task WaitForWritesAsync(long target, TimeSpan timeout, ClusterProbe probe, string what) =>
        ClusterWait.UntilAsync(() =>
        {
            ThrowIfFailed();
            if (Writes >= target)
                return true;
            if (Finished)
                Assert.Fail($"the load ended at {Writes} acknowledged writes, before {target}, waiting for {what}");
            return false;
        }, timeout, () => probe.DescribeAsync($"{what} (at least {target} acknowledged)", this));

    /// <summary>Stops the writers and waits for them; rethrows a writer's failure.</summary>
    public async Task StopAsync()
    {
        _stop.Cancel();
        await Task.WhenAll(_workers);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try
        {
            await Task.WhenAll(_workers);
        }
        catch
        {
            // Reported by StopAsync or ThrowIfFailed when it matters.
        }
        foreach (ChainClient client in _clients)
            client.Dispose();
        _stop.Dispose();
    }

    private async Task RunAsync(ChainClient client, string bucket, int w, int maxWrites, TimeSpan maxDuration)
    {
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < maxWrites && !_stop.IsCancellationRequested && clock.Elapsed < maxDuration; i++)
        {
            string key = $"w{w}/k{i % 20}";
            byte[] value = Encoding.UTF8.GetBytes($"{w}:{i}");
            await client.PutAsync(bucket, key, value);
            Acknowledged[key] = value;
            Interlocked.Increment(ref _writes);
            // Read back our own latest write: it must never be older than what was acknowledged.
            string? read;
            try
            {
                read = Encoding.UTF8.GetString(await client.GetBytesAsync(bucket, key));
            }
            catch (ObjectNotFoundException)
            {
                read = null;
            }
            if (read != $"{w}:{i}")
                StaleReads.Enqueue($"{key}: read {read ?? "not found"}, acknowledged {w}:{i} (after {Writes} writes)");
        }
    }
}

/// <summary>Reads the master's config and the replicas' state for waits, assertions and diagnostics.</summary>
internal sealed class ClusterProbe : IDisposable
{
    private static readonly CallOptions Quick = new() { Timeout = TimeSpan.FromSeconds(2) };

    private readonly LocalCluster _cluster;
    private readonly RpcChannel _master;
    private readonly ConcurrentDictionary<string, RpcChannel> _nodes = new(StringComparer.Ordinal);
    private string? _lastMasterError;

    public ClusterProbe(LocalCluster cluster)
    {
        _cluster = cluster;
        _master = new RpcChannel(cluster.MasterAddress);
    }

    public int IndexOf(string nodeId)
    {
        int index = _cluster.Nodes.ToList().FindIndex(n => n.Id == nodeId);
        Assert.True(index >= 0, $"no node {nodeId} in the cluster");
        return index;
    }

    public Task<ClusterConfig> ConfigAsync() => _master.UnaryAsync(MasterMethods.GetConfig, new GetConfigRequest(), Quick);

    public async Task<ChainInfo> ChainAsync(uint chainId)
    {
        ClusterConfig config = await ConfigAsync();
        return config.Chains.Single(c => c.ChainId == chainId);
    }

    /// <summary>The master's view of a chain; null (error remembered for diagnostics) when the master did not answer.</summary>
    public async Task<ChainInfo?> TryChainAsync(uint chainId)
    {
        try
        {
            ChainInfo chain = await ChainAsync(chainId);
            _lastMasterError = null;
            return chain;
        }
        catch (RpcException e)
        {
            _lastMasterError = $"{e.Status}: {e.Message}";
            return null;
        }
    }

    public async Task<ReplicaStateResponse> ReplicaStateAsync(string nodeId, uint chainId)
    {
        RpcChannel channel = _nodes.GetOrAdd(nodeId, id => new RpcChannel(_cluster.Nodes[IndexOf(id)].Address));
        return await channel.UnaryAsync(AdminMethods.ReplicaState, new ReplicaStateRequest { ChainId = chainId }, Quick);
    }

    /// <summary>
    /// Waits (bounded) until every node of <paramref name="nodeIds"/> reports the same applied sequence number for the
    /// chain (they converge once writes stop), then asserts that they also hold identical object records.
    /// </summary>
    public async Task AssertReplicasIdenticalAsync(uint chainId, IReadOnlyList<string> nodeIds, TimeSpan timeout, WriteLoad? load)
    {
        await ClusterWait.UntilAsync(async () =>
        {
            try
            {
                ReplicaStateResponse[] states = await Task.WhenAll(nodeIds.Select(id => ReplicaStateAsync(id, chainId)));
                return states.Select(s => s.AppliedSeq).Distinct().Count() == 1;
            }
            catch (RpcException)
            {
                return false;
            }
        }, timeout, () => DescribeAsync($"the applied sequence numbers of chain {chainId} on {string.Join(", ", nodeIds)} to agree", load));

        ReplicaStateResponse[] final = await Task.WhenAll(nodeIds.Select(id => ReplicaStateAsync(id, chainId)));
        string summary = string.Join("; ", final.Select(s =>
            $"{s.NodeId}: epoch {s.Epoch} position {s.Position} applied {s.AppliedSeq} objects {s.ObjectCount} sha256 {Convert.ToHexString(s.ObjectsSha256.ToByteArray())}"));
        Assert.True(final.Select(s => s.AppliedSeq).Distinct().Count() == 1, "applied sequence numbers differ: " + summary);
        Assert.True(final.Select(s => Convert.ToHexString(s.ObjectsSha256.ToByteArray())).Distinct().Count() == 1, "object records differ: " + summary);
    }

    /// <summary>The master's view, what each node reports for chain 0 and the load's progress, for failure messages.</summary>
    public async Task<string> DescribeAsync(string what, WriteLoad? load = null)
    {
        var lines = new List<string> { what };
        if (load is not null)
            lines.Add(load.Describe());
        try
        {
            ClusterConfig config = await ConfigAsync();
            lines.Add($"config version {config.Version}, replicas {config.Replicas}");
            foreach (ChainInfo chain in config.Chains)
                lines.Add($"chain {chain.ChainId} epoch {chain.Epoch}: [{string.Join(",", chain.Nodes)}] syncing [{string.Join(",", chain.Syncing)}]");
            foreach (NodeStatus node in config.Nodes)
                lines.Add($"master sees {node.Node.NodeId} {(node.Alive ? "alive" : "dead")}, last heartbeat {node.LastHeartbeatUnixMs}");
        }
        catch (RpcException e)
        {
            lines.Add($"master: {e.Status}: {e.Message} (last poll error: {_lastMasterError ?? "none"})");
        }
        foreach (NodeProcess node in _cluster.Nodes)
        {
            if (!node.IsRunning)
            {
                lines.Add($"{node.Id}: not running");
                continue;
            }
            try
            {
                ReplicaStateResponse s = await ReplicaStateAsync(node.Id, 0);
                lines.Add($"{node.Id}: position {s.Position} epoch {s.Epoch} applied {s.AppliedSeq} acked {s.AckedSeq} objects {s.ObjectCount}");
            }
            catch (RpcException e)
            {
                lines.Add($"{node.Id}: {e.Status}: {e.Message}");
            }
        }
        lines.Add($"logs: {_cluster.Options.DataDirectory} (kept with CHAIN_KEEP_TEST_DATA=1)");
        return string.Join("\n", lines);
    }

    public void Dispose()
    {
        _master.Dispose();
        foreach (RpcChannel channel in _nodes.Values)
            channel.Dispose();
    }
}

/// <summary>Bounded waits on a condition, polled every 20 ms, failing with a description of what was seen.</summary>
internal static class ClusterWait
{
    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, Func<Task<string>> what) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, what);

    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<Task<string>> what)
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
