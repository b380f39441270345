using System.Net;
using System.Text;
using Chain.Client;
using Chain.Harness;
using Chain.Harness.Faults;
using Chain.Protocol.V1;
using Xunit.Abstractions;

namespace Chain.Integration.Tests;

/// <summary>
/// The fault injectors of the consistency harness against real processes. These need root (namespaces, iptables,
/// tmpfs): as any other user they fail with a message saying so (CI runs as root; a silent pass would hide a lost fault).
/// </summary>
[Trait("Category", "Integration")]
public sealed class NemesisTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(45);
    private const int FullDiskPutsMax = 160;
    private const int CorruptReadsMax = 8;

    private readonly string _root = Path.Combine(Path.GetTempPath(), "chain-nemesis-" + Guid.NewGuid().ToString("N"));
    private readonly List<IAsyncDisposable> _owned = new();
    private readonly ITestOutputHelper _output;

    public NemesisTests(ITestOutputHelper output) => _output = output;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
            await _owned[i].DisposeAsync();
        if (Environment.GetEnvironmentVariable("CHAIN_KEEP_TEST_DATA") == "1")
            return;
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Isolating_a_node_cuts_it_from_its_peers_but_not_from_clients_and_heal_restores_it()
    {
        LocalCluster cluster = await StartAsync(new LocalClusterOptions { Nodes = 3, Chains = 1, DataDirectory = "", Network = ClusterNetwork.Namespaces });
        NamespaceNetwork network = cluster.Network!;
        NetworkNemesis nemesis = Own(new NetworkNemesis(cluster));
        var victim = new IPEndPoint(network.AddressOf(2), LocalCluster.NamespacePort); // node index 1 = process 2

        // The server pid is the server itself, not an `ip netns exec` wrapper: it runs dotnet in the victim's namespace.
        int pid = cluster.Nodes[1].Pid;
        Assert.Equal("dotnet", File.ReadAllText($"/proc/{pid}/comm").Trim());
        Assert.Equal(network.NamespaceOf(2), (await Shell("ip", "netns", "identify", pid.ToString(System.Globalization.CultureInfo.InvariantCulture))).Trim());

        Assert.True(await network.CanConnectAsync(1, victim, TimeSpan.FromSeconds(2)), "node1 cannot reach node2 before the fault");
        var fault = new Fault(FaultKind.IsolateNode, 1, TimeSpan.FromSeconds(5));
        string what = await nemesis.InjectAsync(fault, CancellationToken.None);
        Assert.Contains("node2", what, StringComparison.Ordinal);

        Assert.False(await network.CanConnectAsync(1, victim, TimeSpan.FromSeconds(1)), "node1 still reaches the isolated node2");
        Assert.False(await network.CanConnectAsync(0, victim, TimeSpan.FromSeconds(1)), "the master still reaches the isolated node2");
        Assert.True(await nemesis.DroppedPacketsAsync(2) > 0, "no packet hit node2's DROP rules");
        using (var probe = new ClusterProbe(cluster))
        {
            // The harness (root namespace, where clients run) still reaches the victim directly.
            using (var tcp = new System.Net.Sockets.TcpClient())
            {
                using var connectTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await tcp.ConnectAsync(victim, connectTimeout.Token);
            }
            // Its heartbeats no longer arrive: the master declares it dead.
            await ClusterWait.UntilAsync(async () => (await probe.ConfigAsync()).Nodes.Single(n => n.Node.NodeId == "node2").Alive == false,
                Bound, () => probe.DescribeAsync("the master to see the isolated node2 dead"));
        }

        await nemesis.HealAsync(fault, CancellationToken.None);
        Assert.Empty(nemesis.ActiveRules);
        string rules = await network.IptablesAsync(2, new[] { "-S" });
        Assert.DoesNotContain(NetworkNemesis.RuleComment, rules, StringComparison.Ordinal);
        Assert.True(await network.CanConnectAsync(1, victim, TimeSpan.FromSeconds(2)), "node1 cannot reach node2 after heal");
        await cluster.WaitUntilHealthyAsync(Bound);
    }

    [Fact]
    public async Task Partitions_bridges_one_way_cuts_and_master_isolation_cut_exactly_the_links_they_describe()
    {
        LocalCluster cluster = await StartAsync(new LocalClusterOptions { Nodes = 3, Chains = 1, DataDirectory = "", Network = ClusterNetwork.Namespaces });
        NamespaceNetwork network = cluster.Network!;
        NetworkNemesis nemesis = Own(new NetworkNemesis(cluster));
        var faults = new[]
        {
            new Fault(FaultKind.PartitionHalves, 11, TimeSpan.FromSeconds(5)),
            new Fault(FaultKind.Bridge, 12, TimeSpan.FromSeconds(5)),
            new Fault(FaultKind.OneWay, 13, TimeSpan.FromSeconds(5)),
            new Fault(FaultKind.IsolateMaster, 0, TimeSpan.FromSeconds(5)),
        };
        foreach (Fault fault in faults)
        {
            string what = await nemesis.InjectAsync(fault, CancellationToken.None);
            _output.WriteLine(what);
            Func<int, int, bool> expected = ExpectedLinks(what);
            var wrong = new List<string>();
            for (int from = 0; from < network.Processes; from++)
            {
                for (int to = 0; to < network.Processes; to++)
                {
                    if (from == to)
                        continue;
                    bool connects = await network.CanConnectAsync(from, new IPEndPoint(network.AddressOf(to), LocalCluster.NamespacePort), TimeSpan.FromMilliseconds(700));
                    if (connects != expected(from, to))
                        wrong.Add($"p{from}->p{to}: {(connects ? "connects" : "cut")}");
                }
            }
            await nemesis.HealAsync(fault, CancellationToken.None);
            Assert.True(wrong.Count == 0, $"{fault} ({what}): {string.Join(", ", wrong)}");
            Assert.Empty(nemesis.ActiveRules);
        }
        for (int k = 0; k < network.Processes; k++)
            Assert.DoesNotContain(NetworkNemesis.RuleComment, await network.IptablesAsync(k, new[] { "-S" }), StringComparison.Ordinal);
        await cluster.WaitUntilHealthyAsync(Bound);
    }

    /// <summary>Which TCP connections should work, from the nemesis's own description (a TCP connect needs both directions).</summary>
    private static Func<int, int, bool> ExpectedLinks(string what)
    {
        static int Index(string name) => name == "master" ? 0 : int.Parse(name["node".Length..], System.Globalization.CultureInfo.InvariantCulture);
        static int[] Set(string text) => text.Trim('{', '}', ' ').Split(',').Select(Index).ToArray();
        var halves = System.Text.RegularExpressions.Regex.Match(what, @"^partitioned (\{[^}]*\}) \| (\{[^}]*\})(, bridged by (\w+))?");
        if (halves.Success)
        {
            int[] left = Set(halves.Groups[1].Value);
            int[] right = Set(halves.Groups[2].Value);
            return (a, b) => !(left.Contains(a) && right.Contains(b) || right.Contains(a) && left.Contains(b));
        }
        var oneWay = System.Text.RegularExpressions.Regex.Match(what, @"^dropped packets from (\w+) to (\w+) \(one way\)");
        if (oneWay.Success)
        {
            int x = Index(oneWay.Groups[1].Value);
            int y = Index(oneWay.Groups[2].Value);
            return (a, b) => !(a == x && b == y || a == y && b == x);
        }
        if (what.StartsWith("isolated the master", StringComparison.Ordinal))
            return (a, b) => a != 0 && b != 0;
        throw new InvalidOperationException($"unexpected description '{what}'");
    }

    [Fact]
    public async Task Without_namespaces_the_proxy_network_isolates_a_node_and_heal_restores_it()
    {
        // A longer failure timeout than elsewhere: the proxies run in this process and share its two cores.
        LocalCluster cluster = await StartAsync(new LocalClusterOptions
        {
            Nodes = 3,
            Chains = 1,
            DataDirectory = "",
            Network = ClusterNetwork.Proxies,
            FailureTimeout = TimeSpan.FromSeconds(4),
        });
        ProxyNetwork proxies = cluster.Proxies!;
        NetworkNemesis nemesis = Own(new NetworkNemesis(cluster));
        using var probe = new ClusterProbe(cluster);
        // Processes advertise the proxies' ports, so node-to-node and node-to-master traffic passes through them.
        Assert.All((await probe.ConfigAsync()).Nodes, n => Assert.Contains(n.Node.Address, Enumerable.Range(1, 3).Select(k => $"http://127.0.0.1:{proxies.ProxyPort(k)}")));

        await ClusterWait.UntilAsync(async () => (await Node3AnswersAsync(probe)).Contains("node3", StringComparison.Ordinal),
            Bound, () => probe.DescribeAsync("node3 to answer the harness through its proxy"));
        var fault = new Fault(FaultKind.IsolateNode, 2, TimeSpan.FromSeconds(5));
        _output.WriteLine(await nemesis.InjectAsync(fault, CancellationToken.None));
        Assert.True(proxies.IsBlocked(3, 0) && proxies.IsBlocked(0, 3) && proxies.IsBlocked(1, 3) && proxies.IsBlocked(3, 2));
        Assert.False(proxies.IsBlocked(1, 2));
        await ClusterWait.UntilAsync(async () => (await probe.ConfigAsync()).Nodes.Single(n => n.Node.NodeId == "node3").Alive == false,
            Bound, () => probe.DescribeAsync("the master to see node3, cut off behind its proxy, dead"));
        Assert.True(await nemesis.DroppedPacketsAsync(3) > 0, "the proxies held nothing back");
        // The harness's own connections are never cut: node3 still answers it.
        // The harness's own connections are never cut: node3 still answers it ("node node3 has no replica of chain 0"
        // once the master has removed it is an answer too).
        await ClusterWait.UntilAsync(async () => (await Node3AnswersAsync(probe)).Contains("node3", StringComparison.Ordinal),
            Bound, () => probe.DescribeAsync("the isolated node3 to answer the harness"));

        await nemesis.HealAsync(fault, CancellationToken.None);
        Assert.False(proxies.IsBlocked(3, 0) || proxies.IsBlocked(0, 3));
        await cluster.WaitUntilHealthyAsync(Bound);
        using ChainClient client = cluster.CreateClient();
        await client.CreateBucketAsync("proxied");
        await client.PutAsync("proxied", "k", Bytes("v"));
        Assert.Equal(Bytes("v"), await client.GetBytesAsync("proxied", "k"));
    }

    [Fact]
    public async Task Isolating_the_tail_reconfigures_the_chain_and_writes_continue()
    {
        LocalCluster cluster = await StartAsync(new LocalClusterOptions { Nodes = 3, Chains = 1, DataDirectory = "", Network = ClusterNetwork.Namespaces });
        NetworkNemesis nemesis = Own(new NetworkNemesis(cluster));
        using var probe = new ClusterProbe(cluster);
        using ChainClient admin = cluster.CreateClient();
        await admin.CreateBucketAsync("load");

        await using var load = WriteLoad.Start(cluster, "load", writers: 3);
        await load.WaitForWritesAsync(30, Bound, probe, "writes before the fault");
        // Twice: the second time the victim is the node that rejoined (synced, then promoted to tail) after the first heal.
        for (int round = 0; round < 2; round++)
        {
            var fault = new Fault(FaultKind.IsolateTail, 0, TimeSpan.FromSeconds(10));
            string what = await nemesis.InjectAsync(fault, CancellationToken.None);
            _output.WriteLine(what);
            // "isolated nodeK, tail of chain 0 (...)": the tail as the nemesis read it from the master at injection time.
            string tail = System.Text.RegularExpressions.Regex.Match(what, @"^isolated (node\d+), tail of chain 0").Groups[1].Value;
            Assert.NotEqual("", tail);

            await ClusterWait.UntilAsync(async () => (await probe.TryChainAsync(0)) is { } chain && !chain.Nodes.Contains(tail),
                Bound, () => probe.DescribeAsync($"the master to remove the isolated tail {tail}", load));
            long atReconfiguration = load.Writes;
            await load.WaitForWritesAsync(atReconfiguration + 30, Bound, probe, "writes after the tail was removed");

            await nemesis.HealAsync(fault, CancellationToken.None);
            await ClusterWait.UntilAsync(async () => (await probe.TryChainAsync(0)) is { } chain && chain.Nodes.Count == 3,
                Bound, () => probe.DescribeAsync($"{tail} to rejoin the chain after heal", load));
            await load.WaitForWritesAsync(load.Writes + 30, Bound, probe, "writes after the heal");
        }
        await load.StopAsync();

        foreach (string stale in load.StaleReads)
            _output.WriteLine("stale read: " + stale);
        Assert.Empty(load.StaleReads);
        foreach (var (key, value) in load.Acknowledged)
            Assert.Equal(value, await admin.GetBytesAsync("load", key));
        ChainInfo final = await probe.ChainAsync(0);
        await probe.AssertReplicasIdenticalAsync(0, final.Nodes, Bound, null);
    }

    [Fact]
    public async Task Disk_full_fails_writes_without_acknowledging_them_and_writes_recover_after_heal()
    {
        LocalCluster cluster = await StartAsync(new LocalClusterOptions { Nodes = 3, Chains = 1, DataDirectory = "", NodeDataTmpfsBytes = 384L << 20 });
        DiskNemesis nemesis = Own(new DiskNemesis(cluster));
        using var probe = new ClusterProbe(cluster);
        using ChainClient admin = cluster.CreateClient();
        await admin.CreateBucketAsync("disk");
        await admin.PutAsync("disk", "before", Bytes("before"));
        string head = (await probe.ChainAsync(0)).Nodes[0];
        int headIndex = probe.IndexOf(head);

        var fault = new Fault(FaultKind.DiskFull, headIndex, TimeSpan.FromSeconds(10));
        _output.WriteLine(await nemesis.InjectAsync(fault, CancellationToken.None));
        Assert.True(new DriveInfo(cluster.Nodes[headIndex].DataDirectory).AvailableFreeSpace < 64 * 1024, "the head's tmpfs is not full");

        // RocksDB preallocated its WAL (about 1.1 x the 64 MiB write buffer) before the disk filled up: writes that fit
        // in it are durable and acknowledged. Write 1 MiB objects until one fails; every acknowledged one must survive.
        // Distinct contents: chunks are content-addressed, a repeated one would not be written again.
        var acknowledged = new List<string>();
        Exception? failure = null;
        using (ChainClient impatient = cluster.CreateClient(o => o with { OperationTimeout = TimeSpan.FromSeconds(4), AttemptTimeout = TimeSpan.FromSeconds(2) }))
        {
            // Until a put fails or the head dies (then the client fails over to the next head, which has space).
            for (int i = 0; i < FullDiskPutsMax && failure is null && cluster.Nodes[headIndex].IsRunning; i++)
            {
                try
                {
                    await impatient.PutAsync("disk", $"big{i}", TestData.Content(i, 1 << 20));
                    acknowledged.Add($"big{i}");
                }
                catch (ChainException e)
                {
                    failure = e;
                }
            }
        }
        Assert.True(failure is not null || !cluster.Nodes[headIndex].IsRunning,
            $"{FullDiskPutsMax} puts of 1 MiB were all acknowledged by a head with a full disk, and it is still running");
        _output.WriteLine($"{acknowledged.Count} puts of 1 MiB acknowledged on the full disk, then: " +
            (failure is null ? $"{head} exited" : $"{failure.GetType().Name}: {failure.Message}"));
        _output.WriteLine($"{head} stderr: " + string.Join("\n  ", cluster.Nodes[headIndex].StderrTail().Where(l => l.Contains("space", StringComparison.OrdinalIgnoreCase)).Take(3)));
        // Finding (docs/nemeses.md): Debian's librocksdb keeps its assertions, and the first failed WAL append aborts the
        // process (WritableFileWriter: sync_without_flush_called_), so the head dies rather than retrying the write.
        _output.WriteLine($"{head} running after ENOSPC: {cluster.Nodes[headIndex].IsRunning}; last stderr: {cluster.Nodes[headIndex].StderrTail().LastOrDefault()}");
        Assert.Equal(Bytes("before"), await admin.GetBytesAsync("disk", "before"));

        await nemesis.HealAsync(fault, CancellationToken.None);
        Assert.Empty(nemesis.FilledNodes);
        var healed = System.Diagnostics.Stopwatch.StartNew();
        await admin.PutAsync("disk", "after", Bytes("after"));
        _output.WriteLine($"first put after heal acknowledged after {healed.ElapsedMilliseconds} ms; {head} pid {cluster.Nodes[headIndex].Pid} running {cluster.Nodes[headIndex].IsRunning}");
        for (int i = 0; i < acknowledged.Count; i++)
            Assert.Equal(TestData.Content(i, 1 << 20), await admin.GetBytesAsync("disk", acknowledged[i]));
        Assert.Equal(Bytes("after"), await admin.GetBytesAsync("disk", "after"));
        await cluster.WaitUntilHealthyAsync(Bound);
        await ClusterWait.UntilAsync(async () => (await probe.TryChainAsync(0)) is { } chain && chain.Nodes.Count == 3,
            Bound, () => probe.DescribeAsync($"the chain to have three members again after the heal of {head}"));
        await probe.AssertReplicasIdenticalAsync(0, (await probe.ChainAsync(0)).Nodes, Bound, null);
    }

    [Theory]
    [InlineData(CorruptionMode.FlipSst)]
    [InlineData(CorruptionMode.FlipWal)]
    [InlineData(CorruptionMode.TruncateWal)]
    public async Task A_corrupted_replica_is_healed_by_wiping_the_node_and_resyncing_it(CorruptionMode mode)
    {
        LocalCluster cluster = await StartAsync(new LocalClusterOptions { Nodes = 3, Chains = 1, DataDirectory = "" });
        CorruptNemesis nemesis = Own(new CorruptNemesis(cluster, mode));
        using var probe = new ClusterProbe(cluster);
        using ChainClient admin = cluster.CreateClient();
        await admin.CreateBucketAsync("data");
        var written = new Dictionary<string, byte[]>();
        for (int i = 0; i < 60; i++)
        {
            byte[] value = TestData.Content(i, 2000 + i * 331);
            await admin.PutAsync("data", $"k{i}", value);
            written[$"k{i}"] = value;
        }
        string tail = (await probe.ChainAsync(0)).Nodes[^1];
        int tailIndex = probe.IndexOf(tail);

        var fault = new Fault(FaultKind.Corrupt, tailIndex, TimeSpan.FromSeconds(10));
        _output.WriteLine(await nemesis.InjectAsync(fault, CancellationToken.None));
        // What the damaged node does with reads: an error is fine, bytes that differ from what was written are not.
        int errors = 0;
        using (ChainClient reader = cluster.CreateClient(o => o with { OperationTimeout = TimeSpan.FromSeconds(3), AttemptTimeout = TimeSpan.FromSeconds(1) }))
        {
            foreach (var (key, value) in written.Take(CorruptReadsMax))
            {
                try
                {
                    Assert.Equal(value, await reader.GetBytesAsync("data", key));
                }
                catch (ChainException e)
                {
                    errors++;
                    if (errors == 1)
                        _output.WriteLine($"first read error after the corruption: {e.GetType().Name}: {e.Message}");
                }
            }
        }
        _output.WriteLine($"reads after the corruption: {Math.Min(CorruptReadsMax, written.Count) - errors} correct, {errors} errors; {tail} running: {cluster.Nodes[tailIndex].IsRunning}");
        _output.WriteLine(await probe.DescribeAsync("after the corruption"));
        _output.WriteLine($"{tail} stderr: " + string.Join("\n  ", cluster.Nodes[tailIndex].StderrTail().Where(l => l.Contains("orrupt", StringComparison.Ordinal) || l.Contains("rror", StringComparison.Ordinal)).Take(5)));

        await nemesis.HealAsync(fault, CancellationToken.None);
        await cluster.WaitUntilHealthyAsync(Bound);
        await ClusterWait.UntilAsync(async () => (await probe.TryChainAsync(0)) is { } chain && chain.Nodes.Count == 3 && chain.Nodes.Contains(tail),
            Bound, () => probe.DescribeAsync($"the wiped {tail} to rejoin the chain"));
        await probe.AssertReplicasIdenticalAsync(0, (await probe.ChainAsync(0)).Nodes, Bound, null);
        foreach (var (key, value) in written)
            Assert.Equal(value, await admin.GetBytesAsync("data", key));
    }

    [Fact]
    public async Task Clock_offsets_on_the_master_and_the_nodes_change_wall_time_only_and_the_cluster_keeps_working()
    {
        LocalCluster cluster = await StartAsync(new LocalClusterOptions { Nodes = 3, Chains = 1, DataDirectory = "" });
        ClockNemesis ahead = Own(new ClockNemesis(cluster, TimeSpan.FromHours(2)));
        ClockNemesis behind = Own(new ClockNemesis(cluster, TimeSpan.FromHours(-3)));
        using var probe = new ClusterProbe(cluster);
        var masterFault = new Fault(FaultKind.ClockOffset, cluster.Nodes.Count, TimeSpan.FromSeconds(10));
        _output.WriteLine(await ahead.InjectAsync(masterFault, CancellationToken.None));
        // Every node behind (restarts reshuffle the chain, so whichever node is head then has a skewed clock).
        for (int i = 0; i < cluster.Nodes.Count; i++)
            _output.WriteLine(await behind.InjectAsync(new Fault(FaultKind.ClockOffset, i, TimeSpan.FromSeconds(10)), CancellationToken.None));
        Assert.Contains("--clock-offset-ms 7200000", cluster.Master.CommandLine, StringComparison.Ordinal);
        await cluster.WaitUntilHealthyAsync(Bound);

        using ChainClient client = cluster.CreateClient();
        await client.CreateBucketAsync("skew");
        Chain.Client.BucketInfo bucket = (await client.ListBucketsAsync()).Single(b => b.Name == "skew");
        AssertNear(DateTimeOffset.UtcNow + TimeSpan.FromHours(2), bucket.Created, "bucket creation time (master clock)");
        await using (var load = WriteLoad.Start(cluster, "skew", writers: 2))
        {
            await load.WaitForWritesAsync(40, Bound, probe, "writes with skewed clocks");
            await load.StopAsync();
            Assert.Empty(load.StaleReads);
        }
        ObjectInfo info = await client.StatAsync("skew", "w0/k0");
        AssertNear(DateTimeOffset.UtcNow - TimeSpan.FromHours(3), info.Created, "object creation time (the head's clock)");

        await ahead.HealAllAsync(CancellationToken.None);
        await behind.HealAllAsync(CancellationToken.None);
        Assert.DoesNotContain("--clock-offset-ms", cluster.Master.CommandLine, StringComparison.Ordinal);
        await cluster.WaitUntilHealthyAsync(Bound);
        await client.PutAsync("skew", "healed", Bytes("healed"));
        AssertNear(DateTimeOffset.UtcNow, (await client.StatAsync("skew", "healed")).Created, "object creation time after heal");
    }

    [Fact]
    public async Task Namespace_networks_remove_leftovers_of_dead_runs_and_everything_they_made_on_dispose()
    {
        RequireRoot();
        // A crashed run: tag chnfff0 (outside the ids CreateAsync picks) whose owner pid cannot exist.
        const string tag = "chnfff0";
        Directory.CreateDirectory("/run/chain-harness");
        await File.WriteAllTextAsync($"/run/chain-harness/{tag}.owner", "2147483646");
        await Shell("ip", "netns", "add", tag + "-m");
        await Shell("ip", "link", "add", tag + "-br", "type", "bridge");
        await Shell("iptables", "-w", "-I", "FORWARD", "-i", tag + "-br", "-o", tag + "-br", "-m", "comment", "--comment", tag, "-j", "ACCEPT");

        NamespaceNetwork network = await NamespaceNetwork.CreateAsync(2);
        string[] made;
        await using (network)
        {
            Assert.DoesNotContain(tag, await Shell("ip", "netns", "list"), StringComparison.Ordinal);
            Assert.DoesNotContain(tag, await Shell("ip", "-o", "link", "show"), StringComparison.Ordinal);
            Assert.DoesNotContain(tag, await Shell("iptables", "-w", "-S", "FORWARD"), StringComparison.Ordinal);
            Assert.False(File.Exists($"/run/chain-harness/{tag}.owner"));

            made = new[] { network.NamespaceOf(0), network.NamespaceOf(1), network.BridgeName };
            Assert.All(made, name => Assert.True(name.Length <= 15, $"{name} is longer than IFNAMSIZ-1"));
            string namespaces = await Shell("ip", "netns", "list");
            Assert.Contains(network.NamespaceOf(1), namespaces, StringComparison.Ordinal);
            Assert.Contains(network.Tag, await Shell("iptables", "-w", "-S", "FORWARD"), StringComparison.Ordinal);
            // The root namespace reaches a process's address; the namespaces reach each other.
            Assert.Contains(network.AddressOf(1).ToString(), await network.ExecAsync(1, new[] { "ip", "-o", "addr", "show", "dev", "eth0" }), StringComparison.Ordinal);
        }
        Assert.DoesNotContain(network.Tag, await Shell("ip", "netns", "list"), StringComparison.Ordinal);
        Assert.DoesNotContain(network.Tag, await Shell("ip", "-o", "link", "show"), StringComparison.Ordinal);
        Assert.DoesNotContain(network.Tag, await Shell("iptables", "-w", "-S", "FORWARD"), StringComparison.Ordinal);
    }

    private static async Task<string> Node3AnswersAsync(ClusterProbe probe)
    {
        try
        {
            return (await probe.ReplicaStateAsync("node3", 0)).NodeId;
        }
        catch (Chain.Rpc.RpcException e) when (e.Status != Chain.Rpc.StatusCode.DeadlineExceeded)
        {
            return e.Message;
        }
        catch (Chain.Rpc.RpcException)
        {
            return "";
        }
    }

    /// <summary>
    /// A torn WAL on a tail that comes back within the failure timeout: RocksDB silently opens an older state (observed:
    /// applied 29 of 60 acknowledged updates), the node keeps its position, and its predecessor must re-send the rest
    /// before it serves reads. No read may miss an acknowledged write; the replicas must converge.
    /// </summary>
    [Fact]
    public async Task A_tail_restarted_quickly_with_a_truncated_wal_catches_up_without_stale_reads()
    {
        LocalCluster cluster = await StartAsync(new LocalClusterOptions { Nodes = 3, Chains = 1, DataDirectory = "", FailureTimeout = TimeSpan.FromSeconds(15) });
        CorruptNemesis nemesis = Own(new CorruptNemesis(cluster, CorruptionMode.TruncateWal));
        using var probe = new ClusterProbe(cluster);
        using ChainClient admin = cluster.CreateClient();
        await admin.CreateBucketAsync("data");
        for (int i = 0; i < 60; i++)
            await admin.PutAsync("data", $"k{i}", Bytes($"v{i}"));
        string tail = (await probe.ChainAsync(0)).Nodes[^1];
        _output.WriteLine(await nemesis.InjectAsync(new Fault(FaultKind.Corrupt, probe.IndexOf(tail), TimeSpan.FromSeconds(10)), CancellationToken.None));
        Assert.True(nemesis.LastRestartSucceeded, $"{tail} did not restart");
        _output.WriteLine(await probe.DescribeAsync("right after the restart"));

        var stale = new List<string>();
        using (ChainClient reader = cluster.CreateClient(o => o with { OperationTimeout = TimeSpan.FromSeconds(20) }))
        {
            for (int i = 0; i < 60; i++)
            {
                string? read;
                try
                {
                    read = Encoding.UTF8.GetString(await reader.GetBytesAsync("data", $"k{i}"));
                }
                catch (ObjectNotFoundException)
                {
                    read = null;
                }
                if (read != $"v{i}")
                    stale.Add($"k{i}: {read ?? "not found"}");
            }
        }
        Assert.Empty(stale);
        await admin.PutAsync("data", "after", Bytes("after"));
        ChainInfo chain = await probe.ChainAsync(0);
        Assert.Contains(tail, chain.Nodes);
        // Caught up by itself: no heal (wipe and re-sync) needed.
        await probe.AssertReplicasIdenticalAsync(0, chain.Nodes, Bound, null);
    }

    private static void AssertNear(DateTimeOffset expected, DateTimeOffset actual, string what) =>
        Assert.True((expected - actual).Duration() < TimeSpan.FromMinutes(5), $"{what}: {actual:O}, expected about {expected:O}");

    private T Own<T>(T item) where T : IAsyncDisposable
    {
        _owned.Add(item);
        return item;
    }

    private async Task<LocalCluster> StartAsync(LocalClusterOptions options)
    {
        RequireRoot();
        options.DataDirectory = Path.Combine(_root, "cluster");
        options.FailureTimeout ??= TimeSpan.FromSeconds(3); // as the other integration tests: classes run in parallel on two cores
        LocalCluster cluster = await LocalCluster.StartAsync(options, CancellationToken.None);
        _owned.Add(cluster);
        return cluster;
    }

    /// <summary>Fails (never silently passes) when not root: CI runs as root, so these tests always run there.</summary>
    private static void RequireRoot()
    {
        if (Environment.UserName == "root" && NamespaceNetwork.Unavailable() is null)
            return;
        Assert.Fail($"the nemesis tests need root with ip and iptables installed (scripts/setup-deps.sh): {NamespaceNetwork.Unavailable() ?? "user is not root"}");
    }

    private static Task<string> Shell(string tool, params string[] arguments) => Chain.Harness.Shell.RunAsync(tool, arguments);

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);
}
