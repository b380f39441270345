using Chain.Harness;
using Xunit;

namespace Chain.Cli.Tests;

public class HarnessUnitTests
{
    [Fact]
    public void Free_ports_are_distinct_and_valid()
    {
        int[] ports = PortAllocator.FreePorts(8);
        Assert.Equal(8, ports.Distinct().Count());
        Assert.All(ports, p => Assert.InRange(p, 1, 65535));
    }

    [Fact]
    public void Node_ids_are_one_based()
    {
        Assert.Equal("node1", LocalCluster.NodeId(0));
        Assert.Equal("node12", LocalCluster.NodeId(11));
    }

    [Fact]
    public void Round_robin_zones_deal_nodes_to_z1_through_zk()
    {
        Func<int, string?> zoneOf = LocalClusterOptions.RoundRobinZones(3);
        Assert.Equal(new[] { "z1", "z2", "z3", "z1", "z2" }, Enumerable.Range(0, 5).Select(zoneOf));
        Assert.Throws<ArgumentOutOfRangeException>(() => LocalClusterOptions.RoundRobinZones(0));
    }

    [Theory]
    [InlineData(0, null, 0)]
    [InlineData(3, 4, 0)]
    [InlineData(3, null, 65534)]
    [InlineData(3, null, -1)]
    public async Task Invalid_options_fail_before_anything_starts(int nodes, int? replicas, int basePort)
    {
        var options = new LocalClusterOptions
        {
            Nodes = nodes,
            Replicas = replicas,
            BasePort = basePort,
            DataDirectory = Path.Combine(Path.GetTempPath(), "chain-never-created-" + Guid.NewGuid().ToString("N")),
            ServerDllPath = "/nonexistent/Chain.Server.dll",
        };
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => LocalCluster.StartAsync(options));
        Assert.False(Directory.Exists(options.DataDirectory));
    }

    [Fact]
    public async Task A_missing_server_dll_fails_with_a_clear_error()
    {
        var options = new LocalClusterOptions
        {
            DataDirectory = Path.Combine(Path.GetTempPath(), "chain-never-created-" + Guid.NewGuid().ToString("N")),
            ServerDllPath = "/nonexistent/Chain.Server.dll",
        };
        var error = await Assert.ThrowsAsync<FileNotFoundException>(() => LocalCluster.StartAsync(options));
        Assert.Contains("/nonexistent/Chain.Server.dll", error.Message);
        Assert.False(Directory.Exists(options.DataDirectory));
    }
}
