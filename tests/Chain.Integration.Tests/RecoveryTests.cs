using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Chain.Client;
using Chain.Harness;
using Chain.Protocol;
using Chain.Protocol.V1;
using Xunit.Abstractions;

namespace Chain.Integration.Tests;

/// <summary>
/// Every node of a chain SIGKILLed at once, with real processes: the master keeps only the chain's head (it never
/// empties a chain) and promotes no other replica; with the two other nodes restarted first the chain serves nothing;
/// once the head is back the others are re-added through sync, every acknowledged object is readable byte for byte
/// and the three replicas are identical.
/// </summary>
[Trait("Category", "Integration")]
[Collection(RecoveryCollection.Name)]
public sealed class WholeChainLossTests : LocalClusterTest
{
    private const int Objects = 100;

    private readonly ITestOutputHelper _output;

    public WholeChainLossTests(ITestOutputHelper output) : base("wholechain") => _output = output;

    protected override LocalClusterOptions Options(string dataDirectory) =>
        new() { Nodes = 3, Chains = 1, Replicas = 3, DataDirectory = dataDirectory, FailureTimeout = TimeSpan.FromSeconds(3) };

    [Fact]
    public async Task Chain_with_every_node_killed_keeps_its_head_serves_nothing_without_it_and_loses_no_acknowledged_object()
    {
        int seed = RecoverySeed.Next();
        _output.WriteLine($"seed {seed} (set CHAIN_TEST_SEED={seed} to repeat)");
        var random = new Random(seed);

        using var probe = new ClusterProbe(Cluster);
        using ChainClient admin = Cluster.CreateClient();
        await admin.CreateBucketAsync("data");

        ChainInfo before = await probe.ChainAsync(0);
        Assert.Equal(3, before.Nodes.Count);
        Assert.Empty(before.Syncing);
        string headId = before.Nodes[0];
        int headIndex = probe.IndexOf(headId);
        int[] others = before.Nodes.Skip(1).Select(probe.IndexOf).ToArray();

        // ~100 acknowledged objects of varied sizes (two of several chunks), a few of them overwritten.
        var acknowledged = new ConcurrentDictionary<string, byte[]>();
        await Parallel.ForEachAsync(Enumerable.Range(0, Objects), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
        {
            string key = $"obj/{i:D3}";
            byte[] value = TestData.Content(seed * 31 + i, SizeOf(i));
            await admin.PutAsync("data", key, value, cancellationToken: ct);
            acknowledged[key] = value;
        });
        for (int i = 0; i < 10; i++)
        {
            string key = $"obj/{i * 7:D3}";
            byte[] value = TestData.Content(seed * 31 + 10_000 + i, 100 + i * 13);
            await admin.PutAsync("data", key, value);
            acknowledged[key] = value;
        }
        Assert.Equal(Objects, acknowledged.Count);

        await using var monitor = ChainMonitor.Start(Cluster, 0);
        string Context() => $"seed {seed}, head {headId}, before the kill [{string.Join(",", before.Nodes)}] at epoch {before.Epoch}\n{monitor.History()}";

        // SIGKILL all three at once.
        await Task.WhenAll(Enumerable.Range(0, Cluster.Nodes.Count).Select(Cluster.KillNodeAsync));

        ChainInfo? lost = null;
        await ClusterWait.UntilAsync(async () =>
        {
            ChainInfo? chain = await probe.TryChainAsync(0);
            if (chain is null)
                return false;
            Assert.True(chain.Nodes.Count > 0, $"the master emptied chain 0 (epoch {chain.Epoch})\n{Context()}");
            Assert.False(chain.Nodes.Count == 1 && chain.Nodes[0] != headId,
                $"with every node down the master kept [{chain.Nodes[0]}] (epoch {chain.Epoch}), not the head {headId}\n{Context()}");
            if (chain.Nodes.Count == 1 && chain.Nodes[0] == headId)
                lost = chain;
            return lost is not null;
        }, TimeSpan.FromSeconds(30), () => probe.DescribeAsync($"the master to shrink chain 0 to its head [{headId}]\n{Context()}"));
        Assert.True(lost!.Epoch > before.Epoch, $"epoch {lost.Epoch} after the loss, {before.Epoch} before\n{Context()}");
        Assert.Empty(lost.Syncing);

        // From now until the head restarts, the chain must stay exactly [head].
        monitor.Invariant = chain => chain.Nodes.Count == 1 && chain.Nodes[0] == headId && chain.Syncing.Count == 0
            ? null
            : $"chain 0 changed while its head {headId} was down";

        // The two other nodes come back first, in a random order; wait until the master sees them alive.
        int[] order = others.OrderBy(_ => random.Next()).ToArray();
        foreach (int index in order)
            await Cluster.StartNodeAsync(index);
        string[] restartedIds = order.Select(i => Cluster.Nodes[i].Id).ToArray();
        _output.WriteLine($"restarted {string.Join(", then ", restartedIds)} before the head {headId}");
        await ClusterWait.UntilAsync(async () =>
        {
            ClusterConfig config = await probe.ConfigAsync();
            return restartedIds.All(id => config.Nodes.Any(n => n.Node.NodeId == id && n.Alive));
        }, TimeSpan.FromSeconds(20), () => probe.DescribeAsync($"the master to see {string.Join(" and ", restartedIds)} alive again\n{Context()}"));

        // For 5 s: reads and writes fail (the client gives up within its 2 s budget) and the chain stays [head].
        using ChainClient impatient = Cluster.CreateClient(o => o with
        {
            OperationTimeout = TimeSpan.FromSeconds(2),
            AttemptTimeout = TimeSpan.FromSeconds(1),
        });
        string[] keys = acknowledged.Keys.Order(StringComparer.Ordinal).ToArray();
        var served = new List<string>();
        int refusedReads = 0, refusedWrites = 0;
        var window = Stopwatch.StartNew();
        for (int round = 0; round < 50 && window.Elapsed < TimeSpan.FromSeconds(5); round++)
        {
            string key = keys[random.Next(keys.Length)];
            Task<string?> read = RefusedAsync($"get data/{key}", async () =>
            {
                byte[] value = await impatient.GetBytesAsync("data", key);
                return $"{value.Length} bytes";
            });
            Task<string?> write = RefusedAsync($"put data/unavailable/{round}", async () =>
            {
                PutResult result = await impatient.PutAsync("data", $"unavailable/{round}", Encoding.UTF8.GetBytes($"round {round}"));
                return $"version {result.Version}";
            });
            if (await read is { } readServed)
                served.Add(readServed);
            else
                refusedReads++;
            if (await write is { } writeServed)
                served.Add(writeServed);
            else
                refusedWrites++;

            ChainInfo chain = await probe.ChainAsync(0);
            Assert.True(chain.Nodes.Count == 1 && chain.Nodes[0] == headId && chain.Syncing.Count == 0,
                $"chain 0 is [{string.Join(",", chain.Nodes)}] syncing [{string.Join(",", chain.Syncing)}] at epoch {chain.Epoch} " +
                $"with its head {headId} down, after {window.Elapsed.TotalSeconds:0.0} s\n{Context()}");
        }
        Assert.True(served.Count == 0,
            $"the chain served without its head {headId} ({refusedReads} reads and {refusedWrites} writes refused):\n" +
            $"{string.Join("\n", served)}\n{Context()}");
        Assert.True(refusedReads > 0 && refusedWrites > 0, $"no operation was tried ({refusedReads} reads, {refusedWrites} writes)");
        Assert.True(monitor.Violations.IsEmpty, $"{string.Join("\n", monitor.Violations)}\n{Context()}");
        monitor.Invariant = null;

        // The head comes back: the others are re-added through sync.
        await Cluster.StartNodeAsync(headIndex);
        ChainInfo? healed = null;
        await ClusterWait.UntilAsync(async () =>
        {
            ChainInfo? chain = await probe.TryChainAsync(0);
            if (chain is { Nodes.Count: 3, Syncing.Count: 0 })
                healed = chain;
            return healed is not null;
        }, TimeSpan.FromSeconds(60), () => probe.DescribeAsync($"chain 0 to be back to 3 nodes with nothing syncing after the head {headId} restarted\n{Context()}"));
        Assert.True(healed!.Epoch > lost.Epoch, $"epoch {healed.Epoch} after the recovery, {lost.Epoch} with the head alone\n{Context()}");
        Assert.Equal(headId, healed.Nodes[0]);
        Assert.Equal(Cluster.Nodes.Select(n => n.Id).Order(StringComparer.Ordinal), healed.Nodes.Order(StringComparer.Ordinal));

        foreach (var (key, value) in acknowledged)
        {
            byte[] read = await admin.GetBytesAsync("data", key);
            Assert.True(read.AsSpan().SequenceEqual(value),
                $"data/{key}: read {read.Length} bytes sha256 {TestData.Hex(read)}, acknowledged {value.Length} bytes sha256 {TestData.Hex(value)} (seed {seed})");
        }
        // And the chain takes writes again.
        byte[] after = TestData.Content(seed, 4321);
        await admin.PutAsync("data", "after/recovery", after);
        Assert.Equal(after, await admin.GetBytesAsync("data", "after/recovery"));

        ChainInfo final = await probe.ChainAsync(0);
        Assert.Equal(healed.Nodes, final.Nodes);
        await probe.AssertReplicasIdenticalAsync(0, final.Nodes.ToList(), TimeSpan.FromSeconds(30), null);
    }

