using System.Net;
using System.Text;
using Chain.Client;
using Chain.Harness;
using Chain.Harness.Faults;

namespace Chain.Integration.Tests;

/// <summary>
/// The fault injectors of the consistency harness against real processes. These need root (namespaces, iptables,
/// tmpfs): as any other user they fail with a message saying so (CI runs as root; a silent pass would hide a lost fault).
/// </summary>
[Trait("Category", "Integration")]
public sealed class NemesisTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(45);

    private readonly string _root = Path.Combine(Path.GetTempPath(), "chain-nemesis-" + Guid.NewGuid().ToString("N"));
    private readonly List<IAsyncDisposable> _owned = new();

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

    private T Own<T>(T item) where T : IAsyncDisposable
    {
        _owned.Add(item);
        return item;
    }

    private async Task<LocalCluster> StartAsync(LocalClusterOptions options)
    {
        RequireRoot();
        options.DataDirectory = Path.Combine(_root, "cluster");
        options.FailureTimeout ??= TimeSpan.FromSeconds(2);
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
