using System.Text;
using Chain.Client;
using Chain.Master;
using Chain.Protocol;
using Chain.Protocol.V1;
using static Chain.Server.Tests.MasterReconfigurationTests;

namespace Chain.Server.Tests;

/// <summary>Zones end to end: the master's spare choice and a zoned in-process cluster with many chains.</summary>
public class ZonePlacementTests
{
    private static async Task RegisterAsync(MasterService master, params (string Id, string Zone)[] nodes)
    {
        foreach ((string id, string zone) in nodes)
            await master.RegisterAsync(new RegisterRequest { Node = new NodeInfo { NodeId = id, Address = "http://127.0.0.1:1000", Zone = zone } }, default);
    }

    [Fact]
    public async Task The_spare_for_a_dead_member_comes_from_a_zone_the_chain_does_not_use()
    {
        var (master, clock) = Start();
        await RegisterAsync(master, ("n1", "a"), ("n2", "b"), ("n3", "c"));
        // Spares: n4 shares zone a with n1 (and wins on id order alone); n5 is in the dead node's zone c.
        await RegisterAsync(master, ("n4", "a"), ("n5", "c"));
        Assert.Equal(new[] { "n1", "n2", "n3" }, master.Current.Chains[0].Nodes);

        clock.Advance(TimeSpan.FromSeconds(2));
        foreach (string id in new[] { "n1", "n2", "n4", "n5" })
            await BeatAsync(master, id);
        Assert.True(await master.SweepAsync(default));
        Assert.Equal(new[] { "n1", "n2" }, master.Current.Chains[0].Nodes);
        Assert.Equal(new[] { "n5" }, master.Current.Chains[0].Syncing);
    }

    [Fact]
    public async Task A_former_member_is_passed_over_when_its_zone_is_taken_and_another_zone_has_a_live_node()
    {
        var (master, clock) = Start();
        await RegisterAsync(master, ("n1", "a"), ("n2", "b"), ("n3", "c"));
        await RegisterAsync(master, ("n4", "c"), ("n5", "b"));

        // n3 dies: n4 (zone c, free again) syncs and joins.
        clock.Advance(TimeSpan.FromSeconds(2));
        foreach (string id in new[] { "n1", "n2", "n4", "n5" })
            await BeatAsync(master, id);
        await master.SweepAsync(default);
        Assert.Equal(new[] { "n4" }, master.Current.Chains[0].Syncing);
        await BeatAsync(master, "n4", applied: 5, caughtUp: true);
        Assert.Equal(new[] { "n1", "n2", "n4" }, master.Current.Chains[0].Nodes);

        // n2 dies and the former member n3 is back, but its zone c is n4's now: n5 (zone b) is chosen.
        clock.Advance(TimeSpan.FromSeconds(2));
        foreach (string id in new[] { "n1", "n3", "n4", "n5" })
            await BeatAsync(master, id);
        await master.SweepAsync(default);
        Assert.Equal(new[] { "n1", "n4" }, master.Current.Chains[0].Nodes);
        Assert.Contains("n3", master.Current.Chains[0].Former);
        Assert.Equal(new[] { "n5" }, master.Current.Chains[0].Syncing);
    }

    [Fact]
    public async Task A_bad_zone_label_is_refused_at_registration()
    {
        var (master, _) = Start();
        var e = await Assert.ThrowsAsync<Chain.Rpc.RpcException>(() => RegisterAsync(master, ("n1", "rack 1")));
        Assert.Equal(Chain.Rpc.StatusCode.InvalidArgument, e.Status);
        Assert.Empty(master.Current.Nodes);
    }

    [Fact]
    public async Task Sixty_four_chains_over_three_zones_use_distinct_zones_and_serve_objects()
    {
        await using var cluster = await InProcessCluster.StartAsync(nodes: 6, chains: 64, replicas: 3, zoneOf: i => $"z{i % 3 + 1}");
        ClusterConfig config = cluster.Master.Current;
        var zoneOf = config.Nodes.ToDictionary(n => n.Node.NodeId, n => n.Node.Zone);
        Assert.Equal(64, config.Chains.Count);
        Assert.All(config.Chains, c => Assert.Equal(new[] { "z1", "z2", "z3" }, c.Nodes.Select(id => zoneOf[id]).Order()));

        await using ChainClient client = cluster.CreateClient();
        await client.CreateBucketAsync("zoned");
        string[] keys = Enumerable.Range(0, 128).Select(i => $"object-{i}").ToArray();
        int chainsHit = keys.Select(k => Placement.ChainFor("zoned", Encoding.UTF8.GetBytes(k), 64)).Distinct().Count();
        Assert.True(chainsHit >= 48, $"only {chainsHit} chains hit");
        foreach (string key in keys)
            await client.PutAsync("zoned", key, Encoding.UTF8.GetBytes("value of " + key));
        foreach (string key in keys)
            Assert.Equal("value of " + key, Encoding.UTF8.GetString(await client.GetBytesAsync("zoned", key)));
    }
}
