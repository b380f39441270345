using System.Globalization;

namespace Chain.GatewayBench;

/// <summary>Which way the bytes went: S3 requests to the gateway, or the client library straight to the nodes.</summary>
public enum BenchPath
{
    Gateway,
    Direct,
}

public enum BenchOp
{
    Put,
    Get,
}

/// <summary>
/// One measured phase: <see cref="Operations"/> operations of <see cref="ObjectBytes"/> each in <see cref="Elapsed"/>
/// wall time (all workers together), and each operation's latency.
/// </summary>
public sealed record PhaseFigures(BenchPath Path, BenchOp Op, long ObjectBytes, int Workers, TimeSpan Elapsed, IReadOnlyList<TimeSpan> Latencies)
{
    public int Operations => Latencies.Count;

    public long TotalBytes => ObjectBytes * Operations;

    /// <summary>Throughput in MB/s (10^6 bytes per second) over the phase's wall time; 0 for an empty phase.</summary>
    public double MegabytesPerSecond => Operations == 0 || Elapsed <= TimeSpan.Zero ? 0 : TotalBytes / Elapsed.TotalSeconds / 1e6;

    public double MeanMs => Operations == 0 ? 0 : Latencies.Average(l => l.TotalMilliseconds);

    public double P50Ms => PercentileMs(0.50);

    public double P99Ms => PercentileMs(0.99);

    /// <summary>Nearest-rank percentile of the latencies (the smallest latency with at least q of them at or below it).</summary>
    public double PercentileMs(double q)
    {
        if (Operations == 0)
            return 0;
        double[] sorted = Latencies.Select(l => l.TotalMilliseconds).Order().ToArray();
        int rank = (int)Math.Ceiling(q * sorted.Length);
        return sorted[Math.Clamp(rank, 1, sorted.Length) - 1];
    }
}

/// <summary>The gateway's figure over the direct one for the same operation and size (throughput and latency).</summary>
public sealed record Comparison(BenchOp Op, long ObjectBytes, PhaseFigures Gateway, PhaseFigures Direct)
{
    /// <summary>Gateway throughput / direct throughput: 1 means no overhead, 0.5 half the speed. NaN when direct is 0.</summary>
    public double ThroughputRatio => Direct.MegabytesPerSecond == 0 ? double.NaN : Gateway.MegabytesPerSecond / Direct.MegabytesPerSecond;

    /// <summary>Gateway median latency / direct median latency. NaN when direct is 0.</summary>
    public double LatencyRatio => Direct.P50Ms == 0 ? double.NaN : Gateway.P50Ms / Direct.P50Ms;

    /// <summary>Pairs each gateway phase with the direct phase of the same operation and size, in the order given.</summary>
    public static IReadOnlyList<Comparison> Pair(IEnumerable<PhaseFigures> phases)
    {
        var list = phases.ToList();
        var pairs = new List<Comparison>();
        foreach (PhaseFigures gateway in list.Where(p => p.Path == BenchPath.Gateway))
        {
            if (list.FirstOrDefault(p => p.Path == BenchPath.Direct && p.Op == gateway.Op && p.ObjectBytes == gateway.ObjectBytes) is { } direct)
                pairs.Add(new Comparison(gateway.Op, gateway.ObjectBytes, gateway, direct));
        }
        return pairs;
    }

    public static string FormatRatio(double ratio) => double.IsNaN(ratio) ? "-" : ratio.ToString("0.00", CultureInfo.InvariantCulture);
}

/// <summary>What a run produced: the phases, and anything that went wrong (a failed or mismatched operation).</summary>
public sealed class BenchResults
{
    public List<PhaseFigures> Phases { get; } = [];
    public List<string> Failures { get; } = [];
}
