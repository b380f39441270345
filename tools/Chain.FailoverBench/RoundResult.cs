namespace Chain.FailoverBench;

/// <summary>
/// One failover round. Times in ms, NaN when not observed. <see cref="SyncMs"/> runs from the first config that
/// lists the joiner as syncing to the first that lists it as a member (the master's view, polled every 10 ms;
/// promotion waits for the joiner's next heartbeat, every 500 ms). <see cref="LongestGapMs"/> is the longest time
/// without any acknowledged put between the kill and the rejoin.
/// </summary>
public sealed record RoundResult(
    int Round,
    string Role,
    string VictimId,
    string JoinerId,
    double DetectMs,
    double FailoverMs,
    double LongestGapMs,
    double RestartReadyMs,
    double RejoinMs,
    double SyncMs,
    long ChainDataBytes,
    long? SnapshotBytesSent,
    long? SnapshotBytesSkipped,
    double CpuIdlePercent)
{
    /// <summary>Chain data (sum of the sizes of the objects written so far) over the sync window, MB/s (10^6 B).</summary>
    public double SyncMBps => SyncMs > 0 ? ChainDataBytes / 1e6 / (SyncMs / 1000) : double.NaN;

    /// <summary>Bytes the tail reported sending in its snapshot over the sync window, MB/s (10^6 B).</summary>
    public double SentMBps => SyncMs > 0 && SnapshotBytesSent is { } sent ? sent / 1e6 / (SyncMs / 1000) : double.NaN;
}
