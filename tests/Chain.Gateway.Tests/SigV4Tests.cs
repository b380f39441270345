using Chain.Gateway.S3;

namespace Chain.Gateway.Tests;

/// <summary>The signature computation against AWS's published GET-object example (Signature V4, single-chunk payload).</summary>
public sealed class SigV4Tests
{
    private const string Secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    [Fact]
    public void GetObjectExample_MatchesPublishedSignature()
    {
        var headers = new List<KeyValuePair<string, string>>
        {
            new("host", "examplebucket.s3.amazonaws.com"),
            new("range", "bytes=0-9"),
            new("x-amz-content-sha256", SigV4.EmptyPayloadHash),
            new("x-amz-date", "20130524T000000Z"),
        };
        string canonical = SigV4.CanonicalRequest("GET", SigV4.CanonicalUri("/test.txt"), SigV4.CanonicalQuery([]), headers, SigV4.EmptyPayloadHash);
        Assert.Equal(
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:" + SigV4.EmptyPayloadHash +
            "\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n" + SigV4.EmptyPayloadHash, canonical);
        string toSign = SigV4.StringToSign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", canonical);
        Assert.EndsWith("7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972", toSign);
        string signature = SigV4.Signature(SigV4.SigningKey(Secret, "20130524", "us-east-1", "s3"), toSign);
        Assert.Equal("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", signature);
    }

    [Fact]
    public void WrongSecret_GivesAnotherSignature()
    {
        string toSign = SigV4.StringToSign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", "GET\n/\n\nhost:h\n\nhost\n" + SigV4.EmptyPayloadHash);
        Assert.NotEqual(SigV4.Signature(SigV4.SigningKey(Secret, "20130524", "us-east-1", "s3"), toSign),
            SigV4.Signature(SigV4.SigningKey(Secret + "x", "20130524", "us-east-1", "s3"), toSign));
    }

    [Theory]
    [InlineData("/b/a%20b/c", "/b/a%20b/c")]
    [InlineData("/b/a+b", "/b/a%2Bb")]
    [InlineData("/b/%7Etilde~", "/b/~tilde~")]
    [InlineData("/b/caf%C3%A9", "/b/caf%C3%A9")]
    [InlineData("/b/x=y&z", "/b/x%3Dy%26z")]
    public void CanonicalUri_EncodesEachByteOnce(string raw, string expected) => Assert.Equal(expected, SigV4.CanonicalUri(raw));

    [Fact]
    public void CanonicalQuery_SortsAndEncodes()
    {
        var query = new List<KeyValuePair<string, string>> { new("prefix", "a b/"), new("list-type", "2"), new("delimiter", "/"), new("acl", "") };
        Assert.Equal("acl=&delimiter=%2F&list-type=2&prefix=a%20b%2F", SigV4.CanonicalQuery(query));
    }

    [Fact]
    public void CanonicalHeaderValue_TrimsAndCollapsesSpaces() => Assert.Equal("a b c", SigV4.CanonicalHeaderValue("  a   b c "));
}
