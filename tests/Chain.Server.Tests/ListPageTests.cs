using System.Text;
using Chain.Client;

namespace Chain.Server.Tests;

/// <summary>Paged listing with delimiter roll-up (S3 ListObjectsV2 semantics) across the chains of an in-process cluster.</summary>
public class ListPageTests
{
    private static readonly string[] NestedKeys =
    [
        "a.txt", "b/1", "b/2", "b/c/3", "b0", "c/d/e", "d", "e/", "e/f", "z/zz/zzz", "é/1", "日本/語",
    ];

    private static async Task PutAllAsync(ChainClient client, string bucket, IEnumerable<string> keys)
    {
        foreach (string k in keys)
            await client.PutAsync(bucket, k, Encoding.UTF8.GetBytes(k));
    }

    /// <summary>Every page of a listing, following continuation tokens; entries in order, objects and prefixes merged.</summary>
    private static async Task<(List<string> Keys, List<string> Prefixes, List<string> Entries, int Pages)> AllPagesAsync(
        ChainClient client, string bucket, ListRequestOptions options)
    {
        var keys = new List<string>();
        var prefixes = new List<string>();
        var entries = new List<string>();
        int pages = 0;
        string? token = null;
        while (true)
        {
            ListPage page = await client.ListPageAsync(bucket, options with { ContinuationToken = token });
            pages++;
            Assert.True(page.Objects.Count + page.CommonPrefixes.Count <= options.MaxKeys);
            keys.AddRange(page.Objects.Select(o => o.Key));
            prefixes.AddRange(page.CommonPrefixes);
            entries.AddRange(Sorted(page.Objects.Select(o => o.Key).Concat(page.CommonPrefixes)));
            if (!page.IsTruncated)
            {
                Assert.Null(page.NextContinuationToken);
                return (keys, prefixes, entries, pages);
            }
            Assert.NotNull(page.NextContinuationToken);
            token = page.NextContinuationToken;
            Assert.True(pages < 1000, "listing does not end");
        }
    }

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static readonly ByteOrder Instance = new();
        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }

    private static List<string> Sorted(IEnumerable<string> items) => items.OrderBy(Utf8, ByteOrder.Instance).ToList();

    [Fact]
    public async Task Delimiter_rolls_nested_keys_up_into_common_prefixes_across_chains()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 4);
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("roll");
        await PutAllAsync(client, "roll", NestedKeys);

        ListPage top = await client.ListPageAsync("roll", new ListRequestOptions { Delimiter = "/" });
        Assert.Equal(["a.txt", "b0", "d"], top.Objects.Select(o => o.Key));
        Assert.Equal(Sorted(["b/", "c/", "e/", "z/", "é/", "日本/"]), top.CommonPrefixes);
        Assert.False(top.IsTruncated);
        Assert.Null(top.NextContinuationToken);

        ListPage underB = await client.ListPageAsync("roll", new ListRequestOptions { Prefix = "b/", Delimiter = "/" });
        Assert.Equal(["b/1", "b/2"], underB.Objects.Select(o => o.Key));
        Assert.Equal(["b/c/"], underB.CommonPrefixes);

        ListPage underE = await client.ListPageAsync("roll", new ListRequestOptions { Prefix = "e/", Delimiter = "/" });
        Assert.Equal(["e/", "e/f"], underE.Objects.Select(o => o.Key));
        Assert.Empty(underE.CommonPrefixes);

        ListPage noDelimiter = await client.ListPageAsync("roll", new ListRequestOptions());
        Assert.Equal(Sorted(NestedKeys), noDelimiter.Objects.Select(o => o.Key));
        Assert.Empty(noDelimiter.CommonPrefixes);
    }

    [Fact]
    public async Task Small_pages_add_up_to_the_unpaged_listing()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 4);
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("pages");
        var keys = NestedKeys.Concat(Enumerable.Range(0, 40).Select(i => $"k{i:D2}")).Concat(Enumerable.Range(0, 30).Select(i => $"b/x{i:D2}")).ToList();
        await PutAllAsync(client, "pages", keys);

        foreach (string? delimiter in new[] { null, "/" })
        {
            ListPage whole = await client.ListPageAsync("pages", new ListRequestOptions { Delimiter = delimiter });
            Assert.False(whole.IsTruncated);
            var wholeEntries = Sorted(whole.Objects.Select(o => o.Key).Concat(whole.CommonPrefixes));
            foreach (int maxKeys in new[] { 1, 2, 3, 7 })
            {
                var (pagedKeys, pagedPrefixes, entries, pages) = await AllPagesAsync(client, "pages", new ListRequestOptions { Delimiter = delimiter, MaxKeys = maxKeys });
                Assert.Equal(whole.Objects.Select(o => o.Key), pagedKeys);
                Assert.Equal(whole.CommonPrefixes, pagedPrefixes);
                Assert.Equal(wholeEntries, entries);
                Assert.Equal((wholeEntries.Count + maxKeys - 1) / maxKeys, pages);
            }
        }

        var listed = new List<string>();
        await foreach (ObjectInfo o in client.ListAsync("pages"))
            listed.Add(o.Key);
        var (all, _, _, _) = await AllPagesAsync(client, "pages", new ListRequestOptions { MaxKeys = 5 });
        Assert.Equal(listed, all);
        Assert.Equal(Sorted(keys), all);
    }

    [Fact]
    public async Task Continuation_token_round_trips_and_start_after_bounds_the_listing()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 4);
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("tok");
        await PutAllAsync(client, "tok", NestedKeys);

        ListPage first = await client.ListPageAsync("tok", new ListRequestOptions { Delimiter = "/", MaxKeys = 2 });
        Assert.Equal(["a.txt"], first.Objects.Select(o => o.Key));
        Assert.Equal(["b/"], first.CommonPrefixes);
        Assert.True(first.IsTruncated);
        string token = first.NextContinuationToken!;

        // The same token gives the same page, and it ends the previous page's common prefix: b/... never comes back.
        ListPage second = await client.ListPageAsync("tok", new ListRequestOptions { Delimiter = "/", MaxKeys = 2, ContinuationToken = token });
        ListPage again = await client.ListPageAsync("tok", new ListRequestOptions { Delimiter = "/", MaxKeys = 2, ContinuationToken = token });
        Assert.Equal(["b0"], second.Objects.Select(o => o.Key));
        Assert.Equal(["c/"], second.CommonPrefixes);
        Assert.Equal(second.Objects.Select(o => o.Key), again.Objects.Select(o => o.Key));
        Assert.Equal(second.CommonPrefixes, again.CommonPrefixes);
        Assert.Equal(second.NextContinuationToken, again.NextContinuationToken);

        // The token wins over start-after.
        ListPage both = await client.ListPageAsync("tok", new ListRequestOptions { Delimiter = "/", MaxKeys = 2, ContinuationToken = token, StartAfter = "x" });
        Assert.Equal(second.Objects.Select(o => o.Key), both.Objects.Select(o => o.Key));

        ListPage afterB0 = await client.ListPageAsync("tok", new ListRequestOptions { StartAfter = "b0" });
        Assert.Equal(Sorted(NestedKeys).Where(k => ByteOrder.Instance.Compare(Utf8(k), Utf8("b0")) > 0), afterB0.Objects.Select(o => o.Key));

        ListPage afterD = await client.ListPageAsync("tok", new ListRequestOptions { StartAfter = "d", Delimiter = "/" });
        Assert.Empty(afterD.Objects);
        Assert.Equal(Sorted(["e/", "z/", "é/", "日本/"]), afterD.CommonPrefixes);

        // Paging a start-after listing one entry at a time gives the same.
        var (keys, prefixes, _, _) = await AllPagesAsync(client, "tok", new ListRequestOptions { StartAfter = "d", Delimiter = "/", MaxKeys = 1 });
        Assert.Empty(keys);
        Assert.Equal(afterD.CommonPrefixes, prefixes);
    }

    [Fact]
    public async Task Malformed_arguments_are_rejected()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 4);
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("bad");
        await PutAllAsync(client, "bad", NestedKeys);

        string notUtf8 = Convert.ToBase64String([0x62, 0xFF]).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        foreach (string token in new[] { "!!!not base64!!!", "", "a", notUtf8 })
        {
            await Assert.ThrowsAsync<ChainArgumentException>(() =>
                client.ListPageAsync("bad", new ListRequestOptions { ContinuationToken = token }));
        }

        // A token of another prefix's listing.
        ListPage page = await client.ListPageAsync("bad", new ListRequestOptions { MaxKeys = 1 });
        await Assert.ThrowsAsync<ChainArgumentException>(() =>
            client.ListPageAsync("bad", new ListRequestOptions { Prefix = "z", ContinuationToken = page.NextContinuationToken }));

        foreach (int maxKeys in new[] { 0, -1, 1001 })
        {
            await Assert.ThrowsAsync<ChainArgumentException>(() =>
                client.ListPageAsync("bad", new ListRequestOptions { MaxKeys = maxKeys }));
        }
    }

    [Fact]
    public async Task Keys_under_a_common_prefix_are_skipped_and_the_prefix_comes_once()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 4);
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("many");
        var keys = Enumerable.Range(0, 200).Select(i => $"big/{i:D3}")
            .Concat(["big/deeper/x", "big0", "a", "bif/1", "big~", "c"]).ToList();
        await PutAllAsync(client, "many", keys);

        ListPage whole = await client.ListPageAsync("many", new ListRequestOptions { Delimiter = "/" });
        Assert.Equal(["a", "big0", "big~", "c"], whole.Objects.Select(o => o.Key));
        Assert.Equal(["bif/", "big/"], whole.CommonPrefixes);

        foreach (int maxKeys in new[] { 1, 2, 3 })
        {
            var (pagedKeys, prefixes, _, pages) = await AllPagesAsync(client, "many", new ListRequestOptions { Delimiter = "/", MaxKeys = maxKeys });
            Assert.Equal(["a", "big0", "big~", "c"], pagedKeys);
            Assert.Equal(["bif/", "big/"], prefixes);
            Assert.Equal((6 + maxKeys - 1) / maxKeys, pages);
        }

        // Within the prefix, the 200 keys come out one by one and the nested one rolls up.
        var (inner, innerPrefixes, _, _) = await AllPagesAsync(client, "many", new ListRequestOptions { Prefix = "big/", Delimiter = "/", MaxKeys = 64 });
        Assert.Equal(Enumerable.Range(0, 200).Select(i => $"big/{i:D3}"), inner);
        Assert.Equal(["big/deeper/"], innerPrefixes);
    }
}
