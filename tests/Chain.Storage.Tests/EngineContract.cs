using static Chain.Storage.Tests.TestUtil;

namespace Chain.Storage.Tests;

/// <summary>The behaviour every <see cref="IKvEngine"/> must have; runs against each implementation.</summary>
public abstract class EngineContract : IDisposable
{
    protected const string Default = "default";
    protected const string Meta = "meta";
    protected const string Data = "data";
    protected static readonly string[] StandardFamilies = [Meta, Data];

    private readonly List<IKvEngine> _engines = new();
    private int _engineCount;

    protected TempDirectory Temp { get; } = new();

    /// <summary>Creates a fresh, empty engine with "default" plus <paramref name="columnFamilies"/>.</summary>
    protected abstract IKvEngine CreateEngine(IReadOnlyList<string> columnFamilies, string directory);

    /// <summary>Opens a checkpoint written by <see cref="IKvEngine.Checkpoint"/>.</summary>
    protected abstract IKvEngine OpenCheckpoint(string directory, IReadOnlyList<string> columnFamilies);

    /// <summary>True when concurrent writers share synced writes (SyncedWrites &lt; BatchesWritten).</summary>
    protected abstract bool SharesSyncedWrites { get; }

    protected IKvEngine NewEngine(params string[] columnFamilies)
    {
        var families = columnFamilies.Length == 0 ? StandardFamilies : columnFamilies;
        return Track(CreateEngine(families, Temp.Sub("engine" + Interlocked.Increment(ref _engineCount))));
    }

    protected T Track<T>(T engine) where T : IKvEngine
    {
        lock (_engines)
        {
            _engines.Add(engine);
        }

        return engine;
    }

    public virtual void Dispose()
    {
        lock (_engines)
        {
            foreach (var engine in _engines)
            {
                engine.Dispose();
            }
        }

        Temp.Dispose();
        GC.SuppressFinalize(this);
    }

    // ------------------------------------------------------------------ basics

    [Fact]
    public async Task PutGetDelete()
    {
        var engine = NewEngine();
        Assert.Null(engine.Get(Default, S("a")));

        await engine.WriteAsync(new KvBatch().Put(Default, S("a"), S("1")).Put(Default, S("b"), S("2")));
        Assert.Equal(S("1"), engine.Get(Default, S("a")));
        Assert.Equal(S("2"), engine.Get(Default, S("b")));

        await engine.WriteAsync(new KvBatch().Put(Default, S("a"), S("3")));
        Assert.Equal(S("3"), engine.Get(Default, S("a")));

        await engine.WriteAsync(new KvBatch().Delete(Default, S("a")).Delete(Default, S("missing")));
        Assert.Null(engine.Get(Default, S("a")));
        Assert.Equal(S("2"), engine.Get(Default, S("b")));
    }

    [Fact]
    public async Task EmptyKeysAndValuesAreDistinctFromMissing()
    {
        var engine = NewEngine();
        await engine.WriteAsync(new KvBatch().Put(Default, [], S("empty key")).Put(Default, S("k"), []));
        Assert.Equal(S("empty key"), engine.Get(Default, []));
        Assert.Equal(Array.Empty<byte>(), engine.Get(Default, S("k")));
        Assert.Null(engine.Get(Default, S("other")));
        Assert.Equal(new[] { "<empty>", Hex(S("k")) }, Keys(ReadAll(engine, Default)));
    }

    [Fact]
    public async Task CallerMayReuseArraysAfterWriteAndGet()
    {
        var engine = NewEngine();
        var key = S("key");
        var value = S("value");
        await engine.WriteAsync(new KvBatch().Put(Default, key, value));
        key[0] = (byte)'X';
        value[0] = (byte)'X';
        var read = engine.Get(Default, S("key"))!;
        Assert.Equal(S("value"), read);
        read[0] = (byte)'Y';
        Assert.Equal(S("value"), engine.Get(Default, S("key")));
    }