    /// <summary>
    /// Null when the operation failed as it must on an unavailable chain (a <see cref="ChainException"/> other than a
    /// not-found answer, within a bound); otherwise what was served or thrown instead.
    /// </summary>
    private static async Task<string?> RefusedAsync(string what, Func<Task<string>> operation)
    {
        Task<string> task = operation();
        try
        {
            string result = await task.WaitAsync(TimeSpan.FromSeconds(15));
            return $"{what}: served ({result})";
        }
        catch (TimeoutException) when (!task.IsCompleted)
        {
            return $"{what}: still running after 15 s despite a 2 s operation timeout";
        }
        catch (ObjectNotFoundException e)
        {
            return $"{what}: answered not found ({e.Message})";
        }
        catch (BucketNotFoundException e)
        {
            return $"{what}: answered bucket not found ({e.Message})";
        }
        catch (ChainException)
        {
            return null;
        }
        catch (Exception e)
        {
            return $"{what}: threw {e.GetType().FullName} (not a ChainException): {e.Message}";
        }
    }

    /// <summary>Varied sizes: empty, small, around the chunk boundary, two of several chunks.</summary>
    private static int SizeOf(int i) => i switch
    {
        0 => 0,
        11 => 2 * Limits.StreamFrameBytes + 777,
        42 => 3 * Limits.StreamFrameBytes,
        17 => Limits.StreamFrameBytes - 1,
        23 => Limits.StreamFrameBytes,
        29 => Limits.StreamFrameBytes + 1,
        _ when i % 10 == 5 => 64 * 1024 + i * 97,
        _ => 1 + i * 7919 % 8192,
    };

}

