using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Chain.Client;
using Xunit;

namespace Chain.Gateway.BuildCache.Tests;

/// <summary>The ccache, Bazel and Gradle protocols over HTTP against a real cluster: statuses, bodies, what is stored.</summary>
[Collection(BuildCacheCollection.Name)]
public sealed class ProtocolTests : IDisposable
{
    private readonly BuildCacheClusterFixture _fixture;
    private readonly HttpClient _http;

    public ProtocolTests(BuildCacheClusterFixture fixture)
    {
        _fixture = fixture;
        _http = new HttpClient { BaseAddress = fixture.CacheUrl, Timeout = TimeSpan.FromSeconds(60) };
    }

    public void Dispose() => _http.Dispose();

    private async Task<HttpResponseMessage> PutAsync(string path, HttpContent content) => await _http.PutAsync(path, content);

    private async Task AssertEntryAsync(string path, byte[] expected)
    {
        using var response = await _http.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected.Length, response.Content.Headers.ContentLength);
        Assert.Equal(expected, await response.Content.ReadAsByteArrayAsync());
    }

    private async Task AssertMissingAsync(string path, string objectKey)
    {
        using (var get = await _http.GetAsync(path))
            Assert.Equal(HttpStatusCode.NotFound, get.StatusCode);
        using (var head = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Head, path)))
            Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => _fixture.Client.StatAsync(_fixture.Options.Bucket, objectKey));
    }

    [Theory]
    [InlineData("subdirs")]
    [InlineData("flat")]
    [InlineData("bazel")]
    public async Task Ccache_layouts_miss_then_put_then_hit(string layout)
    {
        var key = TestContent.CcacheKey(layout.Length);
        var path = layout switch
        {
            "subdirs" => key[..2] + "/" + key[2..],
            "flat" => key,
            // ccache's bazel layout: the key's hex digest padded to look like a SHA-256.
            _ => "ac/" + TestContent.Sha256Hex(TestContent.Random(20, 99)),
        };
        var data = TestContent.Random(10_000, 1);
        await AssertMissingAsync(path, "bc/" + path);

        using var content = new ByteArrayContent(data);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using (var put = await PutAsync(path, content))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        await AssertEntryAsync(path, data);
        var info = await _fixture.Client.StatAsync(_fixture.Options.Bucket, "bc/" + path);
        Assert.Equal(data.Length, info.Size);
    }

    [Fact]
    public async Task Bazel_cas_put_with_matching_digest_is_stored()
    {
        var data = TestContent.Random(300_000, 2);
        var path = "cas/" + TestContent.Sha256Hex(data);
        using (var put = await PutAsync(path, new ByteArrayContent(data)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        await AssertEntryAsync(path, data);

        var empty = Array.Empty<byte>();
        var emptyPath = "cas/" + TestContent.Sha256Hex(empty);
        using (var put = await PutAsync(emptyPath, new ByteArrayContent(empty)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        await AssertEntryAsync(emptyPath, empty);

        // Below namespace segments of the tool's URL (--remote_cache=http://host/cache/team/project) the check holds too.
        var namespaced = "team/project/cas/" + TestContent.Sha256Hex(data);
        using (var put = await PutAsync(namespaced, new ByteArrayContent(data)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        await AssertEntryAsync(namespaced, data);
        var wrong = "team/project/cas/" + TestContent.Sha256Hex(empty);
        using (var put = await PutAsync(wrong, new ByteArrayContent(data)))
            Assert.Equal(HttpStatusCode.BadRequest, put.StatusCode);
        await AssertEntryAsync(emptyPath, empty);
        await AssertMissingAsync(wrong, "bc/" + wrong);
    }

    [Theory]
    [InlineData(200_000, false)]
    [InlineData(9 * 1024 * 1024, true)] // larger than a chunk: the distributed path, sent chunked
    public async Task Bazel_cas_put_with_wrong_digest_is_rejected_and_not_stored(int size, bool chunked)
    {
        var data = TestContent.Random(size, 3);
        var other = TestContent.Random(16, 4);
        var path = "cas/" + TestContent.Sha256Hex(other);
        HttpContent content = chunked ? new ChunkedContent(data) : new ByteArrayContent(data);
        using (var put = await PutAsync(path, content))
        {
            Assert.Equal(HttpStatusCode.BadRequest, put.StatusCode);
            Assert.Contains("<Code>BadDigest</Code>", await put.Content.ReadAsStringAsync());
        }
        await AssertMissingAsync(path, "bc/" + path);
    }

    [Fact]
    public async Task Bazel_ac_miss_is_404_and_put_then_get_hits()
    {
        var key = TestContent.Sha256Hex(TestContent.Random(8, 5));
        await AssertMissingAsync("ac/" + key, "bc/ac/" + key);
        var result = TestContent.Random(500, 6); // an ActionResult: not content-addressed
        using (var put = await PutAsync("ac/" + key, new ByteArrayContent(result)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        await AssertEntryAsync("ac/" + key, result);
    }

    [Fact]
    public async Task Gradle_miss_put_hit_and_large_entry_streams()
    {
        var key = TestContent.Sha256Hex(TestContent.Random(8, 7))[..32];
        await AssertMissingAsync(key, "bc/" + key);
        var data = TestContent.Random(20 * 1024 * 1024, 8);
        using (var put = await PutAsync(key, new ChunkedContent(data)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        await AssertEntryAsync(key, data);

        // Overwrite with a smaller entry: the new one is served.
        var smaller = TestContent.Random(1000, 9);
        using (var put = await PutAsync(key, new ByteArrayContent(smaller)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        await AssertEntryAsync(key, smaller);
    }

    [Fact]
    public async Task Entry_above_the_maximum_is_413_and_not_stored()
    {
        var data = TestContent.Random((int)BuildCacheClusterFixture.MaxEntryBytes + 1, 10);

        // Declared too large: refused before the body is read (Expect: 100-continue keeps the client from sending it).
        var declaredKey = TestContent.Sha256Hex(TestContent.Random(8, 11))[..32];
        using (var request = new HttpRequestMessage(HttpMethod.Put, declaredKey) { Content = new ByteArrayContent(data) })
        {
            request.Headers.ExpectContinue = true;
            using var put = await _http.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, put.StatusCode);
            Assert.Contains("<Code>EntityTooLarge</Code>", await put.Content.ReadAsStringAsync());
        }
        await AssertMissingAsync(declaredKey, "bc/" + declaredKey);

        // Sent chunked without a length: counted while streaming, refused once past the maximum.
        var chunkedKey = TestContent.Sha256Hex(TestContent.Random(8, 12))[..32];
        using (var put = await PutAsync(chunkedKey, new ChunkedContent(data)))
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, put.StatusCode);
        await AssertMissingAsync(chunkedKey, "bc/" + chunkedKey);

        // Exactly the maximum is accepted.
        using (var put = await PutAsync(chunkedKey, new ByteArrayContent(data, 0, data.Length - 1)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
    }

    [Fact]
    public async Task Head_and_delete()
    {
        var key = TestContent.CcacheKey(13);
        var path = key[..2] + "/" + key[2..];
        var data = TestContent.Random(4321, 14);
        using (var put = await PutAsync(path, new ByteArrayContent(data)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        using (var head = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Head, path)))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(data.Length, head.Content.Headers.ContentLength);
        }
        using (var delete = await _http.DeleteAsync(path))
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        await AssertMissingAsync(path, "bc/" + path);
        using (var again = await _http.DeleteAsync(path))
            Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
    }

    [Theory]
    [InlineData("a/b/c/d/e/f/g/h/i")]
    [InlineData("ns/cas/abc")]
    [InlineData("cas/abc")]
    [InlineData("cas/" + "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789")]
    [InlineData("x%20y")]
    [InlineData("a//b")]
    [InlineData("a/")]
    public async Task Malformed_entry_paths_are_400_and_not_stored(string path)
    {
        using var put = await PutAsync(path, new ByteArrayContent(new byte[] { 1, 2, 3 }));
        Assert.Equal(HttpStatusCode.BadRequest, put.StatusCode);
        Assert.Contains("<Code>InvalidURI</Code>", await put.Content.ReadAsStringAsync());
        await foreach (var info in _fixture.Client.ListAsync(_fixture.Options.Bucket, "bc/"))
            Assert.DoesNotContain(Uri.UnescapeDataString(path), info.Key);
    }

    [Fact]
    public async Task Bucket_is_created_on_first_put_not_on_reads()
    {
        const string bucket = "bc-first-use";
        await using var host = await _fixture.StartHostAsync(_fixture.Options with { Bucket = bucket });
        using var http = new HttpClient { BaseAddress = new Uri(host.Address, "/cache/"), Timeout = TimeSpan.FromSeconds(30) };
        var key = TestContent.CcacheKey(30);
        using (var miss = await http.GetAsync(key))
            Assert.Equal(HttpStatusCode.NotFound, miss.StatusCode);
        using (var delete = await http.DeleteAsync(key))
            Assert.Equal(HttpStatusCode.NotFound, delete.StatusCode);
        Assert.DoesNotContain(await _fixture.Client.ListBucketsAsync(), b => b.Name == bucket);

        var data = TestContent.Random(777, 31);
        using (var put = await http.PutAsync(key, new ByteArrayContent(data)))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Contains(await _fixture.Client.ListBucketsAsync(), b => b.Name == bucket);
        Assert.Equal(data, await _fixture.Client.GetBytesAsync(bucket, "bc/" + key));
    }

    [Fact]
    public async Task Other_methods_are_405()
    {
        using var post = await _http.PostAsync("abc", new ByteArrayContent(new byte[] { 1 }));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
        Assert.Contains("PUT", post.Content.Headers.Allow);
    }

    [Fact]
    public async Task Parallel_puts_and_gets_round_trip()
    {
        var entries = Enumerable.Range(0, 24).Select(i => (Key: TestContent.CcacheKey(1000 + i), Data: TestContent.Random(50_000 + i * 997, 1000 + i))).ToArray();
        await Task.WhenAll(entries.Select(async e =>
        {
            using var put = await PutAsync(e.Key, new ByteArrayContent(e.Data));
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }));
        await Task.WhenAll(entries.Select(e => AssertEntryAsync(e.Key, e.Data)));
    }

    [Fact]
    public async Task Auth_required_when_configured()
    {
        await using var host = await _fixture.StartHostAsync(_fixture.Options with { BearerToken = "s3cret-token", BasicUser = "builder", BasicPassword = "pa:ss" });
        using var http = new HttpClient { BaseAddress = new Uri(host.Address, "/cache/"), Timeout = TimeSpan.FromSeconds(30) };
        var path = TestContent.CcacheKey(20);
        var data = TestContent.Random(100, 21);

        async Task<HttpResponseMessage> SendAsync(HttpMethod method, AuthenticationHeaderValue? auth)
        {
            var request = new HttpRequestMessage(method, path);
            if (method == HttpMethod.Put)
                request.Content = new ByteArrayContent(data);
            request.Headers.Authorization = auth;
            return await http.SendAsync(request);
        }

        static AuthenticationHeaderValue Basic(string credentials) => new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(credentials)));

        using (var none = await SendAsync(HttpMethod.Put, null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
            var challenges = none.Headers.WwwAuthenticate.Select(h => h.Scheme).ToArray();
            Assert.Contains("Bearer", challenges);
            Assert.Contains("Basic", challenges);
        }
        foreach (var wrong in new[] { new AuthenticationHeaderValue("Bearer", "s3cret-tokem"), Basic("builder:pa:sx"), Basic("other:pa:ss"), new("Basic", "!!!") })
        {
            using var denied = await SendAsync(HttpMethod.Put, wrong);
            Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        }
        await AssertMissingAsync(path, "bc/" + path);

        using (var put = await SendAsync(HttpMethod.Put, new AuthenticationHeaderValue("Bearer", "s3cret-token")))
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        using (var get = await SendAsync(HttpMethod.Get, Basic("builder:pa:ss")))
        {
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            Assert.Equal(data, await get.Content.ReadAsByteArrayAsync());
        }
        using (var denied = await SendAsync(HttpMethod.Get, null))
            Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
    }

    [Fact]
    public async Task Requests_beyond_the_concurrency_bound_wait_then_get_503()
    {
        await using var host = await _fixture.StartHostAsync(_fixture.Options with { MaxConcurrentRequests = 1, QueueTimeout = TimeSpan.FromMilliseconds(200) });
        using var http = new HttpClient { BaseAddress = new Uri(host.Address, "/cache/"), Timeout = TimeSpan.FromSeconds(30) };
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var data = TestContent.Random(256 * 1024, 22);
        var key = TestContent.CcacheKey(22);
        // The slow PUT holds the only slot until the gate opens (its body stops after the first piece).
        var slowPut = http.PutAsync(key, new ChunkedContent(data, index => index == 1 ? gate.Task : Task.CompletedTask));

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        HttpStatusCode status;
        do
        {
            using var probe = await http.GetAsync(TestContent.CcacheKey(23));
            status = probe.StatusCode;
            if (status == HttpStatusCode.ServiceUnavailable)
                Assert.Contains("<Code>SlowDown</Code>", await probe.Content.ReadAsStringAsync());
        } while (status != HttpStatusCode.ServiceUnavailable && DateTime.UtcNow < deadline);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);

        gate.SetResult();
        using (var put = await slowPut)
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        using (var after = await http.GetAsync(key))
        {
            Assert.Equal(HttpStatusCode.OK, after.StatusCode);
            Assert.Equal(data, await after.Content.ReadAsByteArrayAsync());
        }
    }
}
