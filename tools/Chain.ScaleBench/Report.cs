using System.Globalization;
using System.Text.Json;
using Chain.Client;
using Spectre.Console;

namespace Chain.ScaleBench;

/// <summary>Everything one run measured; printed as plain tables and optionally written as JSON.</summary>
public sealed class ScaleResults
{
    /// <summary>Below this CPU idle share a phase is flagged as CPU-saturated (its figure measures the CPU, not the store).</summary>
    public const double SaturatedIdlePercent = 10;

    public List<Transfer> Disk { get; } = [];
    public Transfer? LargePut { get; set; }
    public Transfer? LargeGet { get; set; }
    public List<MixResult> Mix { get; } = [];
    public ProofResult? Proof { get; set; }
    public List<string> Failures { get; } = [];
    public double RunCpuIdlePercent { get; set; } = double.NaN;

    public Transfer? RawWrite => Disk.FirstOrDefault(t => t.Name.Contains("buffered", StringComparison.Ordinal) && t.Name.Contains("write", StringComparison.Ordinal));
    public Transfer? RawRead => Disk.FirstOrDefault(t => t.Name.Contains("buffered", StringComparison.Ordinal) && t.Name.Contains("read", StringComparison.Ordinal));
    public MixResult? MixOf(ReadTarget target) => Mix.FirstOrDefault(m => m.Target == target);

    /// <summary>The ratios the run is about: chain vs raw disk (also against raw/replicas), any replica vs tail.</summary>
    public IReadOnlyList<(string Name, double Value)> Ratios()
    {
        MixResult? tail = MixOf(ReadTarget.Tail);
        MixResult? any = MixOf(ReadTarget.AnyReplica);
        return
        [
            ("chain put MB/s / raw write MB/s", Ratio(LargePut?.MBps, RawWrite?.MBps)),
            ($"chain put MB/s / (raw write MB/s / {ScaleOptions.Replicas} replicas)", Ratio(LargePut?.MBps, RawWrite?.MBps / ScaleOptions.Replicas)),
            ("chain get MB/s / raw read MB/s", Ratio(LargeGet?.MBps, RawRead?.MBps)),
            ("any-replica ops/s / tail ops/s (95/5 mix)", Ratio(any?.Phase.OpsPerSecond, tail?.Phase.OpsPerSecond)),
            ("any-replica read MB/s / tail read MB/s", Ratio(any?.ReadMBps, tail?.ReadMBps)),
        ];
    }

    public static double Ratio(double? a, double? b) => a is { } x && b is { } y && y > 0 && !double.IsNaN(x) ? x / y : double.NaN;

    public static string CpuNote(double idlePercent) => idlePercent < SaturatedIdlePercent ? "CPU SATURATED" : "";
}

