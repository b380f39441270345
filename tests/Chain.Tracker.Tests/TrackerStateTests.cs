using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;

namespace Chain.Tracker.Tests;

/// <summary>The tracker's scheduling decisions, one rule per test, on a manual clock.</summary>
public class TrackerStateTests
{
    private readonly ManualClock _clock = new();

    private TrackerState State(TrackerOptions? options = null) => new(options ?? new TrackerOptions { Seed = 7 }, _clock);

    private static string SourceOf(Assignment a) => a.Source.KindCase == ChunkSource.KindOneofCase.Peer ? a.Source.Peer.PeerId : "store";

    [Fact]
    public void Rarest_chunk_is_assigned_first()
    {
        var s = new Swarmer(3);
        TrackerState t = State();
        t.Announce(s.Announce(Swarmer.Peer("a"), new[] { 0, 1, 2 }, wants: false));
        t.Announce(s.Announce(Swarmer.Peer("b"), new[] { 0, 1 }, wants: false));
        t.Announce(s.Announce(Swarmer.Peer("c"), new[] { 0 }, wants: false));
        t.Announce(s.Announce(Swarmer.Peer("d")));

        ExchangeResponse r = t.Exchange(s.Exchange("d", 3));

        // Chunk 2 has one holder, chunk 1 two, chunk 0 three: assigned in that order.
        Assert.Equal(new uint[] { 2, 1, 0 }, r.Assignments.Select(a => a.Chunk));
        Assert.Equal("a", SourceOf(r.Assignments[0]));
    }

    [Fact]
    public void Upload_cap_is_never_exceeded_and_the_rest_wait()
    {
        var s = new Swarmer(8);
        TrackerState t = State();
        t.Announce(s.Seeder(Swarmer.Peer("seed", maxUploads: 2)));
        foreach (string d in new[] { "d1", "d2", "d3" })
            t.Announce(s.Announce(Swarmer.Peer(d)));

        ExchangeResponse first = t.Exchange(s.Exchange("d1", 4));
        ExchangeResponse second = t.Exchange(s.Exchange("d2", 4));

        Assert.Equal(2, first.Assignments.Count);
        Assert.All(first.Assignments, a => Assert.Equal("seed", SourceOf(a)));
        Assert.Empty(second.Assignments);
        Assert.True(second.RetryAfterMs > 0);
        Assert.Equal(2, t.UploadsInFlight("seed"));

        // A DONE frees a slot: the next downloader gets exactly one.
        t.Exchange(s.Exchange("d1", 0, Swarmer.Done(first.Assignments[0])));
        ExchangeResponse third = t.Exchange(s.Exchange("d3", 4));
        Assert.Single(third.Assignments, a => SourceOf(a) == "seed");
        Assert.Equal(2, t.UploadsInFlight("seed"));
    }

    [Fact]
    public void Same_zone_holder_is_preferred_then_the_least_loaded()
    {
        var s = new Swarmer(1);
        TrackerState t = State();
        t.Announce(s.Seeder(Swarmer.Peer("far", zone: "z1")));
        t.Announce(s.Seeder(Swarmer.Peer("near1", zone: "z2")));
        t.Announce(s.Seeder(Swarmer.Peer("near2", zone: "z2")));
        foreach (string d in new[] { "d1", "d2", "d3" })
            t.Announce(s.Announce(Swarmer.Peer(d, zone: "z2")));

        string first = SourceOf(Assert.Single(t.Exchange(s.Exchange("d1", 1)).Assignments));
        string second = SourceOf(Assert.Single(t.Exchange(s.Exchange("d2", 1)).Assignments));

        Assert.StartsWith("near", first, StringComparison.Ordinal);
        Assert.StartsWith("near", second, StringComparison.Ordinal);
        Assert.NotEqual(first, second);   // the second goes to the idle one of the two

        // Without a zone the downloader spreads to the idle holder, whatever its zone.
        t.Announce(s.Announce(Swarmer.Peer("nozone")));
        Assert.Equal("far", SourceOf(Assert.Single(t.Exchange(s.Exchange("nozone", 1)).Assignments)));
    }

    [Fact]
    public void Most_upload_bandwidth_breaks_a_load_tie()
    {
        var s = new Swarmer(1);
        TrackerState t = State();
        t.Announce(s.Seeder(Swarmer.Peer("slow", bandwidth: 1_000_000)));
        t.Announce(s.Seeder(Swarmer.Peer("fast", bandwidth: 9_000_000)));
        t.Announce(s.Announce(Swarmer.Peer("d")));

        Assert.Equal("fast", SourceOf(Assert.Single(t.Exchange(s.Exchange("d", 1)).Assignments)));
    }

