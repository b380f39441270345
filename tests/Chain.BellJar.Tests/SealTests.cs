using System.Net;
using Chain.Harness;
using Chain.Harness.BellJar;
using Xunit.Abstractions;

namespace Chain.BellJar.Tests;

/// <summary>
/// The seal on real namespaces (root): declared destinations pass, everything else is dropped and recorded with its
/// destination, port and protocol; a narrowed allowlist blocks the peers it leaves out; sealing a role away does not
/// count against the others.
/// </summary>
[Trait("Category", "Integration")]
public sealed class SealTests : IAsyncLifetime
{
    private static readonly TimeSpan Connect = TimeSpan.FromSeconds(2);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "chain-belljar-seal-" + Guid.NewGuid().ToString("N"));
    private readonly ITestOutputHelper _output;
    private LocalCluster? _cluster;

    public SealTests(ITestOutputHelper output) => _output = output;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }

    private async Task<(LocalCluster Cluster, SealedNetwork Seal, NamespaceNetwork Network)> StartAsync()
    {
        Root.Require();
        _cluster = await LocalCluster.StartAsync(new LocalClusterOptions
        {
            Nodes = 3,
            Chains = 1,
            Replicas = 2,
            DataDirectory = _root,
            DeleteDataOnDispose = true,
            Network = ClusterNetwork.Namespaces,
            Seal = ManifestSet.Load(),
        });
        return (_cluster, _cluster.Seal!, _cluster.Network!);
    }

    private static IPEndPoint Rpc(NamespaceNetwork network, int process) => new(network.AddressOf(process), LocalCluster.NamespacePort);

    [Fact]
    public async Task Declared_destinations_pass_and_an_undeclared_address_is_dropped_and_recorded()
    {
        var (_, seal, network) = await StartAsync();
        Assert.True(await network.CanConnectAsync(1, Rpc(network, 0), Connect), "node1 cannot reach the master (declared)");
        Assert.True(await network.CanConnectAsync(1, Rpc(network, 2), Connect), "node1 cannot reach node2 (declared)");
        Assert.True(await network.CanConnectAsync(0, Rpc(network, 3), Connect), "the master cannot reach node3 (declared)");

        var outside = new IPEndPoint(IPAddress.Parse("192.0.2.77"), 8080);
        Assert.False(await network.CanConnectAsync(1, outside, Connect), "node1 reached an address outside the cluster");
        Assert.False(await network.CanConnectAsync(0, new IPEndPoint(network.AddressOf(1), 22), Connect), "the master reached node1's port 22 (not declared)");

        IReadOnlyList<UndeclaredAttempt> attempts = await seal.AttemptsAsync();
        foreach (UndeclaredAttempt a in attempts)
            _output.WriteLine(a.ToString());
        UndeclaredAttempt fromNode = Assert.Single(attempts, a => a.From == "node1");
        Assert.Equal(("192.0.2.77", 8080, "tcp", "outside the cluster", false), (fromNode.Destination, fromNode.Port!.Value, fromNode.Protocol, fromNode.DestinationName, fromNode.Declared));
        Assert.True(fromNode.Attempts >= 1 && fromNode.Packets >= 1);
        UndeclaredAttempt fromMaster = Assert.Single(attempts, a => a.From == "master");
        Assert.Equal((network.AddressOf(1).ToString(), 22, "node1", false), (fromMaster.Destination, fromMaster.Port!.Value, fromMaster.DestinationName, fromMaster.Declared));
        Assert.DoesNotContain(attempts, a => a.Port == LocalCluster.NamespacePort);
    }

    [Fact]
    public async Task A_host_name_lookup_is_a_recorded_udp_53_attempt_to_the_jar_resolver()
    {
        var (_, seal, network) = await StartAsync();
        var (code, _, _, _) = await Shell.RunUncheckedAsync(network.IpTool,
            network.LauncherFor(2).Skip(1).Concat(new[] { "getent", "hosts", "ntp.belljar.invalid" }), timeout: TimeSpan.FromSeconds(15));
        Assert.NotEqual(0, code); // nothing resolves in the jar

        IReadOnlyList<UndeclaredAttempt> attempts = await seal.AttemptsOfAsync(2);
        UndeclaredAttempt dns = Assert.Single(attempts, a => a.Protocol == "udp");
        Assert.Equal((SealedNetwork.ResolverAddress.ToString(), 53, "node2", "node", false), (dns.Destination, dns.Port!.Value, dns.From, dns.Role, dns.Declared));
    }

    [Fact]
    public async Task A_narrowed_allowlist_blocks_the_peers_it_leaves_out_and_records_them_as_declared()
    {
        var (_, seal, network) = await StartAsync();
        await seal.NarrowAsync(1, new[] { 0, 2 });
        Assert.True(await network.CanConnectAsync(1, Rpc(network, 0), Connect), "node1 cannot reach the master after narrowing");
        Assert.True(await network.CanConnectAsync(1, Rpc(network, 2), Connect), "node1 cannot reach node2 (kept) after narrowing");
        Assert.False(await network.CanConnectAsync(1, Rpc(network, 3), Connect), "node1 reached node3, which the narrowed allowlist leaves out");

        UndeclaredAttempt blocked = Assert.Single(await seal.AttemptsOfAsync(1));
        Assert.Equal((network.AddressOf(3).ToString(), LocalCluster.NamespacePort, "node3", "tcp", true),
            (blocked.Destination, blocked.Port!.Value, blocked.DestinationName, blocked.Protocol, blocked.Declared));

        await seal.WidenAsync(1);
        Assert.True(await network.CanConnectAsync(1, Rpc(network, 3), Connect), "node1 cannot reach node3 after widening");
    }

    [Fact]
    public async Task Sealing_the_master_away_cuts_it_without_counting_against_the_nodes()
    {
        var (cluster, seal, network) = await StartAsync();
        await seal.SealAwayAsync(0);
        Assert.False(await network.CanConnectAsync(1, Rpc(network, 0), Connect), "node1 reached the sealed-away master");
        Assert.False(await network.CanConnectAsync(0, Rpc(network, 1), Connect), "the sealed-away master reached node1");
        // The nodes keep heartbeating toward the master meanwhile: declared attempts, dropped inside the master's namespace.
        await using (var client = cluster.CreateClient(o => o with { OperationTimeout = TimeSpan.FromSeconds(2), MaxAttempts = 1 }))
            await Assert.ThrowsAnyAsync<Exception>(() => client.GetStatusAsync());
        await seal.UnsealAsync(0);
        await cluster.WaitUntilHealthyAsync(TimeSpan.FromSeconds(30));
        Assert.Empty(await seal.AttemptsAsync());
    }
}