public static class Report
{
    public static void Print(ScaleResults results, ScaleOptions options)
    {
        if (results.Disk.Count > 0 || results.LargePut is not null || results.LargeGet is not null)
        {
            var table = new Table().Border(TableBorder.Ascii).Title("Sequential throughput (MB = 10^6 bytes)");
            table.AddColumn("phase", c => c.NoWrap());
            foreach (string column in new[] { "bytes", "seconds", "MB/s", "cpu idle %" })
                table.AddColumn(column, c => c.RightAligned());
            table.AddColumn("note");
            foreach (Transfer t in results.Disk.Concat(new[] { results.LargePut, results.LargeGet }.OfType<Transfer>()))
            {
                table.AddRow(Markup.Escape(t.Name), ByteSize.Format(t.Bytes), Format(t.Elapsed.TotalSeconds, "0.00"), Format(t.MBps, "0.0"),
                    Format(t.CpuIdlePercent, "0.0"), Markup.Escape(string.Join("; ", new[] { t.Note, ScaleResults.CpuNote(t.CpuIdlePercent) }.Where(n => !string.IsNullOrEmpty(n)))));
            }
            AnsiConsole.Write(table);
            if (results.LargePut is not null)
                AnsiConsole.WriteLine($"write factor: {ScaleOptions.Replicas} replicas on one machine, so every byte put is written {ScaleOptions.Replicas} times to this disk");
        }

        if (results.Mix.Count > 0)
        {
            var table = new Table().Border(TableBorder.Ascii)
                .Title($"Read scaling: {options.Workers} workers, {options.Keys} keys of {ByteSize.Format(options.ValueBytes)}, {100 - ClusterPhases.WritePercent}% reads / {ClusterPhases.WritePercent}% writes, {ScaleOptions.Nodes} nodes, {options.Chains} chains of {ScaleOptions.Replicas}");
            table.AddColumn("reads from", c => c.NoWrap());
            foreach (string column in new[] { "ops", "errors", "seconds", "ops/s", "reads/s", "read MB/s", "p50 ms", "p99 ms", "cpu idle %" })
                table.AddColumn(column, c => c.RightAligned());
            table.AddColumn("note");
            foreach (MixResult m in results.Mix)
            {
                table.AddRow(ClusterPhases.Describe(m.Target), m.Phase.Ops.ToString(CultureInfo.InvariantCulture), m.Phase.Errors.ToString(CultureInfo.InvariantCulture),
                    Format(m.Phase.Elapsed.TotalSeconds, "0.00"), Format(m.Phase.OpsPerSecond, "0"), Format(m.ReadsPerSecond, "0"), Format(m.ReadMBps, "0.00"),
                    Format(m.Phase.P50Ms, "0.00"), Format(m.Phase.P99Ms, "0.00"), Format(m.Phase.CpuIdlePercent, "0.0"), ScaleResults.CpuNote(m.Phase.CpuIdlePercent));
            }
            AnsiConsole.Write(table);
            foreach (MixResult m in results.Mix.Where(m => m.Phase.FirstError is not null))
                AnsiConsole.WriteLine($"{ClusterPhases.Describe(m.Target)}: first error: {m.Phase.FirstError}");
        }

        var ratios = results.Ratios().Where(r => !double.IsNaN(r.Value)).ToList();
        if (ratios.Count > 0)
        {
            var table = new Table().Border(TableBorder.Ascii).Title("Ratios (measured in this run)");
            table.AddColumn("ratio", c => c.NoWrap());
            table.AddColumn("value", c => c.RightAligned());
            foreach ((string name, double value) in ratios)
                table.AddRow(Markup.Escape(name), Format(value, "0.000"));
            AnsiConsole.Write(table);
        }

        if (results.Proof is { } proof)
            PrintProof(proof);
        AnsiConsole.WriteLine($"cpu idle over the whole run: {Format(results.RunCpuIdlePercent, "0.0")} % ({Environment.ProcessorCount} cores)");
        foreach (string failure in results.Failures)
            AnsiConsole.WriteLine($"failed: {failure}");
    }

    private static void PrintProof(ProofResult proof)
    {
        var transfers = new Table().Border(TableBorder.Ascii).Title($"Big-object proof: {ByteSize.Format(proof.Size)} through the chain command");
        transfers.AddColumn("step", c => c.NoWrap());
        transfers.AddColumn("seconds", c => c.RightAligned());
        transfers.AddColumn("MB/s", c => c.RightAligned());
        foreach (Transfer t in new[] { proof.Generate, proof.Put, proof.Get }.OfType<Transfer>())
            transfers.AddRow(Markup.Escape(t.Name), Format(t.Elapsed.TotalSeconds, "0.00"), Format(t.MBps, "0.0"));
        AnsiConsole.Write(transfers);
        AnsiConsole.WriteLine($"sha256 input  {proof.InputSha256}");
        AnsiConsole.WriteLine($"sha256 output {proof.OutputSha256 ?? "(none)"}");

        var peaks = new Table().Border(TableBorder.Ascii).Title($"Peak resident memory (VmHWM), limit {ByteSize.Format(proof.LimitBytes)}");
        peaks.AddColumn("process", c => c.NoWrap());
        peaks.AddColumn("pid", c => c.RightAligned());
        peaks.AddColumn("peak RSS", c => c.RightAligned());
        peaks.AddColumn("bytes", c => c.RightAligned());
        peaks.AddColumn("peak before the proof", c => c.RightAligned());
        peaks.AddColumn("verdict");
        foreach (PeakMemory peak in proof.Peaks)
        {
            string verdict = peak.PeakBytes is { } b ? (b < proof.LimitBytes ? "ok" : "OVER") : "unknown";
            peaks.AddRow(Markup.Escape(peak.Process), peak.Pid == 0 ? "-" : peak.Pid.ToString(CultureInfo.InvariantCulture),
                BigProof.FormatPeak(peak.PeakBytes), peak.PeakBytes?.ToString(CultureInfo.InvariantCulture) ?? "-",
                peak.StartBytes is null ? "-" : BigProof.FormatPeak(peak.StartBytes), verdict);
        }
        AnsiConsole.Write(peaks);
        foreach (string problem in proof.Problems)
            AnsiConsole.WriteLine($"problem: {problem}");
        AnsiConsole.WriteLine(proof.Passed ? "PROOF: PASS" : "PROOF: FAIL");
    }

