using System.Security.Cryptography;
using Chain.Bench;
using Chain.Client;
using Xunit;

namespace Chain.ScaleBench.Tests;

public class ByteSizeTests
{
    [Theory]
    [InlineData("0", 0L)]
    [InlineData("4096", 4096L)]
    [InlineData("4KiB", 4096L)]
    [InlineData("4k", 4096L)]
    [InlineData("256MiB", 256L * 1024 * 1024)]
    [InlineData("5GiB", 5L * 1024 * 1024 * 1024)]
    [InlineData("5 gib", 5L * 1024 * 1024 * 1024)]
    [InlineData("1.5G", 1536L * 1024 * 1024)]
    [InlineData("2MB", 2_000_000L)]
    [InlineData("17B", 17L)]
    public void Sizes_parse(string text, long expected) => Assert.Equal(expected, ByteSize.TryParse(text));

    [Theory]
    [InlineData("")]
    [InlineData("GiB")]
    [InlineData("-1GiB")]
    [InlineData("1.5B")]
    [InlineData("ten")]
    [InlineData("99999999999TiB")]
    [InlineData("1 GiB extra")]
    public void Bad_sizes_are_refused(string text) => Assert.Null(ByteSize.TryParse(text));
}

public class ScaleOptionsTests
{
    private const long GiB = 1024L * 1024 * 1024;

    [Fact]
    public void Defaults_follow_the_brief()
    {
        ScaleOptions options = ScaleOptions.Parse([]);
        Assert.Equal(GiB, options.ObjectBytes);
        Assert.Equal(GiB, options.DiskBytes);
        Assert.Equal(1000, options.Keys);
        Assert.Equal(4096, options.ValueBytes);
        Assert.Equal(32, options.Workers);
        Assert.Equal(10, options.Seconds);
        Assert.False(options.BigProof);
        Assert.Equal(GiB + 8 * GiB, options.RequiredFreeBytes);
    }

    [Fact]
    public void The_disk_file_follows_the_object_size_unless_given()
    {
        Assert.Equal(256L << 20, ScaleOptions.Parse(["--size", "256MiB"]).DiskBytes);
        Assert.Equal(64L << 20, ScaleOptions.Parse(["--size", "256MiB", "--disk-size=64MiB"]).DiskBytes);
    }

    [Fact]
    public void The_proof_defaults_to_5_GiB_below_512_MiB_and_needs_8_times_the_size_free()
    {
        ScaleOptions proof = ScaleOptions.Parse(["--big-proof"]);
        Assert.Equal(5 * GiB, proof.ObjectBytes);
        Assert.Equal(512L << 20, proof.RssLimitBytes);
        Assert.Equal(40 * GiB, proof.RequiredFreeBytes);
        Assert.Equal(8 * GiB, ScaleOptions.Parse(["--big-proof", "--size", "1GiB"]).RequiredFreeBytes);
    }

    [Theory]
    [InlineData("--size", "lots")]
    [InlineData("--size", "0")]
    [InlineData("--workers", "0")]
    [InlineData("--value-size", "65MiB")]
    [InlineData("--rss-limit", "1KiB")]
    [InlineData("--frobnicate")]
    [InlineData("--skip-disk", "--skip-large", "--skip-reads")]
    [InlineData("--big-proof", "--skip-disk")]
    [InlineData("--chain", "./chain")]
    [InlineData("--keys")]
    public void Bad_command_lines_are_usage_errors(params string[] args) =>
        Assert.Throws<Chain.Tools.UsageException>(() => ScaleOptions.Parse(args));
}

public class StreamTests
{
    [Fact]
    public void The_pattern_is_a_function_of_the_position()
    {
        const int length = 100_003;
        var whole = new byte[length];
        Assert.Equal(length, new PatternStream(length, 42).ReadAtLeast(whole, length, throwOnEndOfStream: false));

        // Odd-sized reads from odd offsets after a seek give the same bytes.
        using var stream = new PatternStream(length, 42);
        var pieces = new byte[length];
        stream.Seek(12_345, SeekOrigin.Begin);
        int at = 12_345;
        var buffer = new byte[7_777];
        int read;
        while ((read = stream.Read(buffer, 0, 1 + at % buffer.Length)) > 0)
        {
            buffer.AsSpan(0, read).CopyTo(pieces.AsSpan(at));
            at += read;
        }
        Assert.Equal(length, at);
        stream.Position = 0;
        Assert.Equal(12_345, stream.Read(pieces, 0, 12_345));
        Assert.Equal(whole, pieces);
    }

    [Fact]
    public void Seeds_and_chunks_differ_so_nothing_is_deduplicated()
    {
        const int chunk = 1024 * 1024;
        var data = new byte[8 * chunk];
        new PatternStream(data.Length, 7).ReadExactly(data);
        var digests = Enumerable.Range(0, 8).Select(i => Convert.ToHexString(SHA256.HashData(data.AsSpan(i * chunk, chunk)))).ToHashSet();
        Assert.Equal(8, digests.Count);

        var other = new byte[chunk];
        new PatternStream(chunk, 8).ReadExactly(other);
        Assert.False(other.AsSpan().SequenceEqual(data.AsSpan(0, chunk)));
    }

