using System.Globalization;
using Chain.ScaleBench;
using Spectre.Console;

namespace Chain.GatewayBench;

/// <summary>The printed table: gateway and direct side by side for each object size and operation, with the ratio.</summary>
public static class Report
{
    public static Table Build(BenchResults results)
    {
        var table = new Table().Title("S3 gateway vs client library (same cluster, same run)");
        foreach (string column in new[] { "objects", "op", "ops gw/direct", "gateway MB/s", "direct MB/s", "gw/direct MB/s",
                     "gateway p50 / p99 ms", "direct p50 / p99 ms", "gw/direct p50" })
            table.AddColumn(new TableColumn(column).RightAligned());
        foreach (Comparison c in Comparison.Pair(results.Phases))
        {
            table.AddRow(
                $"{ByteSize.Format(c.ObjectBytes)} x{c.Gateway.Workers}w",
                c.Op.ToString().ToUpperInvariant(),
                $"{c.Gateway.Operations}/{c.Direct.Operations}",
                F(c.Gateway.MegabytesPerSecond),
                F(c.Direct.MegabytesPerSecond),
                Comparison.FormatRatio(c.ThroughputRatio),
                $"{F(c.Gateway.P50Ms)} / {F(c.Gateway.P99Ms)}",
                $"{F(c.Direct.P50Ms)} / {F(c.Direct.P99Ms)}",
                Comparison.FormatRatio(c.LatencyRatio));
        }
        return table;
    }

    public static void Print(BenchResults results)
    {
        AnsiConsole.Write(Build(results));
        AnsiConsole.WriteLine("Gateway: path-style S3 over HTTP/1.1, SigV4 header auth, UNSIGNED-PAYLOAD bodies; every object one PutObject " +
            "(no multipart: the same single stream as the direct put). Direct: ChainClient. GETs checked by SHA-256. wx = concurrent workers.");
        foreach (string failure in results.Failures.Take(20))
            AnsiConsole.WriteLine($"FAILED: {failure}");
        if (results.Failures.Count > 20)
            AnsiConsole.WriteLine($"... and {results.Failures.Count - 20} more failures");
    }

    private static string F(double value) => value.ToString(value >= 100 ? "0" : "0.0", CultureInfo.InvariantCulture);
}
