using Chain.Tools;
using Xunit;

namespace Chain.DistBench.Tests;

public class DistBenchOptionsTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public void Defaults_are_the_issue_s_first_setting()
    {
        DistBenchOptions options = DistBenchOptions.Parse([]);
        Assert.Equal(4, options.Peers);
        Assert.Equal(64 * MiB, options.SizeBytes);
        Assert.Equal(80_000_000, options.RateBitsPerSecond);
        Assert.Equal(80_000_000, options.OriginRateBitsPerSecond);
        Assert.Equal(9000, options.Mtu);
        Assert.Equal(3, options.Runs);
        Assert.Equal(new[] { "store", "bittorrent", "chain-p2p" }, options.Ways);
        Assert.Equal(TimeSpan.FromSeconds(300), options.WayTimeout);
        Assert.False(options.Help);
    }

    [Fact]
    public void Every_option_is_read_in_both_spellings()
    {
        DistBenchOptions options = DistBenchOptions.Parse(["--peers=16", "--size", "32MiB", "--rate", "20", "--origin-rate=100mbit",
            "--mtu", "1500", "--runs", "5", "--ways=bittorrent,store", "--timeout", "90", "--nodes=1", "--dir", "/tmp/x", "--keep"]);
        Assert.Equal(16, options.Peers);
        Assert.Equal(32 * MiB, options.SizeBytes);
        Assert.Equal(20_000_000, options.RateBitsPerSecond);
        Assert.Equal(100_000_000, options.OriginRateBitsPerSecond);
        Assert.Equal(1500, options.Mtu);
        Assert.Equal(5, options.Runs);
        Assert.Equal(new[] { "bittorrent", "store" }, options.Ways);
        Assert.Equal(TimeSpan.FromSeconds(90), options.WayTimeout);
        Assert.Equal(1, options.Nodes);
        Assert.Equal("/tmp/x", options.Directory);
        Assert.True(options.Keep);
        Assert.True(DistBenchOptions.Parse(["--help"]).Help);
    }

    [Theory]
    [InlineData("80", 80_000_000)]
    [InlineData("80mbit", 80_000_000)]
    [InlineData("2.5Mbit", 2_500_000)]
    [InlineData("500kbit", 500_000)]
    [InlineData("1gbit", 1_000_000_000)]
    public void Rates_are_bits_per_second_with_mbit_as_the_default_unit(string text, long expected) =>
        Assert.Equal(expected, DistBenchOptions.ParseRate("--rate", text));

    [Theory]
    [InlineData("--peers", "0")]
    [InlineData("--peers", "65")]
    [InlineData("--size", "1KiB")]
    [InlineData("--size", "lots")]
    [InlineData("--rate", "0.01")]
    [InlineData("--rate", "fast")]
    [InlineData("--rate", "-5")]
    [InlineData("--mtu", "575")]
    [InlineData("--mtu", "9001")]
    [InlineData("--runs", "0")]
    [InlineData("--ways", "ftp")]
    [InlineData("--ways", "store,store")]
    [InlineData("--ways", ",")]
    [InlineData("--timeout", "0")]
    [InlineData("--bogus", "1")]
    public void Bad_values_are_usage_errors(string option, string value) =>
        Assert.Throws<UsageException>(() => DistBenchOptions.Parse([option, value]));

    [Fact]
    public void A_missing_value_is_a_usage_error() =>
        Assert.Throws<UsageException>(() => DistBenchOptions.Parse(["--peers"]));
}