    [Fact]
    public void The_pattern_stream_ends_at_its_length()
    {
        using var stream = new PatternStream(10, 1);
        var buffer = new byte[64];
        Assert.Equal(10, stream.Read(buffer, 0, 64));
        Assert.Equal(0, stream.Read(buffer, 0, 64));
        Assert.Equal(10, stream.Length);
    }
}

public class ProofJudgementTests
{
    private const long Limit = 512L << 20;
    private static readonly CommandRun Ok = new("chain put", 0, TimeSpan.FromSeconds(1), 100L << 20, "", "");

    [Fact]
    public void Everything_below_the_limit_and_equal_digests_pass()
    {
        var peaks = new[] { new PeakMemory("chain put (client)", 0, 100L << 20), new PeakMemory("node1", 12, Limit - 1) };
        Assert.Empty(ProofResult.Judge(Limit, "ab", "AB", [Ok, Ok], peaks));
    }

    [Fact]
    public void A_peak_at_or_over_the_limit_fails()
    {
        List<string> problems = ProofResult.Judge(Limit, "ab", "ab", [Ok], [new PeakMemory("node2", 13, Limit)]);
        Assert.Contains(problems, p => p.Contains("node2", StringComparison.Ordinal));
    }

    [Fact]
    public void An_unknown_peak_fails()
    {
        Assert.NotEmpty(ProofResult.Judge(Limit, "ab", "ab", [Ok], [new PeakMemory("chain get (client)", 0, null)]));
    }

    [Fact]
    public void Different_digests_a_missing_output_or_a_failed_command_fail()
    {
        Assert.NotEmpty(ProofResult.Judge(Limit, "ab", "cd", [Ok], []));
        Assert.NotEmpty(ProofResult.Judge(Limit, "ab", null, [Ok], []));
        Assert.NotEmpty(ProofResult.Judge(Limit, "ab", "ab", [Ok with { ExitCode = 1, Stderr = "error: boom\n" }], []));
    }
}

public class ResultTests
{
    private static Transfer Of(string name, double mbps) => new(name, (long)(mbps * 1e6), TimeSpan.FromSeconds(1), 50);

    private static MixResult Mix(ReadTarget target, long ops, long readBytes) =>
        new(target, new PhaseResult("mix", 32, ops, 0, TimeSpan.FromSeconds(2), 1, 2, 50, null), ops, 0, readBytes);

    [Fact]
    public void Ratios_compare_against_raw_disk_and_raw_over_the_replicas_and_tail_reads()
    {
        var results = new ScaleResults();
        results.Disk.Add(Of("raw disk write (buffered + fsync)", 300));
        results.Disk.Add(Of("raw disk read (buffered)", 400));
        results.Disk.Add(Of("raw disk write (O_DIRECT + fsync)", 999));
        results.LargePut = Of("chain put", 30);
        results.LargeGet = Of("chain get", 100);
        results.Mix.Add(Mix(ReadTarget.Tail, 1000, 4_000_000));
        results.Mix.Add(Mix(ReadTarget.AnyReplica, 2500, 10_000_000));
        var ratios = results.Ratios().ToDictionary(r => r.Name, r => r.Value);
        Assert.Equal(0.1, ratios["chain put MB/s / raw write MB/s"], 6);
        Assert.Equal(0.3, ratios["chain put MB/s / (raw write MB/s / 3 replicas)"], 6);
        Assert.Equal(0.25, ratios["chain get MB/s / raw read MB/s"], 6);
        Assert.Equal(2.5, ratios["any-replica ops/s / tail ops/s (95/5 mix)"], 6);
        Assert.Equal(2.5, ratios["any-replica read MB/s / tail read MB/s"], 6);
    }

    [Fact]
    public void Missing_phases_give_no_ratio()
    {
        Assert.All(new ScaleResults().Ratios(), r => Assert.True(double.IsNaN(r.Value)));
    }

    [Fact]
    public void Saturated_cpu_is_flagged()
    {
        Assert.Equal("CPU SATURATED", ScaleResults.CpuNote(3));
        Assert.Equal("", ScaleResults.CpuNote(40));
        Assert.Equal("", ScaleResults.CpuNote(double.NaN));
    }
}

public class RawDiskTests
{
    [Fact]
    public void A_small_baseline_writes_and_reads_every_byte_and_leaves_no_file()
    {
        string directory = Path.Combine(Path.GetTempPath(), "scalebench-test-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            IReadOnlyList<Transfer> transfers = RawDisk.Measure(directory, 8L << 20, dropCache: false, _ => { }, CancellationToken.None);
            Assert.Contains(transfers, t => t.Name == "raw disk write (buffered + fsync)" && t.Bytes == 8L << 20 && t.MBps > 0);
            Assert.Contains(transfers, t => t.Name == "raw disk read (buffered)" && t.Bytes == 8L << 20 && t.MBps > 0 && t.Note!.StartsWith("CACHED", StringComparison.Ordinal));
            Assert.Empty(Directory.EnumerateFiles(directory));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
