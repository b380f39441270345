using Chain.Rpc.Tests.V1;
using Xunit;

namespace Chain.Rpc.Tests;

/// <summary>The shared wire helpers: framing, percent-encoding, grpc-timeout.</summary>
public sealed class WireFormatTests
{
    [Theory]
    [InlineData("plain ascii", "plain ascii")]
    [InlineData("100%", "100%25")]
    [InlineData("ü", "%C3%BC")]
    [InlineData("a\nb", "a%0Ab")]
    [InlineData("日本", "%E6%97%A5%E6%9C%AC")]
    [InlineData("~ !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}", "~ !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}")]
    public void Percent_encoding_follows_the_spec(string raw, string encoded)
    {
        Assert.Equal(encoded, GrpcWire.PercentEncode(raw));
        Assert.Equal(raw, GrpcWire.PercentDecode(encoded));
    }

    [Theory]
    [InlineData("%zz and %4", "%zz and %4")]        // malformed escapes are kept
    [InlineData("%c3%bc", "ü")]                     // lower-case hex is fine
    [InlineData("%C3", "\uFFFD")]                   // broken UTF-8 becomes U+FFFD
    [InlineData("%", "%")]
    public void Percent_decoding_is_lenient(string encoded, string decoded) =>
        Assert.Equal(decoded, GrpcWire.PercentDecode(encoded));

    [Theory]
    [InlineData(1500.0, "1500m")]
    [InlineData(0.5, "500u")]
    [InlineData(0.0001, "1u")]
    [InlineData(1.0004, "2m")]
    [InlineData(200.0 * 86_400_000, "17280000S")]
    public void Timeouts_are_encoded_in_at_most_eight_digits(double milliseconds, string expected) =>
        Assert.Equal(expected, GrpcWire.EncodeTimeout(TimeSpan.FromMilliseconds(milliseconds)));

    [Fact]
    public void Huge_timeouts_are_capped()
    {
        var encoded = GrpcWire.EncodeTimeout(TimeSpan.MaxValue);
        Assert.True(encoded.Length <= 9);
        Assert.EndsWith("H", encoded);
    }

    [Theory]
    [InlineData("1H", 3_600_000.0)]
    [InlineData("2M", 120_000.0)]
    [InlineData("10S", 10_000.0)]
    [InlineData("1500m", 1500.0)]
    [InlineData("250u", 0.25)]
    [InlineData("1000000n", 1.0)]
    [InlineData("99999999m", 99_999_999.0)]
    public void Timeouts_parse(string value, double milliseconds)
    {
        Assert.True(GrpcWire.TryParseTimeout(value, out var timeout));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), timeout);
    }

    [Theory]
    [InlineData("")]
    [InlineData("m")]
    [InlineData("10")]
    [InlineData("10x")]
    [InlineData("-1m")]
    [InlineData("1.5S")]
    [InlineData("123456789m")]
    public void Malformed_timeouts_are_rejected(string value) =>
        Assert.False(GrpcWire.TryParseTimeout(value, out _));

    [Theory]
    [InlineData("application/grpc", true)]
    [InlineData("application/grpc+proto", true)]
    [InlineData("Application/GRPC; charset=utf-8", true)]
    [InlineData("application/grpc+json", false)]
    [InlineData("application/grpc-web", false)]
    [InlineData("text/plain", false)]
    [InlineData(null, false)]
    public void Content_types(string? contentType, bool isGrpc) =>
        Assert.Equal(isGrpc, GrpcWire.IsGrpcContentType(contentType));

    [Fact]
    public async Task Framing_round_trips_and_detects_every_defect()
    {
        var message = new EchoRequest { Text = "frame me" };
        var frame = GrpcWire.Framed(message, 1000);
        Assert.Equal(0, frame[0]);
        Assert.Equal(message.CalculateSize(), (frame[1] << 24) | (frame[2] << 16) | (frame[3] << 8) | frame[4]);

        var twoFrames = frame.Concat(frame).ToArray();
        using (var stream = new MemoryStream(twoFrames))
        {
            Assert.Equal(message, await Read(stream, 1000));
            Assert.Equal(message, await Read(stream, 1000));
            Assert.Null(await Read(stream, 1000));
        }

        Assert.Equal(StatusCode.Internal, (await ReadError(frame[..3], 1000)).Status);              // truncated prefix
        Assert.Equal(StatusCode.Internal, (await ReadError(frame[..^1], 1000)).Status);             // truncated message
        Assert.Equal(StatusCode.ResourceExhausted, (await ReadError(frame, frame.Length - 6)).Status); // over the limit
        var compressed = (byte[])frame.Clone();
        compressed[0] = 1;
        Assert.Equal(StatusCode.Unimplemented, (await ReadError(compressed, 1000)).Status);
        compressed[0] = 7;
        Assert.Equal(StatusCode.Internal, (await ReadError(compressed, 1000)).Status);
        Assert.Equal(StatusCode.InvalidArgument, (await ReadError([0, 0, 0, 0, 1, 0x0F], 1000)).Status); // wire type 7

        var tooBig = Assert.Throws<RpcException>(() => GrpcWire.Framed(message, message.CalculateSize() - 1));
        Assert.Equal(StatusCode.ResourceExhausted, tooBig.Status);

        static ValueTask<EchoRequest?> Read(Stream stream, int limit) =>
            GrpcWire.ReadMessageAsync(stream, EchoRequest.Parser, limit, new byte[5], StatusCode.InvalidArgument, StatusCode.Unimplemented, CancellationToken.None);

        static async Task<RpcException> ReadError(byte[] data, int limit)
        {
            using var stream = new MemoryStream(data);
            return await Assert.ThrowsAsync<RpcException>(() => Read(stream, limit).AsTask());
        }
    }
}
