namespace Chain.Agent;

/// <summary>
/// A token bucket in bytes per second (0: unlimited), charged per frame. A frame larger than the tokens at hand is let
/// through after the wait that pays its debt, so callers are served in order and the long-run rate never exceeds the
/// cap; at most <see cref="BurstBytes"/> accumulate while idle.
/// </summary>
public sealed class RateLimiter
{
    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private double _tokens;
    private long _lastTimestamp;

    public RateLimiter(long bytesPerSecond, TimeProvider? time = null, long? burstBytes = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytesPerSecond);
        BytesPerSecond = bytesPerSecond;
        _time = time ?? TimeProvider.System;
        BurstBytes = burstBytes ?? Math.Max(256 * 1024, bytesPerSecond / 10);
        _tokens = BurstBytes;
        _lastTimestamp = _time.GetTimestamp();
    }

    public long BytesPerSecond { get; }
    public long BurstBytes { get; }

    /// <summary>Takes <paramref name="bytes"/> from the bucket and returns how long the caller must wait before sending them.</summary>
    public TimeSpan Reserve(int bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (BytesPerSecond == 0)
            return TimeSpan.Zero;
        lock (_gate)
        {
            long now = _time.GetTimestamp();
            double elapsed = _time.GetElapsedTime(_lastTimestamp, now).TotalSeconds;
            _lastTimestamp = now;
            _tokens = Math.Min(BurstBytes, _tokens + elapsed * BytesPerSecond);
            _tokens -= bytes;
            return _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / BytesPerSecond);
        }
    }

    /// <summary>Waits until <paramref name="bytes"/> may be sent.</summary>
    public Task WaitAsync(int bytes, CancellationToken cancellationToken = default)
    {
        var wait = Reserve(bytes);
        return wait <= TimeSpan.Zero ? Task.CompletedTask : Task.Delay(wait, _time, cancellationToken);
    }
}
