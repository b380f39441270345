using System.Diagnostics;
using System.Security.Cryptography;
using Chain.Client;
using Chain.Harness;
using Chain.Protocol;
using Xunit;

namespace Chain.Integration.Tests;

/// <summary>Multipart uploads (issue 7) on a real cluster with the smallest chunks (256 KiB) and a short GC grace.</summary>
public sealed class MultipartTests() : LocalClusterTest("multipart")
{
    private const int Chunk = Limits.ChunkBytesMin;
    private const int Mib = 1024 * 1024;
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(3);

    protected override LocalClusterOptions Options(string dataDirectory) => new()
    {
        Nodes = 3,
        Chains = 4,
        DataDirectory = dataDirectory,
        ExtraNodeArguments = ["--chunk-gc-grace-ms", ((int)Grace.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture)],
    };

    private ChainClient NewClient() => Cluster.CreateClient(o => o with { ChunkBytes = Chunk });

    private static string Md5Hex(byte[] data) => Convert.ToHexStringLower(MD5.HashData(data));

    private static Task<PartInfo> Upload(ChainClient client, string bucket, string key, string id, int number, byte[] data) =>
        client.UploadPartAsync(bucket, key, id, number, new MemoryStream(data, writable: false));

    /// <summary>Lets the GC grace pass (a time span, not a condition: only references then keep chunks).</summary>
    private static async Task WaitPastGrace()
    {
        var since = Stopwatch.StartNew();
        while (since.Elapsed < Grace + TimeSpan.FromSeconds(1))
            await Task.Delay(200);
    }

    private static async Task<List<string>> ListedKeys(ChainClient client, string bucket)
    {
        var keys = new List<string>();
        await foreach (var o in client.ListAsync(bucket))
            keys.Add(o.Key);
        return keys;
    }

