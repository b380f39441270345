using System.Runtime.CompilerServices;
using Chain.Protocol.V1;
using Google.Protobuf;

namespace Chain.Client.Internal;

/// <summary>One page of one chain's listing.</summary>
internal readonly record struct SourcePage(IReadOnlyList<ObjectMeta> Objects, bool Truncated);

/// <summary>Fetches the page of <paramref name="source"/> that starts after <paramref name="startAfter"/> (empty: from the beginning).</summary>
internal delegate Task<SourcePage> PageFetcher(int source, ByteString startAfter, CancellationToken cancellationToken);

/// <summary>Key order of the store: unsigned byte-wise comparison of the UTF-8 key bytes (not UTF-16 ordinal).</summary>
internal static class KeyOrder
{
    public static int Compare(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) => a.SequenceCompareTo(b);

    public static int Compare(ByteString a, ByteString b) => a.Span.SequenceCompareTo(b.Span);
}

/// <summary>
/// K-way merge of per-chain listings, each sorted by key bytes, into one sorted sequence. A chain's next page is
/// fetched (start_after = its last key) when its buffer runs empty and its last page was truncated; the fetch
/// starts before the item that emptied the buffer is handed out.
/// </summary>
internal static class ListMerger
{
    public static async IAsyncEnumerable<ObjectMeta> MergeAsync(
        int sources,
        ByteString startAfter,
        PageFetcher fetch,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sources);
        var cursors = new Cursor[sources];
        for (int i = 0; i < sources; i++)
            cursors[i] = new Cursor(i, startAfter);

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var heap = new PriorityQueue<Cursor, Cursor>(sources, CursorOrder.Instance);
        Task? pending = null;
        Cursor? pendingCursor = null;
        try
        {
            await Task.WhenAll(cursors.Select(c => c.FillAsync(fetch, linked.Token))).ConfigureAwait(false);
            foreach (var cursor in cursors)
            {
                if (cursor.HasItems)
                    heap.Enqueue(cursor, cursor);
            }

            ByteString? last = null;
            while (true)
            {
                if (pending is not null)
                {
                    var task = pending;
                    pending = null;
                    await task.ConfigureAwait(false);
                    if (pendingCursor!.HasItems)
                        heap.Enqueue(pendingCursor, pendingCursor);
                    pendingCursor = null;
                }

                if (!heap.TryDequeue(out var cursor, out _))
                    break;
                var item = cursor.Take();
                if (cursor.HasItems)
                {
                    heap.Enqueue(cursor, cursor);
                }
                else if (cursor.More)
                {
                    pending = cursor.FillAsync(fetch, linked.Token);
                    pendingCursor = cursor;
                }

                // Chains hold disjoint keys; skip a duplicate defensively rather than hand it out twice.
                if (last is not null && KeyOrder.Compare(item.Key, last) <= 0)
                    continue;
                last = item.Key;
                yield return item;
            }
        }
        finally
        {
            if (pending is not null)
            {
                // The consumer stopped early: abandon the prefetch and observe its outcome.
                await linked.CancelAsync().ConfigureAwait(false);
                try
                {
                    await pending.ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // Nobody wants this page any more.
                }
            }
        }
    }

    private sealed class Cursor(int index, ByteString startAfter)
    {
        private readonly Queue<ObjectMeta> _buffer = new();

        public int Index { get; } = index;
        public ByteString After { get; private set; } = startAfter;
        /// <summary>The chain may have more objects than buffered.</summary>
        public bool More { get; private set; } = true;
        public bool HasItems => _buffer.Count > 0;
        public ByteString HeadKey => _buffer.Peek().Key;

        public ObjectMeta Take() => _buffer.Dequeue();

        public async Task FillAsync(PageFetcher fetch, CancellationToken cancellationToken)
        {
            while (_buffer.Count == 0 && More)
            {
                var page = await fetch(Index, After, cancellationToken).ConfigureAwait(false);
                var previous = After;
                foreach (var meta in page.Objects)
                {
                    if (!previous.IsEmpty && KeyOrder.Compare(meta.Key, previous) <= 0)
                        throw new ChainException($"protocol error: chain {Index} listed keys out of order");
                    _buffer.Enqueue(meta);
                    previous = meta.Key;
                }
                if (page.Truncated && page.Objects.Count == 0)
                    throw new ChainException($"protocol error: chain {Index} returned an empty page marked truncated");
                After = previous;
                More = page.Truncated;
            }
        }
    }

    private sealed class CursorOrder : IComparer<Cursor>
    {
        public static readonly CursorOrder Instance = new();

        public int Compare(Cursor? x, Cursor? y)
        {
            int c = KeyOrder.Compare(x!.HeadKey, y!.HeadKey);
            return c != 0 ? c : x.Index.CompareTo(y.Index);
        }
    }
}
