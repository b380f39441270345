using System.Text;
using System.Text.Json;
using System.Xml.Linq;
using Chain.Client;
using Chain.Harness;

namespace Chain.Gateway.Tests;

/// <summary>
/// Multipart listings page by page over HTTP (ListParts: max-parts, part-number-marker; ListMultipartUploads: max-uploads,
/// key and upload-id markers, prefix, delimiter, encoding-type=url; boto3's paginators), and S3's multipart limits, each
/// answered with its error code and nothing written.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class MultipartPagingTests(GatewayFixture fixture)
{
    private static XElement Xml(string text) => XElement.Parse(text);

    private static string Value(XElement e, string name) => e.Elements().Single(c => c.Name.LocalName == name).Value;

    private static string? OptionalValue(XElement e, string name) => e.Elements().SingleOrDefault(c => c.Name.LocalName == name)?.Value;

    private static IEnumerable<XElement> Children(XElement e, string name) => e.Elements().Where(c => c.Name.LocalName == name);

    private async Task<XElement> GetXmlAsync(string pathAndQuery)
    {
        var response = await fixture.SendSignedAsync(HttpMethod.Get, pathAndQuery);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(200 == (int)response.StatusCode, $"GET {pathAndQuery}: {(int)response.StatusCode} {body}");
        return Xml(body);
    }

    private async Task<string> InitiateAsync(string bucket, string key)
    {
        var response = await fixture.SendSignedAsync(HttpMethod.Post, $"/{bucket}/{Uri.EscapeDataString(key).Replace("%2F", "/")}?uploads");
        Assert.Equal(200, (int)response.StatusCode);
        return Value(Xml(await response.Content.ReadAsStringAsync()), "UploadId");
    }

    private async Task<string> UploadPartAsync(string bucket, string key, string uploadId, int number, byte[] data)
    {
        var response = await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/{key}?partNumber={number}&uploadId={uploadId}", data);
        Assert.Equal(200, (int)response.StatusCode);
        return response.Headers.ETag!.Tag;
    }

    private async Task<int[]> PartNumbersAsync(string bucket, string key, string uploadId) =>
        Children(await GetXmlAsync($"/{bucket}/{key}?uploadId={uploadId}"), "Part").Select(p => int.Parse(Value(p, "PartNumber"))).ToArray();

    private async Task AssertNoObjectAsync(string bucket, string key) =>
        Assert.Equal(404, (int)(await fixture.SendSignedAsync(HttpMethod.Head, $"/{bucket}/{key}")).StatusCode);

    [Fact]
    public async Task ListParts_FiveParts_PagesOfTwo_WithPartNumberMarker()
    {
        string bucket = await fixture.NewBucketAsync("mpu-parts-page");
        string id = await InitiateAsync(bucket, "obj");
        foreach (int n in new[] { 5, 3, 1, 4, 2 })
            await UploadPartAsync(bucket, "obj", id, n, Encoding.UTF8.GetBytes("part " + n));

        var seen = new List<int>();
        int marker = 0;
        var markers = new List<string>();
        for (int page = 0; ; page++)
        {
            Assert.True(page < 5, "the listing does not end");
            var xml = await GetXmlAsync($"/{bucket}/obj?uploadId={id}&max-parts=2&part-number-marker={marker}");
            Assert.Equal("2", Value(xml, "MaxParts"));
            Assert.Equal(marker.ToString(), Value(xml, "PartNumberMarker"));
            var numbers = Children(xml, "Part").Select(p => int.Parse(Value(p, "PartNumber"))).ToArray();
            Assert.InRange(numbers.Length, 1, 2);
            seen.AddRange(numbers);
            Assert.Equal(numbers[^1].ToString(), Value(xml, "NextPartNumberMarker"));
            if (Value(xml, "IsTruncated") == "false")
                break;
            marker = numbers[^1];
            markers.Add(Value(xml, "NextPartNumberMarker"));
        }
        Assert.Equal([1, 2, 3, 4, 5], seen);
        Assert.Equal(["2", "4"], markers);

        // Past the last part: an empty page; max-parts above 1000 is 1000; a bad marker is 400 InvalidArgument.
        var end = await GetXmlAsync($"/{bucket}/obj?uploadId={id}&part-number-marker=5");
        Assert.Empty(Children(end, "Part"));
        Assert.Equal("false", Value(end, "IsTruncated"));
        Assert.Equal("1000", Value(await GetXmlAsync($"/{bucket}/obj?uploadId={id}&max-parts=5000"), "MaxParts"));
        var zero = await GetXmlAsync($"/{bucket}/obj?uploadId={id}&max-parts=0&part-number-marker=4");
        Assert.Empty(Children(zero, "Part"));
        Assert.Equal("true", Value(zero, "IsTruncated"));
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Get, $"/{bucket}/obj?uploadId={id}&part-number-marker=x"),
            400, "InvalidArgument");
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Get, $"/{bucket}/obj?uploadId={id}&max-parts=-1"),
            400, "InvalidArgument");
        Assert.Equal(204, (int)(await fixture.SendSignedAsync(HttpMethod.Delete, $"/{bucket}/obj?uploadId={id}")).StatusCode);
    }

    /// <summary>One ListMultipartUploads page: its uploads (key, id), common prefixes, truncation and next markers.</summary>
    private sealed record UploadsPage(List<(string Key, string Id)> Uploads, List<string> Prefixes, bool Truncated, string? NextKey, string? NextId);

    private async Task<UploadsPage> ListUploadsAsync(string bucket, string query)
    {
        var xml = await GetXmlAsync($"/{bucket}?uploads&{query}");
        return new UploadsPage(
            Children(xml, "Upload").Select(u => (Value(u, "Key"), Value(u, "UploadId"))).ToList(),
            Children(xml, "CommonPrefixes").Select(p => Value(p, "Prefix")).ToList(),
            Value(xml, "IsTruncated") == "true",
            OptionalValue(xml, "NextKeyMarker"),
            OptionalValue(xml, "NextUploadIdMarker"));
    }

    /// <summary>Every page of a listing with the given page size and parameters, following the next markers.</summary>
    private async Task<List<UploadsPage>> AllPagesAsync(string bucket, string query)
    {
        var pages = new List<UploadsPage>();
        string markers = "";
        while (true)
        {
            Assert.True(pages.Count < 10, "the listing does not end");
            var page = await ListUploadsAsync(bucket, query + markers);
            pages.Add(page);
            if (!page.Truncated)
                return pages;
            Assert.NotNull(page.NextKey);
            markers = $"&key-marker={Uri.EscapeDataString(page.NextKey)}&upload-id-marker={page.NextId}";
        }
    }

    [Fact]
    public async Task ListMultipartUploads_PagesOfTwo_KeyAndUploadIdMarkers_Prefix_Delimiter_UrlEncoding()
    {
        string bucket = await fixture.NewBucketAsync("mpu-uploads-page");
        string a = await InitiateAsync(bucket, "a");
        string b1 = await InitiateAsync(bucket, "b");
        string b2 = await InitiateAsync(bucket, "b");
        string x = await InitiateAsync(bucket, "dir/x");
        string z = await InitiateAsync(bucket, "dir/z z");
        string e = await InitiateAsync(bucket, "e");
        // Uploads of one key come by upload id, which starts with the initiation time.
        var (bFirst, bSecond) = string.CompareOrdinal(b1, b2) < 0 ? (b1, b2) : (b2, b1);
        Assert.True(string.CompareOrdinal(b1[..12], b2[..12]) <= 0, "upload ids start with the initiation time");

        // No delimiter: 6 uploads in 3 pages; the second page starts within key "b" (key and upload-id markers).
        var pages = await AllPagesAsync(bucket, "max-uploads=2");
        Assert.Equal([2, 2, 2], pages.Select(p => p.Uploads.Count));
        Assert.Equal([("a", a), ("b", bFirst), ("b", bSecond), ("dir/x", x), ("dir/z z", z), ("e", e)], pages.SelectMany(p => p.Uploads));
        Assert.Equal(("b", bFirst), (pages[0].NextKey, pages[0].NextId));
        Assert.False(pages[2].Truncated);

        // A key marker alone skips every upload of that key.
        Assert.Equal([("dir/x", x), ("dir/z z", z), ("e", e)], (await ListUploadsAsync(bucket, "key-marker=b")).Uploads);

        // Delimiter: dir/ rolls up into one common prefix, which may end a page; the next page starts after all of it.
        var rolled = await AllPagesAsync(bucket, "max-uploads=2&delimiter=/");
        Assert.Equal([("a", a), ("b", bFirst), ("b", bSecond), ("e", e)], rolled.SelectMany(p => p.Uploads));
        Assert.Equal(["dir/"], rolled.SelectMany(p => p.Prefixes));
        Assert.Equal(3, rolled.Count);
        Assert.Equal(("dir/", ""), (rolled[1].NextKey, rolled[1].NextId));

        // Prefix, and URL encoding of keys and prefixes.
        Assert.Equal([("dir/x", x), ("dir/z z", z)], (await ListUploadsAsync(bucket, "prefix=dir/")).Uploads);
        var encoded = await GetXmlAsync($"/{bucket}?uploads&prefix=dir/&encoding-type=url");
        Assert.Equal("url", Value(encoded, "EncodingType"));
        Assert.Equal(["dir/x", "dir/z%20z"], Children(encoded, "Upload").Select(u => Value(u, "Key")));
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Get, $"/{bucket}?uploads&max-uploads=two"), 400, "InvalidArgument");

        foreach (var (key, id) in pages.SelectMany(p => p.Uploads))
            Assert.Equal(204, (int)(await fixture.SendSignedAsync(HttpMethod.Delete, $"/{bucket}/{Uri.EscapeDataString(key).Replace("%2F", "/")}?uploadId={id}")).StatusCode);
        Assert.Empty((await ListUploadsAsync(bucket, "")).Uploads);
    }

    [Fact]
    public async Task PartNumberOutOfRange_Is400InvalidArgument_AndNoPartStored()
    {
        string bucket = await fixture.NewBucketAsync("mpu-limit-number");
        string id = await InitiateAsync(bucket, "obj");
        foreach (string number in new[] { "0", "10001", "-1", "x" })
        {
            await GatewayFixture.AssertErrorAsync(
                await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj?partNumber={number}&uploadId={id}", [1, 2, 3]), 400, "InvalidArgument");
        }
        Assert.Empty(await PartNumbersAsync(bucket, "obj", id));
        await UploadPartAsync(bucket, "obj", id, 10000, [1]); // the largest part number is accepted
        Assert.Equal(new[] { 10000 }, await PartNumbersAsync(bucket, "obj", id));
    }

    [Fact]
    public async Task PartAboveMaxObjectBytes_Is400EntityTooLarge_AndNoPartStored()
    {
        string bucket = await fixture.NewBucketAsync("mpu-limit-part");
        string id = await InitiateAsync(bucket, "obj");
        byte[] tooLarge = new byte[GatewayFixture.MaxObjectBytes + 1];
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Put, $"/{bucket}/obj?partNumber=1&uploadId={id}", tooLarge),
            400, "EntityTooLarge");
        Assert.Empty(await PartNumbersAsync(bucket, "obj", id));
    }

    [Fact]
    public async Task Complete_AboveMaxObjectBytes_TooManyParts_OrOversizedXml_IsRefused_AndNothingWritten()
    {
        string bucket = await fixture.NewBucketAsync("mpu-limit-complete");
        string id = await InitiateAsync(bucket, "obj");
        // 12 parts of 5.5 MiB (one content: its chunks are stored once): each within the limit (64 MiB), together above it.
        byte[] partData = GatewayFixture.Content(31, 11 * 512 * 1024);
        string etag = await UploadPartAsync(bucket, "obj", id, 1, partData);
        for (int n = 2; n <= 12; n++)
            Assert.Equal(etag, await UploadPartAsync(bucket, "obj", id, n, partData));
        Assert.True(12L * partData.Length > GatewayFixture.MaxObjectBytes && 11L * partData.Length <= GatewayFixture.MaxObjectBytes);
        string PartsXml(int count) => "<CompleteMultipartUpload>"
            + string.Concat(Enumerable.Range(1, count).Select(n => $"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"))
            + "</CompleteMultipartUpload>";
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Post, $"/{bucket}/obj?uploadId={id}",
            Encoding.UTF8.GetBytes(PartsXml(12))), 400, "EntityTooLarge");
        await AssertNoObjectAsync(bucket, "obj");

        var many = new StringBuilder("<CompleteMultipartUpload>");
        for (int n = 1; n <= 10_001; n++)
            many.Append("<Part><PartNumber>").Append(n).Append("</PartNumber><ETag>").Append(etag).Append("</ETag></Part>");
        many.Append("</CompleteMultipartUpload>");
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Post, $"/{bucket}/obj?uploadId={id}",
            Encoding.UTF8.GetBytes(many.ToString())), 400, "EntityTooLarge");
        await AssertNoObjectAsync(bucket, "obj");

        byte[] huge = Encoding.UTF8.GetBytes("<CompleteMultipartUpload>" + new string(' ', 2 * 1024 * 1024) + "</CompleteMultipartUpload>");
        await GatewayFixture.AssertErrorAsync(await fixture.SendSignedAsync(HttpMethod.Post, $"/{bucket}/obj?uploadId={id}", huge), 400, "MalformedXML");
        await AssertNoObjectAsync(bucket, "obj");

        // The upload is intact: its parts are listed, and completing with 11 of them (within the limit) works.
        Assert.Equal(Enumerable.Range(1, 12), await PartNumbersAsync(bucket, "obj", id));
        Assert.Equal(200, (int)(await fixture.SendSignedAsync(HttpMethod.Post, $"/{bucket}/obj?uploadId={id}", Encoding.UTF8.GetBytes(PartsXml(11)))).StatusCode);
        var head = await fixture.SendSignedAsync(HttpMethod.Head, $"/{bucket}/obj");
        Assert.Equal(11L * partData.Length, head.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task Boto3_Paginators_ListParts_And_ListMultipartUploads_OverSeveralPages()
    {
        string dir = fixture.NewWorkDir("boto3-mpu-page");
        string script = Path.Combine(dir, "paging.py");
        await File.WriteAllTextAsync(script, Boto3PagingScript);
        var (code, stdout, stderr, line) = await Shell.RunUncheckedAsync("/usr/bin/python3",
            [script, fixture.EndpointText, GatewayFixture.AccessKey, GatewayFixture.Secret], timeout: TimeSpan.FromSeconds(120));
        Assert.True(code == 0, $"{line} exited {code}: {stdout}\n{stderr}");
        Assert.EndsWith("OK", stdout.Trim());
    }

    [Fact]
    public async Task AwsCli_ListParts_PageSize2_MaxItems3_ContinuesWithItsToken()
    {
        string bucket = await fixture.NewBucketAsync("aws-mpu-page");
        string id = await InitiateAsync(bucket, "obj");
        for (int n = 1; n <= 5; n++)
            await UploadPartAsync(bucket, "obj", id, n, [(byte)n]);
        var aws = await fixture.AwsCommandAsync(fixture.NewWorkDir("aws-mpu-page"));
        async Task<JsonElement> ListParts(params string[] extra)
        {
            var (code, stdout, stderr, line) = await Shell.RunUncheckedAsync("env",
                aws.Concat(["s3api", "list-parts", "--bucket", bucket, "--key", "obj", "--upload-id", id, "--page-size", "2", .. extra]),
                timeout: TimeSpan.FromSeconds(60));
            Assert.True(code == 0, $"{line} exited {code}: {stdout}\n{stderr}");
            return JsonDocument.Parse(stdout).RootElement;
        }
        // Pages of 2: the CLI's paginator stops after 3 items (inside the second page) and hands out a token.
        var first = await ListParts("--max-items", "3");
        Assert.Equal([1, 2, 3], first.GetProperty("Parts").EnumerateArray().Select(p => p.GetProperty("PartNumber").GetInt32()));
        string token = first.GetProperty("NextToken").GetString()!;
        // The token carries the gateway's NextPartNumberMarker of the truncated first page (2), not a client-side cut of one page.
        var decoded = JsonDocument.Parse(Convert.FromBase64String(token)).RootElement;
        Assert.Equal(2, decoded.GetProperty("PartNumberMarker").GetInt32());
        var rest = await ListParts("--starting-token", token);
        Assert.Equal([4, 5], rest.GetProperty("Parts").EnumerateArray().Select(p => p.GetProperty("PartNumber").GetInt32()));
    }

    private const string Boto3PagingScript = """
        import sys
        import boto3
        from botocore.config import Config
        endpoint, key, secret = sys.argv[1:4]
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
        B = "boto-mpu-page"
        s3.create_bucket(Bucket=B)
        up = s3.create_multipart_upload(Bucket=B, Key="obj")["UploadId"]
        for n in range(1, 6):
            s3.upload_part(Bucket=B, Key="obj", UploadId=up, PartNumber=n, Body=b"p%d" % n)
        pages = list(s3.get_paginator("list_parts").paginate(Bucket=B, Key="obj", UploadId=up, PaginationConfig={"PageSize": 2}))
        assert [[p["PartNumber"] for p in page.get("Parts", [])] for page in pages] == [[1, 2], [3, 4], [5]], pages
        assert [page["IsTruncated"] for page in pages] == [True, True, False], pages

        ids = {k: s3.create_multipart_upload(Bucket=B, Key=k)["UploadId"] for k in ["d/1", "d/2", "f", "g"]}
        pages = list(s3.get_paginator("list_multipart_uploads").paginate(Bucket=B, PaginationConfig={"PageSize": 2}))
        assert [[u["Key"] for u in page.get("Uploads", [])] for page in pages] == [["d/1", "d/2"], ["f", "g"], ["obj"]], pages
        pages = list(s3.get_paginator("list_multipart_uploads").paginate(Bucket=B, Delimiter="/", PaginationConfig={"PageSize": 2}))
        # Entries d/ (a common prefix), f, g, obj: two per page.
        assert [([u["Key"] for u in page.get("Uploads", [])], [c["Prefix"] for c in page.get("CommonPrefixes", [])]) for page in pages] == [
            (["f"], ["d/"]), (["g", "obj"], [])], pages
        for k, i in ids.items():
            s3.abort_multipart_upload(Bucket=B, Key=k, UploadId=i)
        s3.abort_multipart_upload(Bucket=B, Key="obj", UploadId=up)
        assert s3.list_multipart_uploads(Bucket=B).get("Uploads", []) == []
        print("OK")
        """;
}