    [Fact]
    public void Store_serves_each_chunk_once_while_other_peers_wait_for_it()
    {
        var s = new Swarmer(1);
        TrackerState t = State();
        foreach (string d in new[] { "d1", "d2", "d3" })
            t.Announce(s.Announce(Swarmer.Peer(d)));

        Assignment fromStore = Assert.Single(t.Exchange(s.Exchange("d1", 4)).Assignments);
        Assert.Equal(ChunkSource.KindOneofCase.StoreChainId, fromStore.Source.KindCase);
        Assert.Equal(s.Chunks[0].ChainId, fromStore.Source.StoreChainId);
        ExchangeResponse waiting = t.Exchange(s.Exchange("d2", 4));
        Assert.Empty(waiting.Assignments);
        Assert.True(waiting.RetryAfterMs > 0);

        t.Exchange(s.Exchange("d1", 0, Swarmer.Done(fromStore)));
        Assert.Equal("d1", SourceOf(Assert.Single(t.Exchange(s.Exchange("d2", 4)).Assignments)));
        Assert.Equal("d1", SourceOf(Assert.Single(t.Exchange(s.Exchange("d3", 4)).Assignments)));
        Assert.Equal(1, t.StoreServes(s.SwarmId, 0));
    }

    [Fact]
    public void Store_fetches_per_swarm_are_bounded_and_shared_out_over_the_wanting_peers()
    {
        var s = new Swarmer(20);
        TrackerState t = State(new TrackerOptions { Seed = 1, MaxStoreFetchesPerSwarm = 2 });
        t.Announce(s.Announce(Swarmer.Peer("d1")));
        t.Announce(s.Announce(Swarmer.Peer("d2")));
        t.Announce(s.Announce(Swarmer.Peer("d3")));

        ExchangeResponse first = t.Exchange(s.Exchange("d1", 10));
        ExchangeResponse second = t.Exchange(s.Exchange("d2", 10));
        ExchangeResponse third = t.Exchange(s.Exchange("d3", 10));
        ExchangeResponse again = t.Exchange(s.Exchange("d1", 10));

        // Two store slots over three wanting peers: one each for the first two (not both to d1, who asked for ten),
        // then none until a fetch ends.
        Assert.Single(first.Assignments);
        Assert.Single(second.Assignments);
        Assert.Empty(third.Assignments);
        Assert.True(third.RetryAfterMs > 0);
        Assert.Empty(again.Assignments);
        // Distinct chunks: the store's upload is never spent twice on one chunk.
        Assert.Equal(2, first.Assignments.Concat(second.Assignments).Select(a => a.Chunk).Distinct().Count());
    }

    [Fact]
    public void A_lone_downloader_gets_at_most_two_store_fetches_at_once()
    {
        var s = new Swarmer(20);
        TrackerState t = State(new TrackerOptions { Seed = 1, MaxStoreFetchesPerSwarm = 8 });
        t.Announce(s.Announce(Swarmer.Peer("d")));

        Assert.Equal(2, t.Exchange(s.Exchange("d", 10)).Assignments.Count);
        Assert.Empty(t.Exchange(s.Exchange("d", 10)).Assignments);
    }

    [Fact]
    public void Peer_serving_bad_data_is_avoided_in_every_swarm_and_counted()
    {
        var s = new Swarmer(2);
        var other = new Swarmer(2, "other");
        TrackerState t = State();
        t.Announce(s.Seeder(Swarmer.Peer("liar")));
        t.Announce(other.Seeder(Swarmer.Peer("liar")));
        t.Announce(s.Announce(Swarmer.Peer("d")));
        t.Announce(other.Announce(Swarmer.Peer("d")));

        Assignment bad = t.Exchange(s.Exchange("d", 1)).Assignments.Single();
        Assert.Equal("liar", SourceOf(bad));
        ExchangeResponse after = t.Exchange(s.Exchange("d", 2, Swarmer.Failed(bad, Outcome.Types.Kind.VerificationFailed)));

        Assert.True(t.IsAvoided("liar"));
        Assert.Equal(2, after.Assignments.Count);
        Assert.All(after.Assignments, a => Assert.Equal("store", SourceOf(a)));
        Assert.All(t.Exchange(other.Exchange("d", 2)).Assignments, a => Assert.Equal("store", SourceOf(a)));
        SwarmStatus status = t.Status(new SwarmStatusRequest { SwarmId = s.SwarmId }).Swarms.Single();
        Assert.Equal(1u, status.RefetchedAfterVerification);
        PeerSwarmStatus liar = status.Peers.Single(p => p.PeerId == "liar");
        Assert.True(liar.Avoided);
        Assert.Equal(1u, liar.VerificationFailuresCaused);
    }

