using Spectre.Console;
using Xunit;

namespace Chain.DistBench.Tests;

public class ReportTests
{
    private static BenchResults Sample()
    {
        var results = new BenchResults { Options = DistBenchOptions.Parse(["--peers", "2", "--size", "64MiB", "--rate", "80", "--runs", "3"]) };
        var store = new WayResults { Name = "store" };
        store.Runs.Add(new WayRun([10, 14], 50));
        store.Runs.Add(new WayRun([12, 13], 40));
        store.Runs.Add(new WayRun([11, 16], 60));
        var bittorrent = new WayResults { Name = "bittorrent" };
        bittorrent.Runs.Add(new WayRun([6, 7], 10));
        bittorrent.Failures.Add("run 2: TimeoutException: too slow");
        results.Ways.Add(store);
        results.Ways.Add(bittorrent);
        results.Ways.Add(new WayResults { Name = "chain-p2p", Unavailable = "not available yet: the tier is not built" });
        results.Calibrations.Add(new CalibrationResult("origin → peer 1", 80_000_000, 15_000_000, 76_000_000));
        return results;
    }

    [Fact]
    public void Summary_takes_the_median_and_spread_of_the_last_peer_over_runs()
    {
        BenchResults results = Sample();
        Report.WaySummary s = Report.Summarize(results.Ways[0], results.BoundSeconds)!;
        Assert.Equal(3, s.Runs);
        Assert.Equal(14, s.LastMedian); // last peers 14, 13, 16
        Assert.Equal(13, s.LastMin);
        Assert.Equal(16, s.LastMax);
        Assert.Equal(11, s.PeerMin); // per-run minima 10, 12, 11
        Assert.Equal(12.5, s.PeerMedian); // per-run medians 12, 12.5, 13.5
        Assert.Equal(40, s.CpuIdleMin);
        Assert.False(s.CpuSaturated);
        Assert.Equal(14 / 6.7108864, s.BoundRatio, 6);
        Assert.True(Report.Summarize(results.Ways[1], results.BoundSeconds)!.CpuSaturated);
        Assert.Null(Report.Summarize(results.Ways[2], results.BoundSeconds));
    }

    [Fact]
    public void Ratios_name_chain_over_bittorrent_and_say_when_it_is_unknown()
    {
        string[] lines = Report.Ratios(Sample()).ToArray();
        Assert.Equal("chain-p2p / bittorrent (last peer, medians): n/a", lines[0]);
        Assert.Equal("store / bittorrent (last peer, medians): 2.00x", lines[1]);
    }

    [Fact]
    public void Table_shows_every_way_with_its_state()
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 250;
        BenchResults results = Sample();
        console.Write(Report.Build(results));
        string text = writer.ToString();
        Assert.Contains("MTU 9000: lower bound 6.71 s", text);
        Assert.Contains("3/3", text);
        Assert.Contains("14.00", text);
        Assert.Contains("13.00-16.00", text);
        Assert.Contains("2.09x", text);
        Assert.Contains("CPU-saturated", text);
        Assert.Contains("FAILED 1x", text);
        Assert.Contains("not available yet", text);
        Assert.True(results.AnyFailed);
        Assert.True(results.Calibrations[0].Ok);
        Assert.False(new CalibrationResult("x", 80_000_000, 1, 70_000_000).Ok);
    }
}
