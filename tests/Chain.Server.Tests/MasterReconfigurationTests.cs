using Chain.Master;
using Chain.Protocol.V1;
using Chain.Storage.Memory;
using Microsoft.Extensions.Logging.Abstractions;

namespace Chain.Server.Tests;

/// <summary>The master's reconfiguration decisions, driven by a manual clock (no waiting).</summary>
public class MasterReconfigurationTests
{
    internal sealed class ManualClock : TimeProvider
    {
        private DateTimeOffset _wall = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        private long _monotonicTicks;
        public override DateTimeOffset GetUtcNow() => _wall;
        public override long GetTimestamp() => _monotonicTicks;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public void Advance(TimeSpan by)
        {
            _wall += by;
            _monotonicTicks += by.Ticks;
        }
        /// <summary>A wall-clock step (NTP, an operator): the monotonic clock does not move.</summary>
        public void StepWallClock(TimeSpan by) => _wall += by;
    }

    internal static (MasterService Master, ManualClock Clock) Start()
    {
        var clock = new ManualClock();
        var master = new MasterService(new EngineMasterStateStore(new MemoryEngine(new[] { EngineMasterStateStore.ColumnFamily })),
            new MasterOptions { ExpectNodes = 3, Chains = 1, Replicas = 3, FailureTimeout = TimeSpan.FromSeconds(1), SyncStallTimeout = TimeSpan.FromSeconds(5) },
            clock, NullLogger<MasterService>.Instance);
        return (master, clock);
    }

    private static async Task RegisterAsync(MasterService master, params string[] ids)
    {
        foreach (string id in ids)
            await master.RegisterAsync(new RegisterRequest { Node = new NodeInfo { NodeId = id, Address = $"http://127.0.0.1:{1000 + id.Length}" } }, default);
    }

    internal static async Task BeatAsync(MasterService master, string id, ulong applied = 0, ulong syncBytes = 0, bool caughtUp = false)
    {
        var request = new HeartbeatRequest { NodeId = id };
        ChainInfo chain = master.Current.Chains[0];
        if (chain.Syncing.Contains(id))
            request.Chains.Add(new ChainProgress { ChainId = 0, Epoch = chain.Epoch, AppliedSeq = applied, SyncBytes = syncBytes, CaughtUp = caughtUp });
        await master.HeartbeatAsync(request, default);
    }

    [Fact]
    public async Task A_silent_member_is_replaced_by_a_spare_that_joins_only_when_caught_up()
    {
        var (master, clock) = Start();
        await RegisterAsync(master, "n1", "n2", "n3");
        await RegisterAsync(master, "n4");
        Assert.Equal(new[] { "n1", "n2", "n3" }, master.Current.Chains[0].Nodes);

        clock.Advance(TimeSpan.FromSeconds(2));
        foreach (string id in new[] { "n1", "n2", "n4" })
            await BeatAsync(master, id);
        Assert.True(await master.SweepAsync(default));
        ChainInfo chain = master.Current.Chains[0];
        Assert.Equal(new[] { "n1", "n2" }, chain.Nodes);
        Assert.Equal(new[] { "n4" }, chain.Syncing);
        Assert.Contains("n3", chain.Former);
        ulong syncingEpoch = chain.Epoch;

        // Not caught up yet: still syncing. Caught up at the current epoch: appended as the tail, epoch bumped.
        await BeatAsync(master, "n4", applied: 10);
        Assert.Equal(new[] { "n4" }, master.Current.Chains[0].Syncing);
        await BeatAsync(master, "n4", applied: 20, caughtUp: true);
        Assert.Equal(new[] { "n1", "n2", "n4" }, master.Current.Chains[0].Nodes);
        Assert.Empty(master.Current.Chains[0].Syncing);
        Assert.Equal(syncingEpoch + 1, master.Current.Chains[0].Epoch);
    }

    [Fact]
    public async Task A_wall_clock_step_neither_ejects_live_nodes_nor_keeps_silent_ones()
    {
        var (master, clock) = Start();
        await RegisterAsync(master, "n1", "n2", "n3");
        clock.Advance(TimeSpan.FromMilliseconds(500));
        foreach (string id in new[] { "n1", "n2", "n3" })
            await BeatAsync(master, id);

        // The wall clock jumps an hour ahead: every heartbeat looks an hour old by wall time, but none is.
        clock.StepWallClock(TimeSpan.FromHours(1));
        Assert.False(await master.SweepAsync(default));
        Assert.Equal(new[] { "n1", "n2", "n3" }, master.Current.Chains[0].Nodes);

        // And jumping back does not keep a node that really went silent: n3 stops for longer than the timeout.
        clock.StepWallClock(TimeSpan.FromHours(-2));
        clock.Advance(TimeSpan.FromSeconds(2));
        foreach (string id in new[] { "n1", "n2" })
            await BeatAsync(master, id);
        Assert.True(await master.SweepAsync(default));
        Assert.Equal(new[] { "n1", "n2" }, master.Current.Chains[0].Nodes);
    }

