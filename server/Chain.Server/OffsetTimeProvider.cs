namespace Chain.Server;

/// <summary>
/// A clock whose wall time is shifted by a fixed offset (clock-skew injection, <c>--clock-offset-ms</c>). Only
/// <see cref="GetUtcNow"/> moves: timestamps and timers come from the inner provider, so durations, delays and
/// the monotonic clock are unaffected — as with a machine whose clock is set wrong but ticks at the right rate.
/// </summary>
internal sealed class OffsetTimeProvider : TimeProvider
{
    /// <summary>Largest offset accepted: ten years, far beyond any skew worth testing, far from DateTimeOffset's limits.</summary>
    public const long OffsetMsMax = 10L * 366 * 24 * 3600 * 1000;

    private readonly TimeProvider _inner;

    public OffsetTimeProvider(TimeProvider inner, TimeSpan offset)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (Math.Abs((long)offset.TotalMilliseconds) > OffsetMsMax)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, "clock offset out of range");
        _inner = inner;
        Offset = offset;
    }

    public TimeSpan Offset { get; }

    public override DateTimeOffset GetUtcNow() => _inner.GetUtcNow() + Offset;

    public override TimeZoneInfo LocalTimeZone => _inner.LocalTimeZone;

    public override long TimestampFrequency => _inner.TimestampFrequency;

    public override long GetTimestamp() => _inner.GetTimestamp();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        _inner.CreateTimer(callback, state, dueTime, period);
}