/// <summary>
/// The master SIGKILLed right after it reconfigured a chain (a member SIGKILLed under concurrent writes), then
/// restarted: it reloads the reconfiguration from disk, removes no live node (it waits one failure timeout before
/// ejecting anyone), and — with the killed node restarted — the chain is full length again while writes continue.
/// No stale read, no acknowledged write lost, all replicas identical.
/// </summary>
[Trait("Category", "Integration")]
[Collection(RecoveryCollection.Name)]
public sealed class MasterRestartTests : LocalClusterTest
{
    private readonly ITestOutputHelper _output;

    public MasterRestartTests(ITestOutputHelper output) : base("masterrestart") => _output = output;

    protected override LocalClusterOptions Options(string dataDirectory) =>
        new() { Nodes = 3, Chains = 1, Replicas = 3, DataDirectory = dataDirectory, FailureTimeout = TimeSpan.FromSeconds(3) };

    public enum Victim { Head, Middle, Tail }

    [Theory]
    [InlineData(Victim.Head)]
    [InlineData(Victim.Middle)]
    [InlineData(Victim.Tail)]
    public async Task Master_killed_right_after_a_reconfiguration_restarts_from_disk_and_the_chain_heals_under_load(Victim victim)
    {
        using var probe = new ClusterProbe(Cluster);
        using ChainClient admin = Cluster.CreateClient();
        await admin.CreateBucketAsync("load");

        ChainInfo before = await probe.ChainAsync(0);
        Assert.Equal(3, before.Nodes.Count);
        Assert.Empty(before.Syncing);
        string victimId = before.Nodes[(int)victim];
        int victimIndex = probe.IndexOf(victimId);
        string[] survivors = before.Nodes.Where(id => id != victimId).ToArray();

        // The survivors are alive throughout: no config may ever drop one of them.
        await using var monitor = ChainMonitor.Start(Cluster, 0);
        monitor.Invariant = chain => survivors.All(chain.Nodes.Contains) ? null : $"a live node ({string.Join(",", survivors)}) was removed";
        string Context() => $"victim {victim} {victimId}, before the kill [{string.Join(",", before.Nodes)}] at epoch {before.Epoch}\n{monitor.History()}";

        await using var load = WriteLoad.Start(Cluster, "load", maxWritesPerWriter: 200_000, maxDuration: TimeSpan.FromSeconds(170));
        await load.WaitForWritesAsync(40, TimeSpan.FromSeconds(30), probe, "writes before the kill");

        await Cluster.KillNodeAsync(victimIndex);
        long atKill = load.Writes;
        ChainInfo? reconfigured = null;
        await ClusterWait.UntilAsync(async () =>
        {
            load.ThrowIfFailed();
            ChainInfo? chain = await probe.TryChainAsync(0);
            if (chain is not null && (!chain.Nodes.Contains(victimId) || chain.Syncing.Count > 0))
                reconfigured = chain;
            return reconfigured is not null;
        }, TimeSpan.FromSeconds(30), () => probe.DescribeAsync($"the master to reconfigure chain 0 after the kill of {victimId}\n{Context()}", load));

        // At once: SIGKILL the master, start it again.
        await Cluster.KillMasterAsync();
        long atMasterKill = load.Writes;
        var masterDown = Stopwatch.StartNew();
        await Cluster.StartMasterAsync();
        _output.WriteLine($"{victimId} killed at {atKill} writes; master saw [{string.Join(",", reconfigured!.Nodes)}] syncing " +
            $"[{string.Join(",", reconfigured.Syncing)}] at epoch {reconfigured.Epoch}, killed at {atMasterKill} writes, back after {masterDown.ElapsedMilliseconds} ms");

        // It reloaded the reconfiguration from disk.
        ChainInfo? reloaded = null;
        await ClusterWait.UntilAsync(async () => (reloaded = await probe.TryChainAsync(0)) is not null, TimeSpan.FromSeconds(20),
            () => probe.DescribeAsync($"the restarted master to answer\n{Context()}", load));
        Assert.True(reloaded!.Epoch >= reconfigured.Epoch,
            $"the restarted master has chain 0 at epoch {reloaded.Epoch}, it had {reconfigured.Epoch} before its kill\n{Context()}");
        Assert.DoesNotContain(victimId, reloaded.Nodes);
        Assert.Equal(survivors, reloaded.Nodes.ToArray());

        // Writes go on through the restarted master; then the killed node comes back and rejoins.
        await load.WaitForWritesAsync(load.Writes + 40, TimeSpan.FromSeconds(30), probe, $"writes after the master restarted\n{Context()}");
        await Cluster.StartNodeAsync(victimIndex);
        long atRestart = load.Writes;
        ChainInfo? healed = null;
        await ClusterWait.UntilAsync(async () =>
        {
            load.ThrowIfFailed();
            ChainInfo? chain = await probe.TryChainAsync(0);
            if (chain is { Nodes.Count: 3, Syncing.Count: 0 } && chain.Nodes.Contains(victimId))
                healed = chain;
            return healed is not null;
        }, TimeSpan.FromSeconds(90), () => probe.DescribeAsync(
            $"chain 0 to be full length again with {victimId} ({atRestart} writes acknowledged at its restart)\n{Context()}", load));
        long atHealed = load.Writes;

        await load.WaitForWritesAsync(atHealed + 40, TimeSpan.FromSeconds(30), probe, $"writes after the chain healed ({atHealed} then)\n{Context()}");
        await load.StopAsync();

        Assert.Empty(load.StaleReads);
        Assert.True(monitor.Violations.IsEmpty, string.Join("\n", monitor.Violations) + "\n" + Context());
        Assert.True(healed!.Epoch > reloaded.Epoch, $"epoch {healed.Epoch} after the rejoin, {reloaded.Epoch} after the master restart\n{Context()}");
        Assert.Equal(survivors.Append(victimId).ToArray(), healed.Nodes.ToArray());
        ChainInfo after = await probe.ChainAsync(0);
        Assert.Equal(healed.Nodes, after.Nodes);
        Assert.Empty(after.Syncing);

        foreach (var (key, value) in load.Acknowledged)
            Assert.Equal(value, await admin.GetBytesAsync("load", key));

        await probe.AssertReplicasIdenticalAsync(0, after.Nodes.ToList(), TimeSpan.FromSeconds(30), load);
    }
}

