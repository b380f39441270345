using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Chain.Client;

namespace Chain.Server.Tests;

/// <summary>
/// Listing at scale across many chains (complete, byte-ordered, the same through every page size, delimiter roll-up
/// against an independently known answer, start-after), and listing while writers put and delete.
/// </summary>
public class ListingScaleTests
{
    private const int Chains = 16;

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    private static int CompareBytes(string a, string b) => Utf8(a).AsSpan().SequenceCompareTo(Utf8(b));

    private static List<string> ByteOrdered(IEnumerable<string> keys)
    {
        var list = keys.ToList();
        list.Sort(CompareBytes);
        return list;
    }

    /// <summary>Key i: every fifth one top-level ("top{i}"), the others under one of 100 directories ("d{i%100}/k{i}").</summary>
    private static string KeyOf(int i) => i % 5 == 0 ? $"top{i}" : $"d{i % 100}/k{i}";

    private static async Task<TimeSpan> WriteKeysAsync(ChainClient client, string bucket, int count, int concurrency)
    {
        var sw = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = concurrency },
            async (i, ct) => await client.PutAsync(bucket, KeyOf(i), Utf8(i.ToString(System.Globalization.CultureInfo.InvariantCulture)), cancellationToken: ct));
        return sw.Elapsed;
    }

    /// <summary>Every page with these options; entries (objects and prefixes) in page order.</summary>
    private static async Task<(List<string> Keys, List<string> Prefixes)> AllPagesAsync(ChainClient client, string bucket, ListRequestOptions options)
    {
        var keys = new List<string>();
        var prefixes = new List<string>();
        string? token = null;
        for (int pages = 0; ; pages++)
        {
            Assert.True(pages < 1_000_000 / options.MaxKeys + 10, "listing does not end");
            ListPage page = await client.ListPageAsync(bucket, options with { ContinuationToken = token });
            Assert.True(page.Objects.Count + page.CommonPrefixes.Count <= options.MaxKeys);
            keys.AddRange(page.Objects.Select(o => o.Key));
            prefixes.AddRange(page.CommonPrefixes);
            if (!page.IsTruncated)
                return (keys, prefixes);
            token = page.NextContinuationToken;
        }
    }

    private static async Task CheckListingsAsync(InProcessCluster c, int count)
    {
        using ChainClient client = c.CreateClient(TimeSpan.FromSeconds(60));
        string bucket = $"many-{count}";
        await client.CreateBucketAsync(bucket);
        TimeSpan writing = await WriteKeysAsync(client, bucket, count, concurrency: 64);
        Console.WriteLine($"listing scale: wrote {count} keys over {Chains} chains in {writing.TotalSeconds:0.0} s ({count / writing.TotalSeconds:0} puts/s)");

        List<string> expected = ByteOrdered(Enumerable.Range(0, count).Select(KeyOf));
        var sw = Stopwatch.StartNew();
        var all = new List<string>();
        await foreach (ObjectInfo o in client.ListAsync(bucket))
            all.Add(o.Key);
        Console.WriteLine($"listing scale: full listing of {all.Count} keys in {sw.Elapsed.TotalSeconds:0.00} s");
        Assert.Equal(expected, all);

        foreach (int maxKeys in new[] { 1000, 777 })
        {
            (List<string> keys, List<string> prefixes) = await AllPagesAsync(client, bucket, new ListRequestOptions { MaxKeys = maxKeys });
            Assert.Empty(prefixes);
            Assert.Equal(expected, keys);
            Console.WriteLine($"listing scale: paged by {maxKeys} after {sw.Elapsed.TotalSeconds:0.0} s");
        }

        // Delimiter: the directories roll up into exactly the expected prefixes, the top-level keys stay objects.
        List<string> topLevel = ByteOrdered(Enumerable.Range(0, count).Where(i => i % 5 == 0).Select(KeyOf));
        List<string> directories = ByteOrdered(Enumerable.Range(0, count).Where(i => i % 5 != 0).Select(i => $"d{i % 100}/").Distinct());
        Assert.Equal(80, directories.Count);
        foreach (int maxKeys in new[] { 1000, 97 })
        {
            (List<string> keys, List<string> prefixes) = await AllPagesAsync(client, bucket, new ListRequestOptions { Delimiter = "/", MaxKeys = maxKeys });
            Assert.Equal(topLevel, keys);
            Assert.Equal(directories, prefixes);
            Console.WriteLine($"listing scale: delimiter listing paged by {maxKeys} after {sw.Elapsed.TotalSeconds:0.0} s");
        }
        (List<string> inD7, List<string> none) = await AllPagesAsync(client, bucket, new ListRequestOptions { Prefix = "d7/", Delimiter = "/", MaxKeys = 333 });
        Assert.Empty(none);
        Assert.Equal(expected.Where(k => k.StartsWith("d7/", StringComparison.Ordinal)).ToList(), inD7);

        Console.WriteLine($"listing scale: paged and delimiter listings checked after {sw.Elapsed.TotalSeconds:0.0} s");
        // Start-after: from a key in the middle, a key that does not exist, and the last key.
        foreach (string after in new[] { expected[count / 3], "d5/k", expected[^1] })
        {
            List<string> rest = expected.Where(k => CompareBytes(k, after) > 0).ToList();
            (List<string> keys, _) = await AllPagesAsync(client, bucket, new ListRequestOptions { StartAfter = after, MaxKeys = 777 });
            Assert.Equal(rest, keys);
            var streamed = new List<string>();
            await foreach (ObjectInfo o in client.ListAsync(bucket, startAfter: after))
                streamed.Add(o.Key);
            Assert.Equal(rest, streamed);
        }
        Console.WriteLine($"listing scale: all listings checked in {sw.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public async Task Ten_thousand_keys_over_sixteen_chains_list_completely_in_byte_order_through_every_page_size()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: Chains);
        await CheckListingsAsync(c, 10_000);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task A_hundred_thousand_keys_over_sixteen_chains_list_completely_in_byte_order_through_every_page_size()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: Chains);
        await CheckListingsAsync(c, 100_000);
    }

    /// <summary>
    /// Writers put new keys and delete some of their earlier ones while listings run. Each listing must hold every key
    /// whose put was acknowledged before the listing began and whose delete had not started before it ended, and no key
    /// that was never written. Times are taken conservatively: an acknowledgement is stamped after it arrives, a delete
    /// before it is sent.
    /// </summary>
    [Fact]
    public async Task Listings_under_concurrent_puts_and_deletes_hold_every_settled_key_and_nothing_unwritten()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: Chains);
        using ChainClient writer = c.CreateClient();
        using ChainClient lister = c.CreateClient();
        await writer.CreateBucketAsync("moving");
        var acked = new ConcurrentDictionary<string, long>();      // key -> timestamp after its put was acknowledged
        var started = new ConcurrentDictionary<string, bool>();    // every key a put was started for
        var deleting = new ConcurrentDictionary<string, long>();   // key -> timestamp before its delete was sent
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        const int Writers = 6, OpsPerWriterMax = 5000;

        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            var mine = new List<string>();
            var random = new Random(w);
            for (int i = 0; i < OpsPerWriterMax && !stop.IsCancellationRequested; i++)
            {
                string key = $"w{w}/{i:D5}";
                started[key] = true;
                await writer.PutAsync("moving", key, Utf8(key));
                acked[key] = Stopwatch.GetTimestamp();
                mine.Add(key);
                if (i % 3 == 2)
                {
                    string victim = mine[random.Next(mine.Count)];
                    mine.Remove(victim);
                    deleting[victim] = Stopwatch.GetTimestamp();
                    await writer.DeleteAsync("moving", victim);
                }
            }
        })).ToList();

        int listings = 0, checkedKeys = 0;
        while (!stop.IsCancellationRequested)
        {
            long begin = Stopwatch.GetTimestamp();
            var listed = new List<string>();
            await foreach (ObjectInfo o in lister.ListAsync("moving"))
                listed.Add(o.Key);
            long end = Stopwatch.GetTimestamp();
            var set = listed.ToHashSet(StringComparer.Ordinal);
            Assert.Equal(listed.Count, set.Count);
            Assert.Equal(ByteOrdered(listed), listed);
            foreach (string key in listed)
                Assert.True(started.ContainsKey(key), $"listing holds '{key}', which was never written");
            foreach (var (key, ackedAt) in acked)
            {
                bool deleteStarted = deleting.TryGetValue(key, out long deleteAt) && deleteAt < end;
                if (ackedAt < begin && !deleteStarted)
                {
                    Assert.True(set.Contains(key), $"listing {listings} misses '{key}', acknowledged before it began and never deleted");
                    checkedKeys++;
                }
            }
            listings++;
        }
        await Task.WhenAll(writers);
        Console.WriteLine($"listing under writes: {listings} listings, {acked.Count} puts, {deleting.Count} deletes, {checkedKeys} key checks");
        Assert.True(listings >= 3, $"only {listings} listings ran");
        Assert.True(checkedKeys > 0);
    }
}