    [Fact]
    public async Task Parts_uploaded_in_parallel_and_out_of_order_compose_into_the_object()
    {
        await using var client = NewClient();
        await client.CreateBucketAsync("mpu");
        // Not a multiple of the chunk size; exactly a multiple; smaller than one chunk (the last part).
        byte[][] parts = [TestData.Content(1, 5 * Mib + 1000), TestData.Content(2, 5 * Mib), TestData.Content(3, 100 * 1024)];
        string id = await client.InitiateMultipartAsync("mpu", "big/object", new MultipartOptions { ContentType = "text/x-test" });

        // An earlier part 2 with other content, replaced below.
        var stale = await Upload(client, "mpu", "big/object", id, 2, TestData.Content(99, 5 * Mib + 7));
        var uploaded = await Task.WhenAll(Enumerable.Range(0, parts.Length).Reverse()
            .Select(i => Task.Run(() => Upload(client, "mpu", "big/object", id, i + 1, parts[i]))));
        var byNumber = uploaded.ToDictionary(p => p.PartNumber);
        for (int i = 0; i < parts.Length; i++)
        {
            Assert.Equal(Md5Hex(parts[i]), byNumber[i + 1].ETag);
            Assert.Equal(parts[i].Length, byNumber[i + 1].Size);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(parts[i])), byNumber[i + 1].Sha256Hex);
            Assert.Equal(parts[i].Length, byNumber[i + 1].Chunks.Sum(c => (long)c.Size));
        }
        Assert.Single(byNumber[3].Chunks); // a small part is still a chunk of its own

        var listedParts = await client.ListPartsAsync("mpu", "big/object", id);
        Assert.Equal([1, 2, 3], listedParts.Select(p => p.PartNumber));
        Assert.Equal(byNumber[2].ETag, listedParts[1].ETag); // replaced, not the stale one
        Assert.Equal(["big/object"], (await client.ListMultipartUploadsAsync("mpu")).Select(u => u.Key));
        Assert.Empty(await ListedKeys(client, "mpu")); // upload state is never listed

        // The replaced part's ETag is no longer valid.
        await Assert.ThrowsAsync<InvalidPartException>(() => client.CompleteMultipartAsync("mpu", "big/object", id,
            [new(1, byNumber[1].ETag), new(2, stale.ETag), new(3, byNumber[3].ETag)]));

        var result = await client.CompleteMultipartAsync("mpu", "big/object", id,
            uploaded.OrderBy(p => p.PartNumber).Select(p => new CompletedPart(p.PartNumber, "\"" + p.ETag + "\"")).ToArray());

        byte[] whole = parts.SelectMany(p => p).ToArray();
        string expectedETag = Convert.ToHexStringLower(MD5.HashData(parts.SelectMany(p => MD5.HashData(p)).ToArray())) + "-3";
        Assert.Equal(expectedETag, result.ETag);
        Assert.Equal(whole.Length, result.Size);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(whole)), result.Sha256Hex);

        byte[] read = await client.GetBytesAsync("mpu", "big/object");
        Assert.True(whole.AsSpan().SequenceEqual(read), "the composed object differs from the parts' bytes");
        var info = await client.StatAsync("mpu", "big/object");
        Assert.Equal("text/x-test", info.ContentType);

        // Ranges across part boundaries (chunks of different sizes meet there) and inside a short last chunk.
        long b1 = parts[0].Length, b2 = b1 + parts[1].Length;
        foreach (var (offset, length) in new (long, long)[] { (b1 - 10, 20), (b1 - Chunk - 5, 2 * Chunk + 10), (b2 - 1, 2), (b2 - 3000, 50_000), (whole.Length - 5, 100), (b1 - 1000, 1000) })
        {
            using var range = new MemoryStream();
            await client.GetRangeAsync("mpu", "big/object", range, offset, length);
            long end = Math.Min(whole.Length, offset + length);
            Assert.True(whole.AsSpan((int)offset, (int)(end - offset)).SequenceEqual(range.ToArray()), $"range {offset}+{length}");
        }

        Assert.Equal(["big/object"], await ListedKeys(client, "mpu"));
        var page = await client.ListPageAsync("mpu", new ListRequestOptions { Delimiter = "/" });
        Assert.Equal(["big/"], page.CommonPrefixes);
        Assert.Empty(page.Objects);
        Assert.Empty(await client.ListMultipartUploadsAsync("mpu"));
        await Assert.ThrowsAsync<NoSuchUploadException>(() => client.ListPartsAsync("mpu", "big/object", id));
    }

    [Fact]
    public async Task Refused_completes_change_nothing()
    {
        await using var client = NewClient();
        await client.CreateBucketAsync("mpu");
        byte[] old = TestData.Content(5, 1000);
        await client.PutAsync("mpu", "k", old);
        string id = await client.InitiateMultipartAsync("mpu", "k");
        byte[] small = TestData.Content(6, Mib), big = TestData.Content(7, 5 * Mib), last = TestData.Content(8, 10);
        var p1 = await Upload(client, "mpu", "k", id, 1, small);
        var p2 = await Upload(client, "mpu", "k", id, 2, big);
        var p3 = await Upload(client, "mpu", "k", id, 3, last);

        await Assert.ThrowsAsync<InvalidPartException>(() =>
            client.CompleteMultipartAsync("mpu", "k", id, [new(2, p2.ETag), new(3, Md5Hex(big))]));
        await Assert.ThrowsAsync<InvalidPartException>(() =>
            client.CompleteMultipartAsync("mpu", "k", id, [new(2, p2.ETag), new(4, p3.ETag)]));
        await Assert.ThrowsAsync<InvalidPartOrderException>(() =>
            client.CompleteMultipartAsync("mpu", "k", id, [new(3, p3.ETag), new(2, p2.ETag)]));
        var tooSmall = await Assert.ThrowsAsync<EntityTooSmallException>(() =>
            client.CompleteMultipartAsync("mpu", "k", id, [new(1, p1.ETag), new(2, p2.ETag)]));
        Assert.Equal("EntityTooSmall", tooSmall.S3ErrorCode);
        await Assert.ThrowsAsync<NoSuchUploadException>(() =>
            client.CompleteMultipartAsync("mpu", "other", id, [new(2, p2.ETag)]));
        await Assert.ThrowsAsync<NoSuchUploadException>(() =>
            client.CompleteMultipartAsync("mpu", "k", "0123456789abcdef0123456789abcdef", [new(2, p2.ETag)]));
        await Assert.ThrowsAsync<BadDigestException>(() =>
            client.UploadPartAsync("mpu", "k", id, 4, new MemoryStream(last), expectedMd5: MD5.HashData(small)));
        // Above the caller's maximum object size (by one byte), or more than 10000 parts: too large.
        await Assert.ThrowsAsync<ObjectTooLargeException>(() =>
            client.CompleteMultipartAsync("mpu", "k", id, [new(2, p2.ETag), new(3, p3.ETag)], maxObjectBytes: 5 * Mib + 9));
        await Assert.ThrowsAsync<ObjectTooLargeException>(() =>
            client.CompleteMultipartAsync("mpu", "k", id, Enumerable.Range(1, 10_001).Select(n => new CompletedPart(n, p3.ETag)).ToArray()));

        // Nothing changed: the old object, the upload and its three parts.
        byte[] kept = await client.GetBytesAsync("mpu", "k");
        Assert.True(old.AsSpan().SequenceEqual(kept));
        Assert.Equal([1, 2, 3], (await client.ListPartsAsync("mpu", "k", id)).Select(p => p.PartNumber));
        Assert.Equal(["k"], await ListedKeys(client, "mpu"));
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.PutAsync("mpu", "\u0001chain-mpu/x", new byte[1]));

        // A single (last) part may be small; the object switches whole.
        var done = await client.CompleteMultipartAsync("mpu", "k", id, [new(3, p3.ETag)]);
        Assert.Equal(Convert.ToHexStringLower(MD5.HashData(MD5.HashData(last))) + "-1", done.ETag);
        byte[] composed = await client.GetBytesAsync("mpu", "k");
        Assert.True(last.AsSpan().SequenceEqual(composed));
        await Assert.ThrowsAsync<NoSuchUploadException>(() => client.AbortMultipartAsync("mpu", "k", id));
    }

    /// <summary>Every page of a listing of uploads with the given options, following the next markers.</summary>
    private static async Task<List<MultipartUploadPage>> UploadPages(ChainClient client, string bucket, MultipartUploadListOptions options)
    {
        var pages = new List<MultipartUploadPage>();
        while (true)
        {
            Assert.True(pages.Count < 20, "the listing does not end");
            var page = await client.ListMultipartUploadsPageAsync(bucket, options);
            Assert.InRange(page.Uploads.Count + page.CommonPrefixes.Count, 0, options.MaxUploads);
            pages.Add(page);
            if (!page.IsTruncated)
                return pages;
            options = options with { KeyMarker = page.NextKeyMarker, UploadIdMarker = page.NextUploadIdMarker };
        }
    }

    [Fact]
    public async Task Upload_and_part_listings_page_after_their_markers_in_key_order()
    {
        await using var client = NewClient();
        await client.CreateBucketAsync("pages");
        // Byte order of the keys, U+0001 (escaped in the records' keys) included: k < k\u0001 < k\u0001a < k\u0002 < ka.
        string[] keys = ["k", "k", "k\u0001", "k\u0001a", "k\u0002", "ka", "z/1", "z/2"];
        var ids = new List<(string Key, string Id)>();
        foreach (string key in keys.Reverse())
            ids.Add((key, await client.InitiateMultipartAsync("pages", key)));
        var expected = ids.OrderBy(u => u.Key, StringComparer.Ordinal).ThenBy(u => u.Id, StringComparer.Ordinal).ToArray();

        foreach (int size in new[] { 1, 2, 3, 1000 })
        {
            var pages = await UploadPages(client, "pages", new MultipartUploadListOptions { MaxUploads = size });
            Assert.Equal(expected, pages.SelectMany(p => p.Uploads).Select(u => (u.Key, u.UploadId)));
            Assert.Equal((keys.Length + size - 1) / size, pages.Count);
        }
        Assert.Equal(expected.Length, (await client.ListMultipartUploadsAsync("pages")).Count);
        Assert.Equal(["ka"], (await client.ListMultipartUploadsPageAsync("pages", new() { KeyMarker = "k\u0002" })).Uploads.Select(u => u.Key).Take(1));
        Assert.Equal(["z/1", "z/2"], (await client.ListMultipartUploadsAsync("pages", "z/")).Select(u => u.Key));

        // Delimiter: z/ is one entry; a page that ends with it is followed by nothing under it.
        var rolled = await UploadPages(client, "pages", new MultipartUploadListOptions { Delimiter = "/", MaxUploads = 2, KeyMarker = "k\u0002" });
        Assert.Equal(["ka"], rolled.SelectMany(p => p.Uploads).Select(u => u.Key));
        Assert.Equal(["z/"], rolled.SelectMany(p => p.CommonPrefixes));
        var afterPrefix = await client.ListMultipartUploadsPageAsync("pages", new() { Delimiter = "/", KeyMarker = "z/" });
        Assert.Empty(afterPrefix.Uploads);
        Assert.Empty(afterPrefix.CommonPrefixes);

        // A key at the longest a multipart upload allows is listed; one byte more is refused at initiation.
        string longest = new('l', ChainClient.MultipartKeyBytesMax);
        string longId = await client.InitiateMultipartAsync("pages", longest);
        Assert.Contains((await client.ListMultipartUploadsAsync("pages", "l")), u => u.Key == longest && u.UploadId == longId);
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.InitiateMultipartAsync("pages", longest + "l"));

        // Parts: five, pages of two, after the marker.
        string id = ids[0].Id;
        string partsKey = ids[0].Key;
        foreach (int n in new[] { 4, 1, 5, 3, 2 })
            await Upload(client, "pages", partsKey, id, n, TestData.Content(n, 10 + n));
        var seen = new List<int>();
        var options = new PartListOptions { MaxParts = 2 };
        for (int round = 0; ; round++)
        {
            Assert.True(round < 5, "the part listing does not end");
            var page = await client.ListPartsPageAsync("pages", partsKey, id, options);
            seen.AddRange(page.Parts.Select(p => p.PartNumber));
            Assert.Equal(page.Parts[^1].PartNumber, page.NextPartNumberMarker);
            if (!page.IsTruncated)
                break;
            options = options with { PartNumberMarker = page.NextPartNumberMarker };
        }
        Assert.Equal([1, 2, 3, 4, 5], seen);
        Assert.Equal([4, 5], (await client.ListPartsPageAsync("pages", partsKey, id, new() { PartNumberMarker = 3 })).Parts.Select(p => p.PartNumber));
        Assert.Empty((await client.ListPartsPageAsync("pages", partsKey, id, new() { PartNumberMarker = 10_000 })).Parts);
        Assert.Equal(15, (await client.ListPartsAsync("pages", partsKey, id)).Sum(p => p.Size - 10));
    }

    [Fact]
    public async Task An_upload_in_progress_holds_its_chunks_against_gc_and_abort_lets_them_go()
    {
        await using var client = NewClient();
        await client.CreateBucketAsync("mpu");
        string id = await client.InitiateMultipartAsync("mpu", "g");
        byte[] a = TestData.Content(11, 5 * Mib + 3), b = TestData.Content(12, 300_000);
        var pa = await Upload(client, "mpu", "g", id, 1, a);
        var pb = await Upload(client, "mpu", "g", id, 2, b);
        int chunks = pa.Chunks.Concat(pb.Chunks).DistinctBy(c => c.Sha256Hex).Count();

        // Past the grace, only the part records keep the chunks.
        await WaitPastGrace();
        var held = await client.CollectGarbageAsync();
        Assert.Equal(0, held.Deleted);
        Assert.True(held.StoredChunks >= chunks, $"{held.StoredChunks} chunks stored, the parts have {chunks}"); // + the upload record's own
        Assert.Equal([1, 2], (await client.ListPartsAsync("mpu", "g", id)).Select(p => p.PartNumber));

        await client.AbortMultipartAsync("mpu", "g", id);
        Assert.Empty(await client.ListMultipartUploadsAsync("mpu"));
        Assert.Empty(await ListedKeys(client, "mpu"));
        await Assert.ThrowsAsync<NoSuchUploadException>(() => Upload(client, "mpu", "g", id, 3, b));

        // The chunks are garbage now: a collection takes them once their grace has passed.
        var deadline = Stopwatch.StartNew();
        GcReport report;
        do
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), "the aborted upload's chunks were never collected");
            report = await client.CollectGarbageAsync();
        } while (report.StoredChunks > 0);
        Assert.True(await client.DeleteBucketAsync("mpu"));
    }

    [Fact]
    public async Task Completing_parts_older_than_half_the_grace_touches_their_chunks()
    {
        await using var client = NewClient();
        await client.CreateBucketAsync("mpu");
        string id = await client.InitiateMultipartAsync("mpu", "late");
        byte[] a = TestData.Content(21, 5 * Mib), b = TestData.Content(22, Chunk + 1);
        var pa = await Upload(client, "mpu", "late", id, 1, a);
        var pb = await Upload(client, "mpu", "late", id, 2, b);
        await WaitPastGrace();
        await client.CollectGarbageAsync();
        await client.CompleteMultipartAsync("mpu", "late", id, [new(1, pa.ETag), new(2, pb.ETag)]);
        // The object's chunks survive collections past the grace: the object's record now holds them.
        await WaitPastGrace();
        await client.CollectGarbageAsync();
        byte[] read = await client.GetBytesAsync("mpu", "late");
        Assert.True(a.Concat(b).ToArray().AsSpan().SequenceEqual(read));
    }
}