    [Fact]
    public void Dead_source_is_dropped_after_its_lease_and_the_chunk_reassigned()
    {
        var s = new Swarmer(1);
        TrackerState t = State(new TrackerOptions { Seed = 3, Lease = TimeSpan.FromSeconds(1) });
        t.Announce(s.Seeder(Swarmer.Peer("src")));
        t.Announce(s.Announce(Swarmer.Peer("d")));
        Assert.Equal("src", SourceOf(t.Exchange(s.Exchange("d", 1)).Assignments.Single()));
        Assert.Equal(1, t.AssignmentsInFlight);

        // d keeps its lease; src goes silent.
        for (int i = 0; i < 4; i++)
        {
            _clock.Advance(TimeSpan.FromMilliseconds(400));
            t.Exchange(s.Exchange("d", 0));
        }

        Assert.Equal(0, t.AssignmentsInFlight);
        Assert.Equal("store", SourceOf(t.Exchange(s.Exchange("d", 1)).Assignments.Single()));
        Assert.DoesNotContain(t.Status(new SwarmStatusRequest()).Swarms.Single().Peers, p => p.PeerId == "src");
    }

    [Fact]
    public void Dead_downloader_frees_its_sources_upload_slots()
    {
        var s = new Swarmer(4);
        TrackerState t = State(new TrackerOptions { Seed = 3, Lease = TimeSpan.FromSeconds(1) });
        t.Announce(s.Seeder(Swarmer.Peer("src", maxUploads: 2)));
        t.Announce(s.Announce(Swarmer.Peer("dies")));
        t.Announce(s.Announce(Swarmer.Peer("lives")));
        Assert.Equal(2, t.Exchange(s.Exchange("dies", 4)).Assignments.Count);
        Assert.Empty(t.Exchange(s.Exchange("lives", 4)).Assignments);

        for (int i = 0; i < 4; i++)
        {
            _clock.Advance(TimeSpan.FromMilliseconds(400));
            t.Announce(s.Seeder(Swarmer.Peer("src", maxUploads: 2)));
            t.Exchange(s.Exchange("lives", 0));
        }

        Assert.Equal(0, t.UploadsInFlight("src"));
        Assert.Equal(2, t.Exchange(s.Exchange("lives", 4)).Assignments.Count(a => SourceOf(a) == "src"));
    }

    [Fact]
    public void Evicted_chunk_is_no_longer_served_by_that_peer()
    {
        var s = new Swarmer(1);
        TrackerState t = State();
        t.Announce(s.Seeder(Swarmer.Peer("h")));
        t.Announce(s.Announce(Swarmer.Peer("d")));

        t.Exchange(s.Exchange("h", 0, new Outcome { Chunk = 0, Kind = Outcome.Types.Kind.Evicted }));

        Assert.Equal("store", SourceOf(t.Exchange(s.Exchange("d", 1)).Assignments.Single()));
        Assert.Equal(0u, t.Status(new SwarmStatusRequest { SwarmId = s.SwarmId }).Swarms[0].Peers.Single(p => p.PeerId == "h").ChunksHeld);
    }

    [Fact]
    public void Repeatedly_failing_source_is_backed_off_for_a_while()
    {
        var s = new Swarmer(1);
        TrackerState t = State(new TrackerOptions { Seed = 3, SourceFailuresBeforeBackoff = 2, SourceBackoff = TimeSpan.FromSeconds(1) });
        t.Announce(s.Seeder(Swarmer.Peer("flaky")));
        t.Announce(s.Announce(Swarmer.Peer("d")));

        Assignment a1 = t.Exchange(s.Exchange("d", 1)).Assignments.Single();
        Assignment a2 = t.Exchange(s.Exchange("d", 1, Swarmer.Failed(a1, Outcome.Types.Kind.SourceFailed))).Assignments.Single();
        Assert.Equal("flaky", SourceOf(a2));   // one failure: named again
        Assignment a3 = t.Exchange(s.Exchange("d", 1, Swarmer.Failed(a2, Outcome.Types.Kind.SourceFailed))).Assignments.Single();
        Assert.Equal("store", SourceOf(a3));   // two in a row: backed off, no usable holder, so the store

        t.Exchange(s.Exchange("d", 0, Swarmer.Failed(a3, Outcome.Types.Kind.SourceFailed)));
        _clock.Advance(TimeSpan.FromMilliseconds(1100));
        t.Announce(s.Seeder(Swarmer.Peer("flaky")));
        Assert.Equal("flaky", SourceOf(t.Exchange(s.Exchange("d", 1)).Assignments.Single()));
    }