/// <summary>The recovery tests run one after the other: each runs a whole cluster and relies on its timing.</summary>
[CollectionDefinition(Name)]
public sealed class RecoveryCollection
{
    public const string Name = "Recovery";
}

/// <summary>The seed of a test's random choices: CHAIN_TEST_SEED when set, else a fresh one.</summary>
internal static class RecoverySeed
{
    public static int Next() =>
        int.TryParse(Environment.GetEnvironmentVariable("CHAIN_TEST_SEED"), NumberStyles.Integer, CultureInfo.InvariantCulture, out int seed)
            ? seed
            : Random.Shared.Next();
}

/// <summary>
/// Polls the master's view of one chain in the background (every 20 ms) and records each change, with the time since
/// it started, for failure messages; flags every state an optional invariant rejects.
/// </summary>
internal sealed class ChainMonitor : IAsyncDisposable
{
    private readonly ClusterProbe _probe;
    private readonly uint _chainId;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ConcurrentQueue<string> _history = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _polling;
    private string? _last;
    private volatile Func<ChainInfo, string?>? _invariant;

    private ChainMonitor(LocalCluster cluster, uint chainId)
    {
        _probe = new ClusterProbe(cluster);
        _chainId = chainId;
        _polling = Task.Run(PollAsync);
    }

