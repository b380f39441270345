using Xunit;

namespace Chain.DistBench.Tests;

public class FiguresTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public void Bound_of_the_first_setting_is_F_over_u_s()
    {
        // 64 MiB = 536,870,912 bit; at 80 Mbit/s: 6.7109 s (F/u_s = F/d_min); N·F/(u_s+4u) = 4/5 of that.
        Assert.Equal(6.7108864, Figures.LowerBoundSeconds(64 * MiB, 80e6, 4, 80e6), 6);
    }

    [Fact]
    public void Bound_of_the_second_setting_is_F_over_u_s()
    {
        // 32 MiB = 268,435,456 bit; at 20 Mbit/s: 13.4218 s; the aggregate term is 16/17 of it.
        Assert.Equal(13.4217728, Figures.LowerBoundSeconds(32 * MiB, 20e6, 16, 20e6), 6);
    }

    [Fact]
    public void Bound_is_the_aggregate_upload_term_when_peers_upload_little()
    {
        // F = 1 MB = 8e6 bit, u_s = 10 Mbit/s, 4 peers uploading 1 Mbit/s, downloading 100 Mbit/s:
        // F/u_s = 0.8 s, F/d_min = 0.08 s, N·F/(u_s+Σu) = 32e6/14e6 = 2.285714 s.
        double bound = Figures.LowerBoundSeconds(1_000_000, 10e6, [1e6, 1e6, 1e6, 1e6], [100e6, 100e6, 100e6, 100e6]);
        Assert.Equal(32.0 / 14.0, bound, 9);
    }

    [Fact]
    public void Bound_is_the_slowest_download_when_one_peer_downloads_slowly()
    {
        // F = 8e6 bit, u_s = 100 Mbit/s: 0.08 s; downloads 50 and 8 Mbit/s: F/d_min = 1 s; aggregate 16e6/300e6.
        Assert.Equal(1.0, Figures.LowerBoundSeconds(1_000_000, 100e6, [100e6, 100e6], [50e6, 8e6]), 9);
    }

    [Fact]
    public void Bound_rejects_inconsistent_rates()
    {
        Assert.Throws<ArgumentException>(() => Figures.LowerBoundSeconds(1, 1e6, [1e6], [1e6, 1e6]));
        Assert.Throws<ArgumentException>(() => Figures.LowerBoundSeconds(1, 1e6, [1e6], [0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Figures.LowerBoundSeconds(1, 0, [1e6], [1e6]));
    }

    [Fact]
    public void Median_and_spread()
    {
        Assert.Equal(3, Figures.Median([5, 1, 3]));
        Assert.Equal(2.5, Figures.Median([4, 1, 3, 2]));
        Assert.Equal(7, Figures.Median([7]));
        Assert.True(double.IsNaN(Figures.Median([])));
        Assert.Equal((1.0, 5.0), Figures.Spread([5, 1, 3]));
        Assert.True(double.IsNaN(Figures.Spread([]).Min));
        Assert.Equal(2, Figures.Ratio(6, 3));
        Assert.True(double.IsNaN(Figures.Ratio(6, 0)));
        Assert.True(double.IsNaN(Figures.Ratio(double.NaN, 3)));
    }

    [Theory]
    [InlineData(4 * MiB, 15)]
    [InlineData(32 * MiB, 17)]
    [InlineData(64 * MiB, 18)]
    [InlineData(1024 * MiB, 22)]
    [InlineData(8L * 1024 * MiB, 22)]
    [InlineData(100_000, 15)]
    public void Pieces_are_about_256_between_32KiB_and_4MiB(long size, int exponent) =>
        Assert.Equal(exponent, BitTorrentWay.PieceExponent(size));

    [Fact]
    public void Info_hash_and_scrape_answers_are_parsed()
    {
        string shown = "Mode: single\nInfo Hash: 10f6c80c1eda496bf75de04f6af83114b1ab0860\nPiece Length: 64KiB\n";
        Assert.Equal("10f6c80c1eda496bf75de04f6af83114b1ab0860", BitTorrentWay.ParseInfoHash(shown));
        Assert.Null(BitTorrentWay.ParseInfoHash("Info Hash: xyz\n"));
        Assert.Null(BitTorrentWay.ParseInfoHash("nothing"));
        Assert.Equal(3, BitTorrentWay.ScrapeComplete("d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei3e10:downloadedi0e10:incompletei1eeee"));
        Assert.Null(BitTorrentWay.ScrapeComplete("d5:filesdee"));
    }
}