    [Fact]
    public void Assignment_without_an_outcome_expires()
    {
        var s = new Swarmer(1);
        TrackerState t = State(new TrackerOptions { Seed = 3, AssignmentTimeout = TimeSpan.FromSeconds(2), Lease = TimeSpan.FromSeconds(1) });
        t.Announce(s.Seeder(Swarmer.Peer("src")));
        t.Announce(s.Announce(Swarmer.Peer("d")));
        Assert.Single(t.Exchange(s.Exchange("d", 1)).Assignments);
        Assert.Empty(t.Exchange(s.Exchange("d", 1)).Assignments);   // already fetching it

        for (int i = 0; i < 6; i++)
        {
            _clock.Advance(TimeSpan.FromMilliseconds(500));
            t.Announce(s.Seeder(Swarmer.Peer("src")));
            t.Announce(s.Announce(Swarmer.Peer("d")));
        }

        Assert.Equal(0, t.AssignmentsInFlight);
        Assert.Equal(0, t.UploadsInFlight("src"));
        Assert.Single(t.Exchange(s.Exchange("d", 1)).Assignments);
    }

    [Fact]
    public void Done_counts_bytes_by_source_kind_and_completion()
    {
        var s = new Swarmer(2);
        TrackerState t = State();
        t.Announce(s.Announce(Swarmer.Peer("d1")));
        t.Announce(s.Announce(Swarmer.Peer("d2"), new[] { 1 }));
        Assignment fromStore = t.Exchange(s.Exchange("d2", 4)).Assignments.Single();
        Assert.Equal(0u, fromStore.Chunk);
        Assignment fromPeer = t.Exchange(s.Exchange("d1", 4)).Assignments.Single();
        Assert.Equal("d2", SourceOf(fromPeer));

        _clock.Advance(TimeSpan.FromSeconds(1));
        ExchangeResponse done2 = t.Exchange(s.Exchange("d2", 4, Swarmer.Done(fromStore)));
        t.Exchange(s.Exchange("d1", 0, Swarmer.Done(fromPeer)));

        Assert.True(done2.Complete);
        SwarmStatus status = t.Status(new SwarmStatusRequest { SwarmId = s.SwarmId }).Swarms.Single();
        Assert.Equal((ulong)Swarmer.ChunkBytes, status.BytesFromStore);
        Assert.Equal((ulong)Swarmer.ChunkBytes, status.BytesFromPeers);
        PeerSwarmStatus d2 = status.Peers.Single(p => p.PeerId == "d2");
        Assert.Equal((ulong)Swarmer.ChunkBytes, d2.BytesUploaded);
        Assert.Equal(1000, d2.CompletedUnixMs - d2.JoinedUnixMs);
        Assert.Equal(0, status.Peers.Single(p => p.PeerId == "d1").CompletedUnixMs);   // holds 1 of 2
    }

    [Fact]
    public void Conflicting_chunk_list_is_refused_and_changes_nothing()
    {
        var s = new Swarmer(2);
        TrackerState t = State();
        t.Announce(s.Announce(Swarmer.Peer("d1")));
        AnnounceRequest conflicting = s.Announce(Swarmer.Peer("d2"));
        conflicting.Chunks[1] = new SwarmChunk { Sha256 = s.Chunks[0].Sha256, Size = Swarmer.ChunkBytes, ChainId = 9 };

        var e = Assert.Throws<RpcException>(() => t.Announce(conflicting));

        Assert.Equal(StatusCode.FailedPrecondition, e.Status);
        Assert.Equal(ErrorKinds.SwarmConflict, e.Trailers[ErrorTrailers.Kind]);
        Assert.Single(t.Status(new SwarmStatusRequest()).Swarms.Single().Peers);
        // An announce without a list joins the existing swarm.
        AnnounceRequest bare = s.Announce(Swarmer.Peer("d2"));
        bare.Chunks.Clear();
        t.Announce(bare);
        Assert.Equal(2, t.Status(new SwarmStatusRequest()).Swarms.Single().Peers.Count);
    }

