namespace Chain.Agent.Tests;

public sealed class RateLimiterTests
{
    /// <summary>A clock that moves only when told (Reserve reads timestamps only).</summary>
    private sealed class ManualTime : TimeProvider
    {
        private long _ticks;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => _ticks;
        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    [Fact]
    public void Unlimited_never_waits()
    {
        var limiter = new RateLimiter(0, new ManualTime());
        for (int i = 0; i < 100; i++)
            Assert.Equal(TimeSpan.Zero, limiter.Reserve(1 << 20));
    }

    [Fact]
    public void Frames_beyond_the_burst_wait_for_the_rate()
    {
        var time = new ManualTime();
        var limiter = new RateLimiter(1000, time, burstBytes: 1000);
        Assert.Equal(TimeSpan.Zero, limiter.Reserve(1000));           // the burst
        Assert.Equal(TimeSpan.FromSeconds(0.5), limiter.Reserve(500));  // debt of 500 bytes at 1000 B/s
        Assert.Equal(TimeSpan.FromSeconds(1.5), limiter.Reserve(1000)); // queued behind the first debt
        time.Advance(TimeSpan.FromSeconds(1.5));
        Assert.Equal(TimeSpan.Zero, limiter.Reserve(0));
        Assert.Equal(TimeSpan.FromSeconds(0.25), limiter.Reserve(250));
    }

    [Fact]
    public void Idle_time_accumulates_at_most_the_burst()
    {
        var time = new ManualTime();
        var limiter = new RateLimiter(1000, time, burstBytes: 2000);
        Assert.Equal(TimeSpan.Zero, limiter.Reserve(2000));
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(TimeSpan.Zero, limiter.Reserve(2000));
        Assert.Equal(TimeSpan.FromSeconds(1), limiter.Reserve(1000));
    }

    [Fact]
    public void Long_run_rate_matches_the_cap()
    {
        var time = new ManualTime();
        var limiter = new RateLimiter(64 * 1024, time, burstBytes: 64 * 1024);
        var total = TimeSpan.Zero;
        for (int i = 0; i < 100; i++)
        {
            var wait = limiter.Reserve(16 * 1024);
            time.Advance(wait);
            total += wait;
        }
        // 100 frames of 16 KiB = 1600 KiB; the first 64 KiB are the burst: (1600 - 64) / 64 = 24 s.
        Assert.Equal(24.0, total.TotalSeconds, precision: 6);
    }
}
