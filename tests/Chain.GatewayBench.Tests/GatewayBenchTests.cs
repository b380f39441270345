using Chain.Harness;
using Chain.Tools;
using Xunit;

namespace Chain.GatewayBench.Tests;

public class GatewayBenchOptionsTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public void Defaults_follow_the_brief()
    {
        GatewayBenchOptions options = GatewayBenchOptions.Parse([]);
        Assert.Equal(MiB, options.SmallBytes);
        Assert.Equal(200, options.SmallCount);
        Assert.Equal(4, options.Workers);
        Assert.Equal(256 * MiB, options.LargeBytes);
        Assert.Equal(2, options.LargeCount);
        Assert.Equal(TimeSpan.FromSeconds(300), options.PhaseBound);
        Assert.False(options.Help);
    }

    [Fact]
    public void Every_option_is_read_in_both_spellings()
    {
        GatewayBenchOptions options = GatewayBenchOptions.Parse(["--small-size=64KiB", "--small-count", "8", "--workers=2",
            "--large-size", "5MiB", "--large-count=0", "--seconds", "1.5", "--chains=5", "--dir", "/tmp/x", "--keep"]);
        Assert.Equal(64 * 1024, options.SmallBytes);
        Assert.Equal(8, options.SmallCount);
        Assert.Equal(2, options.Workers);
        Assert.Equal(5 * MiB, options.LargeBytes);
        Assert.Equal(0, options.LargeCount);
        Assert.Equal(TimeSpan.FromSeconds(1.5), options.PhaseBound);
        Assert.Equal(5, options.Chains);
        Assert.Equal("/tmp/x", options.Directory);
        Assert.True(options.Keep);
        Assert.True(GatewayBenchOptions.Parse(["-h"]).Help);
    }

    [Theory]
    [InlineData("--small-size", "0")]
    [InlineData("--small-size", "65MiB")]
    [InlineData("--small-count", "0")]
    [InlineData("--workers", "0")]
    [InlineData("--large-size", "ten")]
    [InlineData("--large-count", "-1")]
    [InlineData("--seconds", "0")]
    [InlineData("--dir", " ")]
    public void Bad_values_are_usage_errors(string name, string value) =>
        Assert.Throws<UsageException>(() => GatewayBenchOptions.Parse([name, value]));

    [Fact]
    public void Unknown_arguments_and_missing_values_are_usage_errors()
    {
        Assert.Contains("unknown argument", Assert.Throws<UsageException>(() => GatewayBenchOptions.Parse(["--size", "1"])).Message);
        Assert.Contains("needs a value", Assert.Throws<UsageException>(() => GatewayBenchOptions.Parse(["--workers"])).Message);
    }

    [Fact]
    public void Free_space_covers_both_paths_three_replicas_twice_plus_a_GiB()
    {
        GatewayBenchOptions options = GatewayBenchOptions.Parse(["--small-size", "1MiB", "--small-count", "10", "--large-size", "100MiB", "--large-count", "1"]);
        Assert.Equal((10 * MiB + 100 * MiB) * 2 * 3 * 2 + 1024 * MiB, options.RequiredFreeBytes);
    }
}

public class FiguresTests
{
    private static PhaseFigures Phase(BenchPath path, BenchOp op, long bytes, double seconds, params double[] latencyMs) =>
        new(path, op, bytes, 1, TimeSpan.FromSeconds(seconds), latencyMs.Select(TimeSpan.FromMilliseconds).ToArray());

    [Fact]
    public void Throughput_is_bytes_of_all_operations_over_wall_time_in_MB_per_second()
    {
        PhaseFigures phase = Phase(BenchPath.Direct, BenchOp.Put, 1_000_000, 2, 10, 20, 30, 40);
        Assert.Equal(4_000_000, phase.TotalBytes);
        Assert.Equal(2.0, phase.MegabytesPerSecond, 9);
        Assert.Equal(25.0, phase.MeanMs, 9);
    }

