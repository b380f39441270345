using System.Net;
using System.Security.Cryptography;
using Chain.Client;
using Chain.Harness;

namespace Chain.Gateway.Tests;

/// <summary>
/// The gateway process serves the build caches under /_cache beside S3: without S3 signatures (the caches have their
/// own optional auth), with the Bazel CAS digest check, while S3 paths still demand a signature.
/// </summary>
[Collection(GatewayCollection.Name)]
public sealed class BuildCacheRouteTests(GatewayFixture fixture)
{
    private string Cache(string path) => fixture.EndpointText + LocalGatewayOptions.BuildCachePrefix + "/" + path;

    [Fact]
    public async Task Bazel_ac_and_cas_entries_round_trip_through_the_gateway_and_a_wrong_cas_digest_is_refused()
    {
        byte[] output = RandomNumberGenerator.GetBytes(300_000);
        string digest = Convert.ToHexStringLower(SHA256.HashData(output));

        using (var miss = await fixture.Http.GetAsync(Cache("ac/" + digest)))
            Assert.Equal(HttpStatusCode.NotFound, miss.StatusCode);
        using (var put = await fixture.Http.PutAsync(Cache("cas/" + digest), new ByteArrayContent(output)))
            Assert.True(put.IsSuccessStatusCode, $"CAS put: {(int)put.StatusCode}");
        Assert.Equal(output, await fixture.Http.GetByteArrayAsync(Cache("cas/" + digest)));

        byte[] other = RandomNumberGenerator.GetBytes(1000);
        string wrongKey = Convert.ToHexStringLower(SHA256.HashData(RandomNumberGenerator.GetBytes(16)));
        using (var refused = await fixture.Http.PutAsync(Cache("cas/" + wrongKey), new ByteArrayContent(other)))
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        using (var absent = await fixture.Http.GetAsync(Cache("cas/" + wrongKey)))
            Assert.Equal(HttpStatusCode.NotFound, absent.StatusCode);

        // The entry is an object of the cluster, and S3 beside it still wants a signature.
        await using ChainClient client = fixture.CreateClient();
        Assert.Contains(await client.ListBucketsAsync(), b => b.Name == new Chain.Gateway.BuildCache.BuildCacheOptions().Bucket);
        using var unsigned = await fixture.Http.GetAsync(fixture.EndpointText + "/" + new Chain.Gateway.BuildCache.BuildCacheOptions().Bucket);
        Assert.Equal(HttpStatusCode.Forbidden, unsigned.StatusCode);
    }

    [Fact]
    public async Task Ccache_subdirs_and_gradle_entries_hit_after_a_put()
    {
        byte[] entry = RandomNumberGenerator.GetBytes(5000);
        foreach (string path in new[] { "70/814jabcdefghijklmnopqrstuvwxy", "gradle-key-0123456789abcdef" })
        {
            using (var miss = await fixture.Http.GetAsync(Cache(path)))
                Assert.Equal(HttpStatusCode.NotFound, miss.StatusCode);
            using (var put = await fixture.Http.PutAsync(Cache(path), new ByteArrayContent(entry)))
                Assert.True(put.IsSuccessStatusCode, $"{path}: {(int)put.StatusCode}");
            Assert.Equal(entry, await fixture.Http.GetByteArrayAsync(Cache(path)));
        }
    }
}
