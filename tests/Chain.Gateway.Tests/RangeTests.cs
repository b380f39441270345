using Chain.Gateway.S3;

namespace Chain.Gateway.Tests;

public sealed class RangeTests
{
    [Theory]
    [InlineData("bytes=0-9", 100, 0, 10)]
    [InlineData("bytes=90-", 100, 90, 10)]
    [InlineData("bytes=95-200", 100, 95, 5)]
    [InlineData("bytes=-10", 100, 90, 10)]
    [InlineData("bytes=-500", 100, 0, 100)]
    public void SatisfiableRanges(string header, long size, long offset, long length) =>
        Assert.Equal((offset, length), S3Api.ParseRange(header, size));

    [Theory]
    [InlineData("")]
    [InlineData("bytes=0-1,5-6")]
    [InlineData("items=0-1")]
    [InlineData("bytes=9-3")]
    public void IgnoredRanges_ServeTheWholeObject(string header) => Assert.Null(S3Api.ParseRange(header, 100));

    [Theory]
    [InlineData("bytes=100-", 100)]
    [InlineData("bytes=500-600", 100)]
    [InlineData("bytes=-0", 100)]
    [InlineData("bytes=0-0", 0)]
    public void UnsatisfiableRanges_Are416(string header, long size)
    {
        var e = Assert.Throws<S3Exception>(() => S3Api.ParseRange(header, size));
        Assert.Equal((416, "InvalidRange"), (e.Status, e.Code));
    }
}