    [Fact]
    public void Percentiles_are_nearest_rank()
    {
        double[] latencies = Enumerable.Range(1, 100).Select(i => (double)i).Reverse().ToArray();
        PhaseFigures phase = Phase(BenchPath.Gateway, BenchOp.Get, 1, 1, latencies);
        Assert.Equal(50.0, phase.P50Ms, 9);
        Assert.Equal(99.0, phase.P99Ms, 9);
        Assert.Equal(1.0, phase.PercentileMs(0), 9);
        Assert.Equal(100.0, phase.PercentileMs(1), 9);
        Assert.Equal(7.0, Phase(BenchPath.Gateway, BenchOp.Get, 1, 1, 7).P99Ms, 9);
    }

    [Fact]
    public void An_empty_phase_has_zero_figures_and_its_ratio_is_not_a_number()
    {
        PhaseFigures empty = Phase(BenchPath.Direct, BenchOp.Get, 1, 1);
        Assert.Equal(0, empty.MegabytesPerSecond);
        Assert.Equal(0, empty.P50Ms);
        var c = new Comparison(BenchOp.Get, 1, Phase(BenchPath.Gateway, BenchOp.Get, 1, 1, 5), empty);
        Assert.True(double.IsNaN(c.ThroughputRatio));
        Assert.Equal("-", Comparison.FormatRatio(c.ThroughputRatio));
    }

    [Fact]
    public void Gateway_phases_pair_with_the_direct_phase_of_the_same_operation_and_size()
    {
        PhaseFigures[] phases =
        [
            Phase(BenchPath.Gateway, BenchOp.Put, 100, 1, 40),
            Phase(BenchPath.Gateway, BenchOp.Get, 100, 1, 20),
            Phase(BenchPath.Direct, BenchOp.Put, 100, 0.5, 10),
            Phase(BenchPath.Direct, BenchOp.Get, 100, 1, 20),
            Phase(BenchPath.Gateway, BenchOp.Put, 999, 1, 1),
        ];
        IReadOnlyList<Comparison> pairs = Comparison.Pair(phases);
        Assert.Equal(2, pairs.Count);
        Assert.Equal((BenchOp.Put, 100L), (pairs[0].Op, pairs[0].ObjectBytes));
        Assert.Equal(0.5, pairs[0].ThroughputRatio, 9);
        Assert.Equal(4.0, pairs[0].LatencyRatio, 9);
        Assert.Equal(1.0, pairs[1].ThroughputRatio, 9);
        Assert.Equal("0.50", Comparison.FormatRatio(pairs[0].ThroughputRatio));
    }
}

public class GatewayBenchSmokeTests
{
    [Fact]
    [Trait("Category", "Integration")]
    public async Task A_tiny_run_moves_and_verifies_every_object_on_both_paths()
    {
        GatewayBenchOptions options = GatewayBenchOptions.Parse(["--small-size", "64KiB", "--small-count", "4", "--workers", "2",
            "--large-size", "5MiB", "--large-count", "1", "--seconds", "20", "--chains", "2"]);
        string root = Path.Combine(Path.GetTempPath(), "chain-gwbench-test-" + Guid.NewGuid().ToString("N")[..8]);
        // The bound of the whole run (cluster start included): cancelled past it, the run throws and the test fails.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(25));
        BenchResults results;
        try
        {
            results = await BenchRun.RunAsync(options, root, _ => { }, timeout.Token);
        }
        finally
        {
            LocalCluster.TryDeleteDirectory(root);
        }
        Assert.Empty(results.Failures);
        Assert.Equal(8, results.Phases.Count);
        foreach (PhaseFigures phase in results.Phases)
        {
            Assert.Equal(phase.ObjectBytes == 5 * 1024 * 1024 ? 1 : 4, phase.Operations);
            Assert.True(phase.MegabytesPerSecond > 0, $"{phase.Path} {phase.Op} {phase.ObjectBytes}");
        }
        Assert.Equal(4, Comparison.Pair(results.Phases).Count);
    }
}