    [Fact]
    public async Task A_former_member_is_preferred_over_a_spare()
    {
        var (master, clock) = Start();
        await RegisterAsync(master, "n1", "n2", "n3");
        await RegisterAsync(master, "n4");
        clock.Advance(TimeSpan.FromSeconds(2));
        foreach (string id in new[] { "n1", "n2" })
            await BeatAsync(master, id);
        // n3 and n4 both silent: n3 removed, no live candidate yet.
        await master.SweepAsync(default);
        Assert.Equal(new[] { "n1", "n2" }, master.Current.Chains[0].Nodes);
        Assert.Empty(master.Current.Chains[0].Syncing);
        // Both come back: the former member n3 is chosen.
        foreach (string id in new[] { "n1", "n2", "n3", "n4" })
            await BeatAsync(master, id);
        await master.SweepAsync(default);
        Assert.Equal(new[] { "n3" }, master.Current.Chains[0].Syncing);
    }

    [Fact]
    public async Task A_sync_that_stops_moving_is_abandoned_but_a_slow_one_that_moves_is_not()
    {
        var (master, clock) = Start();
        await RegisterAsync(master, "n1", "n2", "n3");
        await RegisterAsync(master, "n4");
        clock.Advance(TimeSpan.FromSeconds(2));
        foreach (string id in new[] { "n1", "n2", "n4" })
            await BeatAsync(master, id);
        await master.SweepAsync(default);
        Assert.Equal(new[] { "n4" }, master.Current.Chains[0].Syncing);

        // Bulk copy in progress: applied does not move but bytes do; never abandoned.
        for (int second = 1; second <= 8; second++)
        {
            clock.Advance(TimeSpan.FromSeconds(1));
            foreach (string id in new[] { "n1", "n2" })
                await BeatAsync(master, id);
            await BeatAsync(master, "n4", applied: 0, syncBytes: (ulong)second * 1000);
            await master.SweepAsync(default);
            Assert.Equal(new[] { "n4" }, master.Current.Chains[0].Syncing);
        }

        // Stuck: heartbeats go on, progress does not. After the stall timeout the joiner (never the tail) goes.
        ulong epoch = master.Current.Chains[0].Epoch;
        for (int second = 1; second <= 6; second++)
        {
            clock.Advance(TimeSpan.FromSeconds(1));
            foreach (string id in new[] { "n1", "n2" })
                await BeatAsync(master, id);
            await BeatAsync(master, "n4", applied: 0, syncBytes: 8000);
            if (await master.SweepAsync(default) && master.Current.Chains[0].Epoch > epoch)
                break;
        }
        ChainInfo chain = master.Current.Chains[0];
        Assert.Equal(new[] { "n1", "n2" }, chain.Nodes);
        Assert.True(chain.Epoch > epoch);
    }

    [Fact]
    public async Task Members_dying_together_leave_the_chain_with_its_head_even_when_their_silences_are_staggered()
    {
        var (master, clock) = Start();
        await RegisterAsync(master, "n1", "n2", "n3");
        clock.Advance(TimeSpan.FromSeconds(2));
        await BeatAsync(master, "n1");
        clock.Advance(TimeSpan.FromMilliseconds(200));
        await BeatAsync(master, "n2");
        await BeatAsync(master, "n3");
        // All three die now. At the first sweep only the head has been silent past the timeout; the others are
        // close to it: no reconfiguration yet (handing the chain to n2 would promote a dead node).
        clock.Advance(TimeSpan.FromMilliseconds(850));
        Assert.False(await master.SweepAsync(default));
        Assert.Equal(new[] { "n1", "n2", "n3" }, master.Current.Chains[0].Nodes);
        clock.Advance(TimeSpan.FromMilliseconds(250));
        Assert.True(await master.SweepAsync(default));
        Assert.Equal(new[] { "n1" }, master.Current.Chains[0].Nodes);
    }

    [Fact]
    public async Task A_lone_dead_head_is_removed_while_its_successors_heartbeat()
    {
        var (master, clock) = Start();
        await RegisterAsync(master, "n1", "n2", "n3");
        clock.Advance(TimeSpan.FromSeconds(2));
        for (int i = 0; i < 4; i++)
        {
            clock.Advance(TimeSpan.FromMilliseconds(300));
            await BeatAsync(master, "n2");
            await BeatAsync(master, "n3");
            await master.SweepAsync(default);
        }
        Assert.Equal(new[] { "n2", "n3" }, master.Current.Chains[0].Nodes);
        Assert.Contains("n1", master.Current.Chains[0].Former);
    }
}