    /// <summary>Returns null for an allowed state, else why it is not; checked against every state seen while set.</summary>
    public Func<ChainInfo, string?>? Invariant
    {
        get => _invariant;
        set => _invariant = value;
    }

    public ConcurrentQueue<string> Violations { get; } = new();

    public static ChainMonitor Start(LocalCluster cluster, uint chainId) => new(cluster, chainId);

    public string History() => $"chain {_chainId} as the master showed it (seconds since the monitor started):\n  " +
        string.Join("\n  ", _history) + (Violations.IsEmpty ? "" : "\nviolations:\n  " + string.Join("\n  ", Violations));

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _polling;
        _probe.Dispose();
        _stop.Dispose();
    }

    private async Task PollAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            string state;
            Func<ChainInfo, string?>? invariant = _invariant;
            try
            {
                ChainInfo chain = await _probe.ChainAsync(_chainId);
                state = $"epoch {chain.Epoch}: [{string.Join(",", chain.Nodes)}] syncing [{string.Join(",", chain.Syncing)}]";
                if (invariant?.Invoke(chain) is { } violation)
                    Violations.Enqueue($"{Seconds()} {violation}: {state}");
            }
            catch (Exception e) when (e is not OperationCanceledException || !_stop.IsCancellationRequested)
            {
                state = $"master did not answer ({e.GetType().Name})";
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (state != _last)
            {
                _history.Enqueue($"{Seconds()} {state}");
                _last = state;
            }
            try
            {
                await Task.Delay(20, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private string Seconds() => _clock.Elapsed.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture);
}
