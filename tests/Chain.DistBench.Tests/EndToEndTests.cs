using Chain.Harness;
using Xunit;
using Xunit.Abstractions;

namespace Chain.DistBench.Tests;

/// <summary>A tiny real run: 2 peers, 4 MiB, 40 Mbit/s links, every way (the store, BitTorrent, Chain's tier). Root only (fails, never skips, otherwise: CI runs as root).</summary>
[Trait("Category", "Integration")]
public class EndToEndTests
{
    private const long MiB = 1024 * 1024;
    private readonly ITestOutputHelper _output;

    public EndToEndTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task Tiny_run_distributes_verified_copies_at_the_shaped_rate_and_leaves_no_namespaces()
    {
        if (BenchRun.Unavailable() is { } reason)
            Assert.Fail($"the distribution benchmark needs root with ip, iptables, tc and ethtool (scripts/setup-deps.sh): {reason}");
        DistBenchOptions options = DistBenchOptions.Parse(["--peers", "2", "--size", "4MiB", "--rate", "40", "--runs", "1", "--timeout", "40", "--nodes", "1"]);
        string root = Path.Combine(Path.GetTempPath(), "chain-distbench-test-" + Guid.NewGuid().ToString("N")[..8]);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        BenchResults results;
        try
        {
            results = await BenchRun.RunAsync(options, root, m => _output.WriteLine(m), limit.Token);
        }
        finally
        {
            LocalCluster.TryDeleteDirectory(root);
        }

        Assert.Empty(results.Failures);
        Assert.All(results.Calibrations, c => Assert.True(c.Ok, $"{c.Path}: {c.GoodputBitsPerSecond / 1e6:0.0} Mbit/s over {c.RateBitsPerSecond / 1e6} shaped"));
        Assert.Equal(2, results.Calibrations.Count);
        double fOverD = 4 * MiB * 8 / 40e6; // 0.84 s: no peer can have its copy sooner through a 40 Mbit/s link
        foreach (string name in new[] { "store", "bittorrent", "chain-p2p" })
        {
            WayResults way = results.Ways.Single(w => w.Name == name);
            Assert.Empty(way.Failures);
            WayRun run = Assert.Single(way.Runs);
            Assert.Equal(2, run.PeerSeconds.Count);
            Assert.All(run.PeerSeconds, s => Assert.True(s >= 0.9 * fOverD, $"{name}: a peer done after {s:0.00} s, faster than its shaped link allows"));
        }
        // The store serves both peers through the origin's one link: at least 2·F/u_s.
        Assert.True(results.Ways.Single(w => w.Name == "store").Runs[0].PeerSeconds.Max() >= 0.9 * 2 * fOverD);
        Assert.False(results.AnyFailed);

        string namespaces = await Shell.RunAsync("ip", "netns", "list");
        Assert.DoesNotContain(results.NetworkTag + "-", namespaces);
    }
}
