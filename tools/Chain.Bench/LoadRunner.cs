using System.Diagnostics;

namespace Chain.Bench;

/// <summary>The measurement of one phase.</summary>
public sealed record PhaseResult(string Name, int Workers, long Ops, long Errors, TimeSpan Elapsed, double P50Ms, double P99Ms, double CpuIdlePercent, string? FirstError)
{
    public double OpsPerSecond => Elapsed > TimeSpan.Zero ? Ops / Elapsed.TotalSeconds : 0;
}

/// <summary>Runs an operation from K concurrent workers until a time bound or an operation bound is reached.</summary>
public static class LoadRunner
{
    /// <param name="operation">Called with the operation's sequence number (0-based, unique) and the worker index.</param>
    public static async Task<PhaseResult> RunAsync(string name, int workers, TimeSpan duration, long maxOps,
        Func<long, int, Task> operation, CancellationToken ct = default)
    {
        long next = -1;
        long errors = 0;
        string? firstError = null;
        var latencies = new List<long>[workers];
        CpuSample? cpuStart = CpuSample.Read();
        long start = Stopwatch.GetTimestamp();
        long deadline = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);

        async Task Worker(int index)
        {
            var mine = new List<long>(1024);
            latencies[index] = mine;
            await Task.Yield();
            while (!ct.IsCancellationRequested && Stopwatch.GetTimestamp() < deadline)
            {
                long sequence = Interlocked.Increment(ref next);
                if (sequence >= maxOps)
                    break;
                long t0 = Stopwatch.GetTimestamp();
                try
                {
                    await operation(sequence, index).ConfigureAwait(false);
                    mine.Add(Stopwatch.GetTimestamp() - t0);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    if (Interlocked.Increment(ref errors) == 1)
                        firstError = $"{e.GetType().Name}: {e.Message}";
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, workers).Select(Worker)).ConfigureAwait(false);
        TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
        CpuSample? cpuEnd = CpuSample.Read();

        long[] all = latencies.Where(l => l is not null).SelectMany(l => l).ToArray();
        Array.Sort(all);
        return new PhaseResult(name, workers, all.Length, errors, elapsed,
            PercentileMs(all, 0.50), PercentileMs(all, 0.99), CpuSample.IdlePercent(cpuStart, cpuEnd), firstError);
    }

    /// <summary>Nearest-rank percentile of sorted Stopwatch tick counts, in milliseconds.</summary>
    public static double PercentileMs(long[] sortedTicks, double quantile)
    {
        if (sortedTicks.Length == 0)
            return double.NaN;
        int rank = (int)Math.Ceiling(quantile * sortedTicks.Length) - 1;
        rank = Math.Clamp(rank, 0, sortedTicks.Length - 1);
        return sortedTicks[rank] * 1000.0 / Stopwatch.Frequency;
    }
}
