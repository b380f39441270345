using System.Globalization;
using Chain.ScaleBench;
using Spectre.Console;

namespace Chain.DistBench;

/// <summary>The printed table: per way the last peer's completion time (median and spread over runs), the per-peer times, the ratio to the bound, CPU idle.</summary>
public static class Report
{
    /// <summary>Below this CPU idle share a run's times say more about the CPU than about the network.</summary>
    public const double SaturatedIdlePercent = 20;

    /// <summary>The figures of one way over its successful runs.</summary>
    public sealed record WaySummary(string Name, int Runs, double LastMedian, double LastMin, double LastMax, double PeerMin, double PeerMedian,
        double CpuIdleMin, double BoundRatio)
    {
        public bool CpuSaturated => CpuIdleMin < SaturatedIdlePercent;
    }

    public static WaySummary? Summarize(WayResults way, double boundSeconds)
    {
        if (way.Runs.Count == 0)
            return null;
        double[] last = way.Runs.Select(r => r.PeerSeconds.Max()).ToArray();
        var (lastMin, lastMax) = Figures.Spread(last);
        double lastMedian = Figures.Median(last);
        return new WaySummary(way.Name, way.Runs.Count, lastMedian, lastMin, lastMax,
            Figures.Median(way.Runs.Select(r => r.PeerSeconds.Min()).ToArray()),
            Figures.Median(way.Runs.Select(r => Figures.Median(r.PeerSeconds)).ToArray()),
            way.Runs.Min(r => r.CpuIdlePercent),
            Figures.Ratio(lastMedian, boundSeconds));
    }

    public static Table Build(BenchResults results)
    {
        DistBenchOptions o = results.Options;
        var table = new Table().Title($"Distribution of {ByteSize.Format(o.SizeBytes)} to {o.Peers} peers, links {Mbit(o.RateBitsPerSecond)}, " +
            $"origin {Mbit(o.OriginRateBitsPerSecond)}, MTU {o.Mtu}: lower bound {S(results.BoundSeconds)} s");
        foreach (string column in new[] { "way", "runs", "last peer s (median)", "spread s", "per-peer min / median s", "x bound", "CPU idle % (min)", "note" })
            table.AddColumn(new TableColumn(column).RightAligned());
        foreach (WayResults way in results.Ways)
        {
            string failures = way.Failures.Count == 0 ? "" : $"FAILED {way.Failures.Count}x";
            if (way.Unavailable is { } reason)
            {
                table.AddRow(way.Name, "0", "-", "-", "-", "-", "-", Markup.Escape(reason));
                continue;
            }
            if (Summarize(way, results.BoundSeconds) is not { } s)
            {
                table.AddRow(way.Name, $"0/{o.Runs}", "-", "-", "-", "-", "-", failures);
                continue;
            }
            string note = string.Join("; ", new[] { failures, s.CpuSaturated ? "CPU-saturated" : "" }.Where(n => n.Length > 0));
            table.AddRow(way.Name, $"{s.Runs}/{o.Runs}", S(s.LastMedian), $"{S(s.LastMin)}-{S(s.LastMax)}", $"{S(s.PeerMin)} / {S(s.PeerMedian)}",
                Ratio(s.BoundRatio), P(s.CpuIdleMin), note);
        }
        return table;
    }

    /// <summary>The ratios between ways: Chain's tier / BitTorrent (the goal: below 1), the store / BitTorrent.</summary>
    public static IEnumerable<string> Ratios(BenchResults results)
    {
        double Last(string name) =>
            results.Ways.FirstOrDefault(w => w.Name == name) is { } way && Summarize(way, results.BoundSeconds) is { } s ? s.LastMedian : double.NaN;
        double bt = Last(DistBenchOptions.BitTorrent);
        yield return $"chain-p2p / bittorrent (last peer, medians): {Ratio(Figures.Ratio(Last(DistBenchOptions.ChainP2P), bt))}";
        yield return $"store / bittorrent (last peer, medians): {Ratio(Figures.Ratio(Last(DistBenchOptions.Store), bt))}";
    }

    public static void Print(BenchResults results)
    {
        AnsiConsole.Write(Build(results));
        foreach (CalibrationResult c in results.Calibrations)
            AnsiConsole.WriteLine($"calibration {c.Path}: {c.GoodputBitsPerSecond / 1e6:0.0} Mbit/s goodput over {Mbit(c.RateBitsPerSecond)} shaped ({c.Ratio:P0}){(c.Ok ? "" : " OUT OF TOLERANCE")}");
        foreach (string line in Ratios(results))
            AnsiConsole.WriteLine(line);
        AnsiConsole.WriteLine("Lower bound D = max{F/u_s, F/d_min, N·F/(u_s+Σu_i)} (Kumar–Ross). Times from a common start to each peer's verified " +
            $"copy (SHA-256). Runs with CPU idle under {SaturatedIdlePercent:0}% are flagged CPU-saturated.");
        foreach (string failure in results.Failures.Concat(results.Ways.SelectMany(w => w.Failures.Select(f => $"{w.Name} {f}"))).Take(20))
            AnsiConsole.WriteLine($"FAILED: {failure}");
    }

    private static string Mbit(long bitsPerSecond) => (bitsPerSecond / 1e6).ToString("0.###", CultureInfo.InvariantCulture) + " Mbit/s";

    private static string S(double seconds) => double.IsNaN(seconds) ? "-" : seconds.ToString("0.00", CultureInfo.InvariantCulture);

    private static string P(double percent) => double.IsNaN(percent) ? "-" : percent.ToString("0", CultureInfo.InvariantCulture);

    private static string Ratio(double ratio) => double.IsNaN(ratio) ? "n/a" : ratio.ToString("0.00", CultureInfo.InvariantCulture) + "x";
}
