using System.Security.Cryptography;
using System.Text;
using Chain.Gateway.S3;

namespace Chain.Gateway.Tests;

/// <summary>The aws-chunked decoder against AWS's published chunked-upload examples, the checksums' check values, and its bounds.</summary>
public sealed class AwsChunkedStreamTests
{
    private const string ExampleSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    private const string ExampleDate = "20130524T000000Z";
    private const string ExampleScope = "20130524/us-east-1/s3/aws4_request";

    private static ChunkSigning ExampleSigning(string seed) =>
        new(SigV4.SigningKey(ExampleSecret, "20130524", "us-east-1", "s3"), ExampleDate, ExampleScope, seed);

    /// <summary>The example's body: 64 KiB and 1 KiB of 'a', then the final chunk, with the given signatures; then <paramref name="tail"/>.</summary>
    private static byte[] ExampleBody(string first, string second, string final, string tail)
    {
        var body = new MemoryStream();
        void Text(string text) => body.Write(Encoding.ASCII.GetBytes(text));
        Text($"10000;chunk-signature={first}\r\n");
        body.Write(Enumerable.Repeat((byte)'a', 65536).ToArray());
        Text($"\r\n400;chunk-signature={second}\r\n");
        body.Write(Enumerable.Repeat((byte)'a', 1024).ToArray());
        Text($"\r\n0;chunk-signature={final}\r\n{tail}");
        return body.ToArray();
    }

    private static async Task<byte[]> DecodeAsync(byte[] wire, StreamingUpload mode, long decodedLength, string? trailer = null)
    {
        // A reader that asks for odd sizes, so chunk and line boundaries fall inside reads.
        using var stream = new AwsChunkedStream(new MemoryStream(wire), mode, decodedLength, trailer);
        var decoded = new MemoryStream();
        var buffer = new byte[7777];
        int n;
        while ((n = await stream.ReadAsync(buffer)) > 0)
            decoded.Write(buffer, 0, n);
        return decoded.ToArray();
    }

    [Fact]
    public async Task PublishedSignedExample_DecodesAndVerifies()
    {
        byte[] wire = ExampleBody("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9", "\r\n");
        var mode = new StreamingUpload(true, false, ExampleSigning("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"));
        byte[] decoded = await DecodeAsync(wire, mode, 66560);
        Assert.Equal(Enumerable.Repeat((byte)'a', 66560), decoded);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task PublishedSignedExample_AnyWrongSignature_Is403BeforeEndOfStream(int wrong)
    {
        string[] signatures =
        [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ];
        signatures[wrong] = (signatures[wrong][0] == '0' ? "1" : "0") + signatures[wrong][1..];
        byte[] wire = ExampleBody(signatures[0], signatures[1], signatures[2], "\r\n");
        var mode = new StreamingUpload(true, false, ExampleSigning("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"));
        var failure = await Assert.ThrowsAsync<S3Exception>(() => DecodeAsync(wire, mode, 66560));
        Assert.Equal((403, "SignatureDoesNotMatch"), (failure.Status, failure.Code));
    }

    [Fact]
    public async Task PublishedTrailerExample_VerifiesCrc32cAndTrailerSignature()
    {
        const string trailer = "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n";
        byte[] wire = ExampleBody("b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992", trailer);
        var mode = new StreamingUpload(true, true, ExampleSigning("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"));
        Assert.Equal(66560, (await DecodeAsync(wire, mode, 66560, "x-amz-checksum-crc32c")).Length);

        byte[] badSignature = ExampleBody("b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992", trailer.Replace("d81f82fc", "d81f82fd", StringComparison.Ordinal));
        var failure = await Assert.ThrowsAsync<S3Exception>(() => DecodeAsync(badSignature, mode, 66560, "x-amz-checksum-crc32c"));
        Assert.Equal("SignatureDoesNotMatch", failure.Code);
    }

    [Fact]
    public async Task WithoutSigning_ChunkSignaturesAreNotChecked_ButTheFramingIs()
    {
        // A gateway without keys checks no signature; the framing, lengths and trailer rules still hold.
        byte[] wire = ExampleBody(new string('1', 64), new string('2', 64), new string('3', 64), "\r\n");
        var open = new StreamingUpload(true, false, null);
        Assert.Equal(66560, (await DecodeAsync(wire, open, 66560)).Length);
        var failure = await Assert.ThrowsAsync<S3Exception>(() => DecodeAsync([.. wire, (byte)'x'], open, 66560));
        Assert.Equal("InvalidRequest", failure.Code); // bytes after the end
        failure = await Assert.ThrowsAsync<S3Exception>(() => DecodeAsync(wire[..^2].Concat("x-amz-checksum-crc32:AAAAAA==\r\n\r\n"u8.ToArray()).ToArray(), open, 66560));
        Assert.Equal("InvalidRequest", failure.Code); // a trailer the mode does not announce
    }

    [Theory]
    [InlineData("x-amz-checksum-crc32", "cbf43926")]
    [InlineData("x-amz-checksum-crc32c", "e3069283")]
    [InlineData("x-amz-checksum-crc64nvme", "ae8b14860a799888")]
    public void Crcs_MatchTheirCheckValues(string header, string checkHex)
    {
        using PayloadChecksum checksum = PayloadChecksum.ForHeader(header)!;
        checksum.Append("1234"u8);
        checksum.Append("56789"u8);
        Assert.Equal(Convert.ToBase64String(Convert.FromHexString(checkHex)), checksum.Base64());
    }

    [Fact]
    public void Digests_AreBase64OfShaAndUnknownAlgorithmsAreNull()
    {
        byte[] data = GatewayFixture.Content(5, 1000);
        using PayloadChecksum sha1 = PayloadChecksum.ForHeader("X-Amz-Checksum-SHA1")!;
        using PayloadChecksum sha256 = PayloadChecksum.ForHeader("x-amz-checksum-sha256")!;
        sha1.Append(data);
        sha256.Append(data);
        Assert.Equal(Convert.ToBase64String(SHA1.HashData(data)), sha1.Base64());
        Assert.Equal(Convert.ToBase64String(SHA256.HashData(data)), sha256.Base64());
        Assert.Null(PayloadChecksum.ForHeader("x-amz-checksum-md5"));
    }

    [Fact]
    public async Task Bounds_LongLineAndHugeChunk_AreInvalidRequest()
    {
        var unsigned = new StreamingUpload(false, true, null);
        byte[] longLine = Encoding.ASCII.GetBytes("1;" + new string('x', AwsChunkedStream.LineBytesMax) + "\r\na\r\n0\r\n\r\n");
        var failure = await Assert.ThrowsAsync<S3Exception>(() => DecodeAsync(longLine, unsigned, 1));
        Assert.Equal((400, "InvalidRequest"), (failure.Status, failure.Code));
        byte[] huge = Encoding.ASCII.GetBytes($"{AwsChunkedStream.ChunkBytesMax + 1:x}\r\n");
        failure = await Assert.ThrowsAsync<S3Exception>(() => DecodeAsync(huge, unsigned, AwsChunkedStream.ChunkBytesMax + 1));
        Assert.Equal((400, "InvalidRequest"), (failure.Status, failure.Code));
    }
}