    [Fact]
    public async Task ColumnFamiliesAreIndependent()
    {
        var engine = NewEngine();
        Assert.Contains(Default, engine.ColumnFamilies);
        Assert.Contains(Meta, engine.ColumnFamilies);
        Assert.Contains(Data, engine.ColumnFamilies);

        await engine.WriteAsync(new KvBatch().Put(Meta, S("k"), S("meta")).Put(Data, S("k"), S("data")));
        Assert.Null(engine.Get(Default, S("k")));
        Assert.Equal(S("meta"), engine.Get(Meta, S("k")));
        Assert.Equal(S("data"), engine.Get(Data, S("k")));

        await engine.WriteAsync(new KvBatch().Delete(Meta, S("k")).DeleteRange(Default, [], [0xFF]));
        Assert.Null(engine.Get(Meta, S("k")));
        Assert.Equal(S("data"), engine.Get(Data, S("k")));
        Assert.Single(ReadAll(engine, Data));
        Assert.Empty(ReadAll(engine, Meta));
    }

    [Fact]
    public async Task UnknownColumnFamilyIsRejected()
    {
        var engine = NewEngine();
        Assert.Throws<ArgumentException>(() => engine.Get("nope", S("k")));
        Assert.Throws<ArgumentException>(() => engine.Iterate("nope"));
        await Assert.ThrowsAsync<ArgumentException>(async () => await engine.WriteAsync(new KvBatch().Put(Default, S("a"), S("1")).Put("nope", S("k"), S("v"))));
        Assert.Null(engine.Get(Default, S("a"))); // nothing of the rejected batch was applied
    }

    // ------------------------------------------------------------------ batches

    [Fact]
    public async Task BatchAppliesInOpOrder()
    {
        var engine = NewEngine();
        await engine.WriteAsync(new KvBatch()
            .Put(Default, S("a"), S("1"))
            .Put(Default, S("a"), S("2"))
            .Put(Default, S("b"), S("1"))
            .Delete(Default, S("b"))
            .Put(Default, S("c"), S("1"))
            .DeleteRange(Default, S("c"), S("d"))
            .Put(Default, S("c"), S("again")));
        Assert.Equal(S("2"), engine.Get(Default, S("a")));
        Assert.Null(engine.Get(Default, S("b")));
        Assert.Equal(S("again"), engine.Get(Default, S("c")));
    }

