using System.Collections.Concurrent;
using System.Text;
using Chain.Client.Internal;
using Chain.Protocol.V1;
using Google.Protobuf;

namespace Chain.Client.Tests;

public class ListMergerTests
{
    /// <summary>Serves sorted key lists as pages of <paramref name="pageSize"/>, honouring start_after byte-wise.</summary>
    private sealed class PagedSources(IReadOnlyList<IReadOnlyList<string>> sources, int pageSize)
    {
        public ConcurrentQueue<(int Source, string StartAfter)> Requests { get; } = new();

        public Task<SourcePage> FetchAsync(int source, ByteString startAfter, CancellationToken cancellationToken)
        {
            Requests.Enqueue((source, startAfter.ToStringUtf8()));
            var keys = sources[source]
                .Select(Encoding.UTF8.GetBytes)
                .OrderBy(k => k, ByteArrayOrder.Instance)
                .Where(k => startAfter.IsEmpty || k.AsSpan().SequenceCompareTo(startAfter.Span) > 0)
                .ToList();
            var page = keys.Take(pageSize).Select(k => TestData.Meta(Encoding.UTF8.GetString(k))).ToList();
            return Task.FromResult(new SourcePage(page, keys.Count > pageSize));
        }
    }

    private sealed class ByteArrayOrder : IComparer<byte[]>
    {
        public static readonly ByteArrayOrder Instance = new();
        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }

    private static async Task<List<string>> Collect(IAsyncEnumerable<ObjectMeta> items)
    {
        var keys = new List<string>();
        await foreach (var item in items)
            keys.Add(item.Key.ToStringUtf8());
        return keys;
    }

    [Fact]
    public async Task Merges_in_unsigned_byte_order_of_utf8_keys_not_utf16_order()
    {
        // U+FF21 (EF BC A1) sorts before U+1F600 (F0 9F 98 80) by UTF-8 bytes, but after it in UTF-16 ordinal order
        // (FF21 > D83D); 'é' (C3 A9) sorts after 'z'; upper case before lower case.
        string fullwidthA = "\uFF21";
        string emoji = "\U0001F600";
        var sources = new List<IReadOnlyList<string>>
        {
            new[] { "b", emoji, "Z" },
            new[] { "a", fullwidthA, "é" },
            new[] { "z", "aa", "é1" },
        };
        var expected = sources.SelectMany(s => s).Select(Encoding.UTF8.GetBytes)
            .OrderBy(k => k, ByteArrayOrder.Instance).Select(Encoding.UTF8.GetString).ToList();
        Assert.Equal(new[] { "Z", "a", "aa", "b", "z", "é", "é1", fullwidthA, emoji }, expected);
        Assert.True(string.CompareOrdinal(emoji, fullwidthA) < 0, "the test needs a case where UTF-16 order differs");

        var fake = new PagedSources(sources, pageSize: 100);
        var merged = await Collect(ListMerger.MergeAsync(3, ByteString.Empty, fake.FetchAsync));

        Assert.Equal(expected, merged);
    }

    [Fact]
    public async Task Fetches_next_page_with_start_after_the_last_key_of_the_chain()
    {
        var sources = new List<IReadOnlyList<string>>
        {
            Enumerable.Range(0, 7).Select(i => $"k{i * 3:D3}").ToArray(),
            Enumerable.Range(0, 7).Select(i => $"k{i * 3 + 1:D3}").ToArray(),
            Enumerable.Range(0, 2).Select(i => $"k{i * 3 + 2:D3}").ToArray(),
        };
        var fake = new PagedSources(sources, pageSize: 3);

        var merged = await Collect(ListMerger.MergeAsync(3, ByteString.Empty, fake.FetchAsync));

        var expected = sources.SelectMany(s => s).OrderBy(k => k, StringComparer.Ordinal).ToList();
        Assert.Equal(expected, merged);
        var source0 = fake.Requests.Where(r => r.Source == 0).Select(r => r.StartAfter).ToList();
        Assert.Equal(new[] { "", "k006", "k015" }, source0);
        var source2 = fake.Requests.Where(r => r.Source == 2).Select(r => r.StartAfter).ToList();
        Assert.Equal(new[] { "" }, source2); // one page, not truncated: never asked again
    }

    [Fact]
    public async Task Passes_the_callers_start_after_to_every_chain()
    {
        var sources = new List<IReadOnlyList<string>> { new[] { "a", "c", "e" }, new[] { "b", "d", "f" } };
        var fake = new PagedSources(sources, pageSize: 1);

        var merged = await Collect(ListMerger.MergeAsync(2, ByteString.CopyFromUtf8("c"), fake.FetchAsync));

        Assert.Equal(new[] { "d", "e", "f" }, merged);
        Assert.Contains((0, "c"), fake.Requests);
        Assert.Contains((1, "c"), fake.Requests);
    }

    [Fact]
    public async Task Empty_chains_and_zero_chains_yield_nothing()
    {
        var fake = new PagedSources(new List<IReadOnlyList<string>> { Array.Empty<string>(), Array.Empty<string>() }, 10);
        Assert.Empty(await Collect(ListMerger.MergeAsync(2, ByteString.Empty, fake.FetchAsync)));
        Assert.Empty(await Collect(ListMerger.MergeAsync(0, ByteString.Empty, fake.FetchAsync)));
    }

    [Fact]
    public async Task A_chain_that_lists_out_of_order_is_a_protocol_error()
    {
        Task<SourcePage> Fetch(int source, ByteString after, CancellationToken ct) =>
            Task.FromResult(new SourcePage(new[] { TestData.Meta("b"), TestData.Meta("a") }, false));

        await Assert.ThrowsAsync<ChainException>(() => Collect(ListMerger.MergeAsync(1, ByteString.Empty, Fetch)));
    }

    [Fact]
    public async Task A_truncated_empty_page_is_a_protocol_error_not_an_endless_loop()
    {
        Task<SourcePage> Fetch(int source, ByteString after, CancellationToken ct) =>
            Task.FromResult(new SourcePage(Array.Empty<ObjectMeta>(), true));

        await Assert.ThrowsAsync<ChainException>(() => Collect(ListMerger.MergeAsync(1, ByteString.Empty, Fetch)));
    }

    [Fact]
    public async Task Stopping_early_abandons_the_prefetch_quietly()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<SourcePage> Fetch(int source, ByteString after, CancellationToken ct)
        {
            if (after.IsEmpty)
                return new SourcePage(new[] { TestData.Meta("a") }, true);
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
            throw new InvalidOperationException("unreachable");
        }

        var keys = new List<string>();
        await foreach (var item in ListMerger.MergeAsync(1, ByteString.Empty, Fetch))
        {
            keys.Add(item.Key.ToStringUtf8());
            break;
        }

        Assert.Equal(new[] { "a" }, keys);
        Assert.True(started.Task.IsCompleted, "the next page is prefetched while the consumer handles the item");
    }

    [Fact]
    public async Task Failure_of_a_page_fetch_surfaces_to_the_consumer()
    {
        Task<SourcePage> Fetch(int source, ByteString after, CancellationToken ct) =>
            after.IsEmpty
                ? Task.FromResult(new SourcePage(new[] { TestData.Meta("a") }, true))
                : Task.FromException<SourcePage>(new ChainUnavailableException("down"));

        var keys = new List<string>();
        await Assert.ThrowsAsync<ChainUnavailableException>(async () =>
        {
            await foreach (var item in ListMerger.MergeAsync(1, ByteString.Empty, Fetch))
                keys.Add(item.Key.ToStringUtf8());
        });
        Assert.Equal(new[] { "a" }, keys);
    }
}
