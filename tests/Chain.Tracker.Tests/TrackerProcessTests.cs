using Chain.Harness;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;

namespace Chain.Tracker.Tests;

/// <summary>The tracker as a real `Chain.Server tracker` process started by the harness, spoken to over RPC.</summary>
[Trait("Category", "Integration")]
public sealed class TrackerProcessTests : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "chain-tracker-" + Guid.NewGuid().ToString("N"));
    private LocalCluster _cluster = null!;

    public async Task InitializeAsync() =>
        _cluster = await LocalCluster.StartAsync(new LocalClusterOptions
        {
            Nodes = 1,
            Replicas = 1,
            Chains = 1,
            DataDirectory = _root,
            Tracker = new LocalTrackerOptions { LeaseMs = 5000, MaxStoreFetches = 2 },
            DeleteDataOnDispose = true,
        });

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task Announce_exchange_and_status_work_over_the_wire_with_typed_errors()
    {
        Uri address = Assert.IsType<Uri>(_cluster.TrackerAddress);
        using var channel = new RpcChannel(address);
        var s = new Swarmer(4);

        AnnounceResponse lease = await channel.UnaryAsync(TrackerMethods.Announce, s.Announce(Swarmer.Peer("a")));
        Assert.Equal(5000u, lease.LeaseMs);
        await channel.UnaryAsync(TrackerMethods.Announce, s.Announce(Swarmer.Peer("b")));

        // --max-store-fetches 2 reached the process: two store slots shared by the two wanting peers, one each, on
        // distinct chunks; then none until a fetch ends.
        ExchangeResponse first = await channel.UnaryAsync(TrackerMethods.Exchange, s.Exchange("a", 4));
        Assignment fromStore = Assert.Single(first.Assignments);
        ExchangeResponse second = await channel.UnaryAsync(TrackerMethods.Exchange, s.Exchange("b", 4));
        Assert.NotEqual(fromStore.Chunk, Assert.Single(second.Assignments).Chunk);
        ExchangeResponse waiting = await channel.UnaryAsync(TrackerMethods.Exchange, s.Exchange("a", 4));
        Assert.Empty(waiting.Assignments);
        Assert.True(waiting.RetryAfterMs > 0);

        ExchangeResponse next = await channel.UnaryAsync(TrackerMethods.Exchange,
            s.Exchange("a", 0, first.Assignments.Select(Swarmer.Done).ToArray()));
        Assert.False(next.Complete);
        ExchangeResponse fromPeer = await channel.UnaryAsync(TrackerMethods.Exchange, s.Exchange("b", 4));
        Assert.Contains(fromPeer.Assignments, a => a.Source.Peer?.PeerId == "a");

        SwarmStatusResponse status = await channel.UnaryAsync(TrackerMethods.SwarmStatus, new SwarmStatusRequest());
        SwarmStatus swarm = Assert.Single(status.Swarms);
        Assert.Equal((ulong)Swarmer.ChunkBytes, swarm.BytesFromStore);
        Assert.Equal(1u, swarm.Peers.Single(p => p.PeerId == "a").ChunksHeld);

        var unknown = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(TrackerMethods.Exchange, new Swarmer(1, "nope").Exchange("a", 1)));
        Assert.Equal(StatusCode.NotFound, unknown.Status);
        Assert.Equal(ErrorKinds.UnknownSwarm, unknown.Trailers[ErrorTrailers.Kind]);
        var bad = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(TrackerMethods.Announce, s.Announce(Swarmer.Peer(""))));
        Assert.Equal(StatusCode.InvalidArgument, bad.Status);

        await channel.UnaryAsync(TrackerMethods.Leave, new LeaveRequest { PeerId = "a", SwarmId = s.SwarmId });
        await channel.UnaryAsync(TrackerMethods.Leave, new LeaveRequest { PeerId = "b", SwarmId = s.SwarmId });
        Assert.Empty((await channel.UnaryAsync(TrackerMethods.SwarmStatus, new SwarmStatusRequest())).Swarms);
    }
}