    /// <summary>The figures as JSON (NaN becomes null).</summary>
    public static void WriteJson(string path, ScaleResults results, ScaleOptions options)
    {
        static object TransferJson(Transfer t) => new
        {
            name = t.Name, bytes = t.Bytes, seconds = t.Elapsed.TotalSeconds, mb_per_s = Num(t.MBps), cpu_idle_percent = Num(t.CpuIdlePercent), note = t.Note,
        };
        var document = new
        {
            cores = Environment.ProcessorCount,
            options = new
            {
                object_bytes = options.ObjectBytes, disk_bytes = options.DiskBytes, keys = options.Keys, value_bytes = options.ValueBytes,
                workers = options.Workers, seconds = options.Seconds, chains = options.Chains, replicas = ScaleOptions.Replicas,
                nodes = ScaleOptions.Nodes, big_proof = options.BigProof,
            },
            disk = results.Disk.Select(TransferJson).ToArray(),
            large_put = results.LargePut is null ? null : TransferJson(results.LargePut),
            large_get = results.LargeGet is null ? null : TransferJson(results.LargeGet),
            write_factor = ScaleOptions.Replicas,
            mix = results.Mix.Select(m => new
            {
                read_from = m.Target.ToString(), ops = m.Phase.Ops, errors = m.Phase.Errors, seconds = m.Phase.Elapsed.TotalSeconds,
                ops_per_s = Num(m.Phase.OpsPerSecond), reads = m.Reads, writes = m.Writes, read_mb_per_s = Num(m.ReadMBps),
                p50_ms = Num(m.Phase.P50Ms), p99_ms = Num(m.Phase.P99Ms), cpu_idle_percent = Num(m.Phase.CpuIdlePercent), first_error = m.Phase.FirstError,
            }).ToArray(),
            ratios = results.Ratios().ToDictionary(r => r.Name, r => Num(r.Value)),
            proof = results.Proof is not { } proof ? null : new
            {
                size = proof.Size, input_sha256 = proof.InputSha256, output_sha256 = proof.OutputSha256, limit_bytes = proof.LimitBytes,
                passed = proof.Passed, problems = proof.Problems,
                put_seconds = proof.Put?.Elapsed.TotalSeconds, get_seconds = proof.Get?.Elapsed.TotalSeconds,
                peaks = proof.Peaks.Select(p => new { process = p.Process, pid = p.Pid, peak_bytes = p.PeakBytes, peak_before_bytes = p.StartBytes }).ToArray(),
            },
            cpu_idle_run_percent = Num(results.RunCpuIdlePercent),
            failures = results.Failures,
        };
        File.WriteAllText(path, JsonSerializer.Serialize(document, new JsonSerializerOptions { WriteIndented = true }));
    }

    private static double? Num(double value) => double.IsNaN(value) || double.IsInfinity(value) ? null : value;

    private static string Format(double number, string format) =>
        double.IsNaN(number) ? "-" : number.ToString(format, CultureInfo.InvariantCulture);
}