    [Fact]
    public async Task BatchIsAtomicForConcurrentReaders()
    {
        var engine = NewEngine();
        const int Writes = 100;
        var writer = Task.Run(async () =>
        {
            for (int i = 0; i < Writes; i++)
            {
                var value = KvKeys.EncodeUInt32((uint)i);
                await engine.WriteAsync(new KvBatch().Put(Meta, S("a"), value).Put(Data, S("b"), value).Put(Data, S("c"), value));
            }
        });

        // A dedicated thread: a spinning reader must not take one of the few thread-pool threads from the writer.
        var reader = Task.Factory.StartNew(() =>
        {
            int checks = 0;
            while (!writer.IsCompleted || checks < 20)
            {
                using var snapshot = engine.Snapshot();
                var a = engine.Get(Meta, S("a"), snapshot);
                var b = engine.Get(Data, S("b"), snapshot);
                var c = ReadAll(engine, Data, S("c"), null, snapshot).Select(e => e.Value).SingleOrDefault();
                Assert.Equal(a, b);
                Assert.Equal(a, c);
                checks++;
            }

            return checks;
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        await Task.WhenAll(writer, reader);
        Assert.Equal(KvKeys.EncodeUInt32(Writes - 1), engine.Get(Data, S("b")));
    }

    [Fact]
    public async Task DeleteRangeRemovesHalfOpenRange()
    {
        var engine = NewEngine();
        var batch = new KvBatch();
        foreach (var k in new[] { "a", "b", "ba", "bz", "c", "d" })
        {
            batch.Put(Data, S(k), S(k));
        }

        batch.Put(Meta, S("b"), S("other family"));
        await engine.WriteAsync(batch);

        await engine.WriteAsync(new KvBatch().DeleteRange(Data, S("b"), S("c")));
        Assert.Equal(new[] { "a", "c", "d" }, ReadAll(engine, Data).Select(e => System.Text.Encoding.UTF8.GetString(e.Key)));
        Assert.Equal(S("other family"), engine.Get(Meta, S("b")));

        // Empty and inverted ranges delete nothing.
        await engine.WriteAsync(new KvBatch().DeleteRange(Data, S("d"), S("a")).DeleteRange(Data, S("c"), S("c")));
        Assert.Equal(3, ReadAll(engine, Data).Count);

        // Binary keys, 0x00 and 0xFF.
        await engine.WriteAsync(new KvBatch().Put(Default, B(0x00), S("x")).Put(Default, B(0x00, 0x00), S("x")).Put(Default, B(0xFF), S("x")).Put(Default, B(0xFF, 0xFF), S("x")));
        await engine.WriteAsync(new KvBatch().DeleteRange(Default, B(0x00, 0x00), B(0xFF, 0x00)));
        Assert.Equal(new[] { Hex(B(0x00)), Hex(B(0xFF, 0xFF)) }, Keys(ReadAll(engine, Default)));
    }

    [Fact]
    public async Task EmptyBatchCompletesImmediately()
    {
        var engine = NewEngine();
        var before = engine.Stats;
        var task = engine.WriteAsync(new KvBatch());
        Assert.True(task.IsCompletedSuccessfully);
        await task;
        Assert.Equal(before, engine.Stats);
    }

    [Fact]
    public async Task CancelledTokenIsNotWritten()
    {
        var engine = NewEngine();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await engine.WriteAsync(new KvBatch().Put(Default, S("k"), S("v")), cts.Token));
        Assert.Null(engine.Get(Default, S("k")));
    }

    // ------------------------------------------------------------------ iteration

    private static readonly byte[][] AwkwardKeys =
    [
        [], [0x00], [0x00, 0x00], [0x00, 0xFF], [0x01], [0x7F], [0x7F, 0xFF, 0xFF], [0x80], [0x80, 0x00], [0xFE, 0xFF], [0xFF], [0xFF, 0x00], [0xFF, 0xFF],
    ];

    private async Task<IKvEngine> EngineWithAwkwardKeys()
    {
        var engine = NewEngine();
        var batch = new KvBatch();
        // Insert in a scrambled order.
        foreach (var key in AwkwardKeys.OrderBy(k => Hex(k).GetHashCode()).Reverse())
        {
            batch.Put(Data, key, KvKeys.Concat(S("v"), key));
        }

        await engine.WriteAsync(batch);
        return engine;
    }

    [Fact]
    public async Task IteratesInByteWiseOrder()
    {
        var engine = await EngineWithAwkwardKeys();
        var expected = AwkwardKeys.Select(k => Hex(k)).ToList();
        var forward = ReadAll(engine, Data);
        Assert.Equal(expected, Keys(forward));
        Assert.All(forward, e => Assert.Equal(KvKeys.Concat(S("v"), e.Key), e.Value));

        var backward = ReadAllReverse(engine, Data);
        expected.Reverse();
        Assert.Equal(expected, Keys(backward));
    }

    [Fact]
    public async Task IteratorRespectsBounds()
    {
        var engine = await EngineWithAwkwardKeys();

        Assert.Equal(new[] { Hex([0x00]), Hex([0x00, 0x00]), Hex([0x00, 0xFF]) }, Keys(ReadAll(engine, Data, B(0x00), B(0x01))));
        Assert.Equal(new[] { Hex([0x00, 0xFF]), Hex([0x00, 0x00]), Hex([0x00]) }, Keys(ReadAllReverse(engine, Data, B(0x00), B(0x01))));

        // Lower inclusive only / upper exclusive only.
        Assert.Equal(new[] { Hex([0xFF]), Hex([0xFF, 0x00]), Hex([0xFF, 0xFF]) }, Keys(ReadAll(engine, Data, B(0xFF))));
        Assert.Equal(new[] { "<empty>", Hex([0x00]) }, Keys(ReadAll(engine, Data, null, B(0x00, 0x00))));

        // Prefix scans.
        Assert.Equal(new[] { Hex([0x7F]), Hex([0x7F, 0xFF, 0xFF]) }, Keys(ReadAll(engine, Data, B(0x7F), KvKeys.PrefixUpperBound(B(0x7F)))));
        Assert.Equal(new[] { Hex([0xFF]), Hex([0xFF, 0x00]), Hex([0xFF, 0xFF]) }, Keys(ReadAll(engine, Data, B(0xFF), KvKeys.PrefixUpperBound(B(0xFF)))));

        // Empty ranges.
        Assert.Empty(ReadAll(engine, Data, B(0x50), B(0x60)));
        Assert.Empty(ReadAll(engine, Data, B(0x80), B(0x80)));
        Assert.Empty(ReadAllReverse(engine, Data, B(0x80), B(0x80)));
        Assert.Empty(ReadAll(engine, Data, null, []));
        Assert.Empty(ReadAll(engine, Meta));
    }

    [Fact]
    public async Task SeekSeekForPrevPrevAndSeekToLast()
    {
        var engine = await EngineWithAwkwardKeys();
        using (var it = engine.Iterate(Data))
        {
            Assert.False(it.Valid);
            Assert.Throws<InvalidOperationException>(() => it.Key.Length);
            Assert.Throws<InvalidOperationException>(() => it.Next());

            it.Seek(B(0x7F, 0x00));
            Assert.True(it.Valid);
            Assert.Equal(B(0x7F, 0xFF, 0xFF), it.Key.ToArray());
            it.Prev();
            Assert.Equal(B(0x7F), it.Key.ToArray());
            it.Prev();
            Assert.Equal(B(0x01), it.Key.ToArray());
            it.Next();
            it.Next();
            Assert.Equal(B(0x7F, 0xFF, 0xFF), it.Key.ToArray());

            it.Seek(B(0x80));
            Assert.Equal(B(0x80), it.Key.ToArray()); // exact match
            it.SeekForPrev(B(0x80));
            Assert.Equal(B(0x80), it.Key.ToArray());
            it.SeekForPrev(B(0x80, 0x00, 0x00));
            Assert.Equal(B(0x80, 0x00), it.Key.ToArray());
            it.SeekForPrev(B(0xFE));
            Assert.Equal(B(0x80, 0x00), it.Key.ToArray());
            it.Next();
            Assert.Equal(B(0xFE, 0xFF), it.Key.ToArray());
            Assert.Equal(KvKeys.Concat(S("v"), B(0xFE, 0xFF)), it.Value.ToArray());

            it.SeekToLast();
            Assert.Equal(B(0xFF, 0xFF), it.Key.ToArray());
            it.Next();
            Assert.False(it.Valid);

            it.Seek(B(0xFF, 0xFF, 0x00));
            Assert.False(it.Valid);
            it.SeekForPrev([]);
            Assert.True(it.Valid);
            Assert.Equal(0, it.Key.Length);
            it.Prev();
            Assert.False(it.Valid);

            it.SeekToFirst();
            Assert.Equal(0, it.Key.Length);
        }

        // The same operations clamp to the bounds.
        using (var it = engine.Iterate(Data, B(0x01), B(0xFE, 0xFF)))
        {
            it.SeekToLast();
            Assert.Equal(B(0x80, 0x00), it.Key.ToArray());
            it.SeekToFirst();
            Assert.Equal(B(0x01), it.Key.ToArray());
            it.Prev();
            Assert.False(it.Valid);
            it.Seek(B(0x00)); // below the lower bound
            Assert.Equal(B(0x01), it.Key.ToArray());
            it.SeekForPrev(B(0xFF)); // above the upper bound
            Assert.Equal(B(0x80, 0x00), it.Key.ToArray());
            it.Next();
            Assert.False(it.Valid);
            it.Seek(B(0xFE, 0xFF));
            Assert.False(it.Valid);
            it.SeekForPrev(B(0x00, 0xFF));
            Assert.False(it.Valid);
        }
    }

    [Fact]
    public async Task IteratorSeesTheDataOfItsCreation()
    {
        var engine = NewEngine();
        await engine.WriteAsync(new KvBatch().Put(Default, S("a"), S("1")).Put(Default, S("c"), S("1")));
        using var it = engine.Iterate(Default);
        await engine.WriteAsync(new KvBatch().Put(Default, S("b"), S("2")).Delete(Default, S("c")).Put(Default, S("a"), S("2")));

        var seen = new List<string>();
        for (it.SeekToFirst(); it.Valid; it.Next())
        {
            seen.Add(System.Text.Encoding.UTF8.GetString(it.Key) + "=" + System.Text.Encoding.UTF8.GetString(it.Value));
        }

        Assert.Equal(new[] { "a=1", "c=1" }, seen);
    }

    [Fact]
    public async Task DisposedIteratorThrows()
    {
        var engine = NewEngine();
        await engine.WriteAsync(new KvBatch().Put(Default, S("a"), S("1")));
        var it = engine.Iterate(Default);
        it.SeekToFirst();
        it.Dispose();
        it.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => it.SeekToFirst());
        Assert.Throws<ObjectDisposedException>(() => it.Valid);
    }

