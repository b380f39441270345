using System.Net;
using System.Security.Cryptography;
using System.Text;
using Chain.Client;

namespace Chain.Gateway.Tests;

/// <summary>Bad requests get the right status and S3 error code, and nothing is written.</summary>
[Collection(GatewayCollection.Name)]
public sealed class ErrorTests(GatewayFixture fixture)
{
    private async Task AssertAbsentAsync(string bucket, string key)
    {
        await using ChainClient client = fixture.CreateClient();
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.StatAsync(bucket, key));
    }

    [Fact]
    public async Task BadContentMd5_Is400BadDigest_AndNothingWritten()
    {
        string bucket = await fixture.NewBucketAsync("err-md5");
        byte[] body = GatewayFixture.Content(10, 100_000);
        var headers = new Dictionary<string, string> { ["content-md5"] = GatewayFixture.Md5Base64(Encoding.UTF8.GetBytes("something else")) };
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj", body, headers), 400, "BadDigest");
        await AssertAbsentAsync(bucket, "obj");

        // The right digest is accepted.
        headers["content-md5"] = GatewayFixture.Md5Base64(body);
        var ok = await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj", body, headers);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("\"" + Convert.ToHexStringLower(MD5.HashData(body)) + "\"", ok.Headers.ETag?.Tag);
    }

    [Theory]
    [InlineData(100_000)] // inline object
    [InlineData(6_000_000)] // distributed object (chunks on other chains before the manifest)
    public async Task PayloadHashMismatch_IsRejected_AndNothingWritten(int size)
    {
        string bucket = await fixture.NewBucketAsync("err-sha-" + size);
        byte[] body = GatewayFixture.Content(11, size);
        string otherHash = Convert.ToHexStringLower(SHA256.HashData(GatewayFixture.Content(12, size)));
        var response = await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj", body, signedPayloadHash: otherHash);
        await GatewayFixture.AssertErrorAsync(response, 400, "XAmzContentSHA256Mismatch");
        await AssertAbsentAsync(bucket, "obj");
    }

    [Fact]
    public async Task WrongSecret_Is403SignatureDoesNotMatch_AndNothingWritten()
    {
        string bucket = await fixture.NewBucketAsync("err-secret");
        var response = await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj", [1, 2, 3], secret: "not-the-secret");
        await GatewayFixture.AssertErrorAsync(response, 403, "SignatureDoesNotMatch");
        await AssertAbsentAsync(bucket, "obj");
    }

    [Fact]
    public async Task MissingBucket_Is404NoSuchBucket_MissingKey_Is404NoSuchKey()
    {
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Get, "/no-such-bucket/key"), 404, "NoSuchBucket");
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Get, "/no-such-bucket?list-type=2"), 404, "NoSuchBucket");
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Put, "/no-such-bucket/key", [1]), 404, "NoSuchBucket");
        string bucket = await fixture.NewBucketAsync("err-nokey");
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Get, $"/{bucket}/missing"), 404, "NoSuchKey");
    }

    [Fact]
    public async Task UnsatisfiableRange_Is416InvalidRange()
    {
        string bucket = await fixture.NewBucketAsync("err-range");
        Assert.Equal(HttpStatusCode.OK, (await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj", new byte[100])).StatusCode);
        var response = await fixture.SendSignedAsync(HttpMethod.Get, $"/{bucket}/obj", headers: new Dictionary<string, string> { ["range"] = "bytes=100-200" });
        await GatewayFixture.AssertErrorAsync(response, 416, "InvalidRange");
        var partial = await fixture.SendSignedAsync(HttpMethod.Get, $"/{bucket}/obj", headers: new Dictionary<string, string> { ["range"] = "bytes=90-" });
        Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        Assert.Equal("bytes 90-99/100", partial.Content.Headers.ContentRange?.ToString());
        Assert.Equal(10, (await partial.Content.ReadAsByteArrayAsync()).Length);
    }

    [Fact]
    public async Task Buckets_Conflicts()
    {
        string bucket = await fixture.NewBucketAsync("err-bucket");
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}"), 409, "BucketAlreadyOwnedByYou");
        Assert.Equal(HttpStatusCode.OK, (await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj", [1])).StatusCode);
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Delete, $"/{bucket}"), 409, "BucketNotEmpty");
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Put, "/Bad_Name"), 400, "InvalidBucketName");
    }

    [Fact]
    public async Task CreateOnly_IfNoneMatchStar_Is412WhenTheObjectExists()
    {
        string bucket = await fixture.NewBucketAsync("err-create-only");
        var createOnly = new Dictionary<string, string> { ["if-none-match"] = "*" };
        Assert.Equal(HttpStatusCode.OK, (await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj", [1], createOnly)).StatusCode);
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj", [2], createOnly), 412, "PreconditionFailed");
        var get = await fixture.SendSignedAsync(HttpMethod.Get, $"/{bucket}/obj");
        Assert.Equal(new byte[] { 1 }, await get.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Limits_EntityTooLarge_KeyTooLong_MalformedXml_UploadPartCopyNotImplemented()
    {
        string bucket = await fixture.NewBucketAsync("err-limits");
        byte[] tooLarge = new byte[GatewayFixture.MaxObjectBytes + 1];
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/big", tooLarge), 400, "EntityTooLarge");
        await AssertAbsentAsync(bucket, "big");
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/{new string('k', 1025)}", [1]), 400, "KeyTooLongError");
        byte[] xml = Encoding.UTF8.GetBytes("<Delete><Object><Key>a</Key></Obj");
        var md5 = new Dictionary<string, string> { ["content-md5"] = GatewayFixture.Md5Base64(xml) };
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Post, $"/{bucket}?delete", xml, md5), 400, "MalformedXML");
        var copySource = new Dictionary<string, string> { ["x-amz-copy-source"] = $"/{bucket}/other" };
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj?partNumber=1&uploadId=00", [], copySource), 501, "NotImplemented");
    }

    [Fact]
    public async Task AnonymousRead_OnlyInPublicBuckets_AndNeverWrites()
    {
        string bucket = await fixture.NewBucketAsync(GatewayFixture.PublicBucket);
        Assert.Equal(HttpStatusCode.OK, (await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj", [7, 8])).StatusCode);
        Assert.Equal(new byte[] { 7, 8 }, await fixture.Http.GetByteArrayAsync(new Uri(fixture.Endpoint, $"/{bucket}/obj")));
        var put = await fixture.Http.PutAsync(new Uri(fixture.Endpoint, $"/{bucket}/other"), new ByteArrayContent([1]));
        await GatewayFixture.AssertErrorAsync(put, 403, "AccessDenied");
        await AssertAbsentAsync(bucket, "other");
        string closed = await fixture.NewBucketAsync("err-private");
        await GatewayFixture.AssertErrorAsync(await fixture.Http.GetAsync(new Uri(fixture.Endpoint, $"/{closed}?list-type=2")), 403, "AccessDenied");
    }
}