    [Fact]
    public void Bad_requests_get_typed_errors()
    {
        var s = new Swarmer(2);
        TrackerState t = State();
        t.Announce(s.Announce(Swarmer.Peer("d")));

        static StatusCode Code(Action call) => Assert.Throws<RpcException>(call).Status;
        Assert.Equal(StatusCode.InvalidArgument, Code(() => t.Announce(s.Announce(Swarmer.Peer("")))));
        Assert.Equal(StatusCode.InvalidArgument, Code(() => t.Announce(s.Announce(new PeerInfo { PeerId = "x", Address = "" }))));
        Assert.Equal(StatusCode.InvalidArgument, Code(() => t.Announce(s.Announce(Swarmer.Peer("x"), new[] { 2 }))));
        foreach (string dataAddress in new[] { "127.0.0.1", "127.0.0.1:0", "peer.example:7000", "http://127.0.0.1:7000", new string('1', 70) })
        {
            PeerInfo badData = Swarmer.Peer("x");
            badData.DataAddress = dataAddress;
            Assert.Equal(StatusCode.InvalidArgument, Code(() => t.Announce(s.Announce(badData))));
        }
        PeerInfo goodData = Swarmer.Peer("w");
        goodData.DataAddress = "127.0.0.1:7001";
        t.Announce(s.Announce(goodData));
        AnnounceRequest badId = s.Announce(Swarmer.Peer("x"));
        badId.SwarmId = "nothex";
        Assert.Equal(StatusCode.InvalidArgument, Code(() => t.Announce(badId)));
        AnnounceRequest badSize = new Swarmer(3, "sized").Announce(Swarmer.Peer("x"));
        badSize.ObjectSize++;
        Assert.Equal(StatusCode.InvalidArgument, Code(() => t.Announce(badSize)));
        Assert.Equal(StatusCode.InvalidArgument, Code(() => t.Exchange(s.Exchange("d", 1, new Outcome { Chunk = 2, Kind = Outcome.Types.Kind.Evicted }))));
        Assert.Equal(StatusCode.InvalidArgument, Code(() => t.Exchange(s.Exchange("d", 1, new Outcome { Chunk = 0 }))));
        Assert.Equal(StatusCode.InvalidArgument, Code(() => t.Exchange(s.Exchange("", 1))));

        var unknownSwarm = Assert.Throws<RpcException>(() => t.Exchange(new Swarmer(2, "nope").Exchange("d", 1)));
        Assert.Equal(StatusCode.NotFound, unknownSwarm.Status);
        Assert.Equal(ErrorKinds.UnknownSwarm, unknownSwarm.Trailers[ErrorTrailers.Kind]);
        var notMember = Assert.Throws<RpcException>(() => t.Exchange(s.Exchange("stranger", 1)));
        Assert.Equal(StatusCode.NotFound, notMember.Status);
        Assert.Equal(ErrorKinds.NotAnnounced, notMember.Trailers[ErrorTrailers.Kind]);
        Assert.Equal(StatusCode.NotFound, Code(() => t.Status(new SwarmStatusRequest { SwarmId = new Swarmer(1, "nope").SwarmId })));
        Assert.Equal(0, t.AssignmentsInFlight);   // nothing was assigned by the refused calls
    }

    [Fact]
    public void Limits_bound_swarms_peers_chunks_and_assignments()
    {
        TrackerState t = State(new TrackerOptions { Seed = 1, MaxSwarms = 1, MaxPeersPerSwarm = 2, MaxChunksPerSwarm = 100 });
        var big = new Swarmer(101, "big");
        Assert.Equal(StatusCode.InvalidArgument, Assert.Throws<RpcException>(() => t.Announce(big.Announce(Swarmer.Peer("p")))).Status);

        var s = new Swarmer(100);
        t.Announce(s.Seeder(Swarmer.Peer("seed", maxUploads: 1000)));
        t.Announce(s.Announce(Swarmer.Peer("d")));
        Assert.Equal(StatusCode.ResourceExhausted, Assert.Throws<RpcException>(() => t.Announce(s.Announce(Swarmer.Peer("third")))).Status);
        Assert.Equal(StatusCode.ResourceExhausted,
            Assert.Throws<RpcException>(() => t.Announce(new Swarmer(1, "second").Announce(Swarmer.Peer("d")))).Status);

        Assert.Equal(64, t.Exchange(s.Exchange("d", 1000)).Assignments.Count);
    }

    [Fact]
    public void Leave_removes_the_peer_and_an_empty_swarm()
    {
        var s = new Swarmer(2);
        TrackerState t = State();
        t.Announce(s.Seeder(Swarmer.Peer("h")));
        t.Announce(s.Announce(Swarmer.Peer("d")));
        t.Leave(new LeaveRequest { PeerId = "h", SwarmId = s.SwarmId });
        Assert.All(t.Exchange(s.Exchange("d", 2)).Assignments, a => Assert.Equal("store", SourceOf(a)));
        t.Leave(new LeaveRequest { PeerId = "d", SwarmId = s.SwarmId });
        Assert.Equal(0, t.SwarmCount);
        Assert.Equal(0, t.AssignmentsInFlight);
    }
}