    // ------------------------------------------------------------------ snapshots

    [Fact]
    public async Task SnapshotIsIsolatedFromLaterWrites()
    {
        var engine = NewEngine();
        await engine.WriteAsync(new KvBatch().Put(Data, S("a"), S("1")).Put(Data, S("c"), S("1")).Put(Meta, S("m"), S("1")));

        using var snapshot = engine.Snapshot();
        await engine.WriteAsync(new KvBatch()
            .Put(Data, S("a"), S("2"))
            .Put(Data, S("b"), S("2"))
            .Delete(Data, S("c"))
            .DeleteRange(Meta, [], [0xFF]));

        Assert.Equal(S("1"), engine.Get(Data, S("a"), snapshot));
        Assert.Null(engine.Get(Data, S("b"), snapshot));
        Assert.Equal(S("1"), engine.Get(Data, S("c"), snapshot));
        Assert.Equal(S("1"), engine.Get(Meta, S("m"), snapshot));
        Assert.Equal(new[] { Hex(S("a")), Hex(S("c")) }, Keys(ReadAll(engine, Data, null, null, snapshot)));
        Assert.Equal(new[] { Hex(S("c")) }, Keys(ReadAll(engine, Data, S("b"), null, snapshot)));

        Assert.Equal(S("2"), engine.Get(Data, S("a")));
        Assert.Equal(new[] { Hex(S("a")), Hex(S("b")) }, Keys(ReadAll(engine, Data)));
        Assert.Empty(ReadAll(engine, Meta));
    }

    [Fact]
    public async Task DisposedSnapshotCannotBeUsed()
    {
        var engine = NewEngine();
        await engine.WriteAsync(new KvBatch().Put(Data, S("a"), S("1")));
        var snapshot = engine.Snapshot();
        snapshot.Dispose();
        snapshot.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => engine.Get(Data, S("a"), snapshot));
        Assert.Throws<ObjectDisposedException>(() => engine.Iterate(Data, null, null, snapshot));
    }

    [Fact]
    public void SnapshotOfAnotherEngineIsRejected()
    {
        var first = NewEngine();
        var second = NewEngine();
        using var snapshot = first.Snapshot();
        Assert.Throws<ArgumentException>(() => second.Get(Data, S("a"), snapshot));
    }

    [Fact]
    public async Task IteratorOutlivesItsSnapshotObject()
    {
        var engine = NewEngine();
        await engine.WriteAsync(new KvBatch().Put(Data, S("a"), S("1")));
        var snapshot = engine.Snapshot();
        using var it = engine.Iterate(Data, null, null, snapshot);
        snapshot.Dispose();
        await engine.WriteAsync(new KvBatch().Put(Data, S("b"), S("2")));
        it.SeekToFirst();
        Assert.Equal(S("a"), it.Key.ToArray());
        it.Next();
        Assert.False(it.Valid);
    }

    // ------------------------------------------------------------------ checkpoints

    [Fact]
    public async Task CheckpointHasExactlyTheEarlierData()
    {
        var engine = NewEngine();
        await engine.WriteAsync(new KvBatch().Put(Data, S("a"), S("1")).Put(Meta, S("m"), S("1")).Put(Default, B(0xFF), B(0x00)));
        await engine.WriteAsync(new KvBatch().Put(Data, S("b"), S("1")).Delete(Data, S("a")));

        string directory = Temp.Sub("checkpoint");
        engine.Checkpoint(directory);
        await engine.WriteAsync(new KvBatch().Put(Data, S("c"), S("after")).Put(Data, S("b"), S("after")).Delete(Meta, S("m")));

        using var copy = OpenCheckpoint(directory, StandardFamilies);
        Assert.Contains(Meta, copy.ColumnFamilies);
        Assert.Contains(Data, copy.ColumnFamilies);
        Assert.Equal(new[] { Hex(S("b")) }, Keys(ReadAll(copy, Data)));
        Assert.Equal(S("1"), copy.Get(Data, S("b")));
        Assert.Equal(S("1"), copy.Get(Meta, S("m")));
        Assert.Equal(B(0x00), copy.Get(Default, B(0xFF)));
        Assert.Single(ReadAll(copy, Default));

        // The source is unaffected and the checkpoint is independent of it.
        Assert.Equal(S("after"), engine.Get(Data, S("b")));
        await copy.WriteAsync(new KvBatch().Put(Data, S("z"), S("copy only")));
        Assert.Null(engine.Get(Data, S("z")));
    }

    [Fact]
    public async Task CheckpointIntoExistingDirectoryFails()
    {
        var engine = NewEngine();
        await engine.WriteAsync(new KvBatch().Put(Data, S("a"), S("1")));
        string directory = Temp.Sub("exists");
        Directory.CreateDirectory(directory);
        Assert.ThrowsAny<IOException>(() => engine.Checkpoint(directory));
    }

    // ------------------------------------------------------------------ ordering and group commit

    [Fact]
    public async Task WritesApplyInCallOrder()
    {
        var engine = NewEngine();
        var tasks = new List<ValueTask>();
        for (int i = 0; i < 200; i++)
        {
            var batch = new KvBatch().Put(Data, S("last"), KvKeys.EncodeUInt32((uint)i)).Put(Data, KvKeys.EncodeUInt32((uint)i), S("x"));
            if (i % 2 == 0)
            {
                batch.Put(Data, S("toggle"), S("on"));
            }
            else
            {
                batch.Delete(Data, S("toggle"));
            }

            tasks.Add(engine.WriteAsync(batch)); // issued from one thread without awaiting
        }

        foreach (var task in tasks)
        {
            await task;
        }

        Assert.Equal(KvKeys.EncodeUInt32(199), engine.Get(Data, S("last")));
        Assert.Null(engine.Get(Data, S("toggle")));
        Assert.Equal(200, ReadAll(engine, Data, KvKeys.EncodeUInt32(0), KvKeys.EncodeUInt32(200)).Count);
        Assert.Equal(200, engine.Stats.BatchesWritten);
    }

    [Fact]
    public async Task ConcurrentWritersAreAllDurableAndShareSyncs()
    {
        var engine = NewEngine();
        const int Writers = 64;
        const int WritesEach = 50;
        long expectedBytes = 0;
        var batches = new KvBatch[Writers][];
        for (int w = 0; w < Writers; w++)
        {
            batches[w] = new KvBatch[WritesEach];
            for (int i = 0; i < WritesEach; i++)
            {
                var key = KvKeys.Concat(KvKeys.EncodeUInt32((uint)w), KvKeys.EncodeUInt32((uint)i));
                batches[w][i] = new KvBatch().Put(Data, key, S($"w{w}i{i}"));
                expectedBytes += batches[w][i].ByteSize;
            }
        }

        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            foreach (var batch in batches[w])
            {
                await engine.WriteAsync(batch);
            }
        })).ToArray();
        await Task.WhenAll(writers);

        var all = ReadAll(engine, Data);
        Assert.Equal(Writers * WritesEach, all.Count);
        foreach (var (key, value) in all)
        {
            Assert.Equal(S($"w{KvKeys.DecodeUInt32(key)}i{KvKeys.DecodeUInt32(key.AsSpan(4))}"), value);
        }

        var stats = engine.Stats;
        Assert.Equal(Writers * WritesEach, stats.BatchesWritten);
        Assert.Equal(expectedBytes, stats.BytesWritten);
        Assert.True(stats.SyncedWrites >= 1);
        if (SharesSyncedWrites)
        {
            Assert.True(stats.SyncedWrites < stats.BatchesWritten, $"{stats.SyncedWrites} synced writes for {stats.BatchesWritten} batches");
        }
        else
        {
            Assert.True(stats.SyncedWrites <= stats.BatchesWritten);
        }
    }

    // ------------------------------------------------------------------ lifetime

    [Fact]
    public async Task UseAfterDisposeThrowsObjectDisposed()
    {
        var engine = NewEngine();
        await engine.WriteAsync(new KvBatch().Put(Data, S("a"), S("1")));
        engine.Dispose();
        engine.Dispose(); // idempotent

        Assert.Throws<ObjectDisposedException>(() => engine.Get(Data, S("a")));
        Assert.Throws<ObjectDisposedException>(() => engine.Iterate(Data));
        Assert.Throws<ObjectDisposedException>(() => engine.Snapshot());
        Assert.Throws<ObjectDisposedException>(() => engine.Checkpoint(Temp.Sub("never")));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await engine.WriteAsync(new KvBatch().Put(Data, S("b"), S("2"))));
    }

    // ------------------------------------------------------------------ model-based property

    [Fact]
    public void RandomOperationsMatchSortedDictionaryModel()
    {
        var engine = NewEngine();
        ModelProperty.Check(engine, Data);
    }
}
