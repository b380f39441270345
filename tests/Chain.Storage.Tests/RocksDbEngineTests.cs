using Chain.Storage.RocksDb;
using static Chain.Storage.Tests.TestUtil;

namespace Chain.Storage.Tests;

public sealed class RocksDbEngineTests : EngineContract
{
    protected override IKvEngine CreateEngine(IReadOnlyList<string> columnFamilies, string directory) =>
        RocksDbEngine.Open(directory, new RocksDbOptions { ColumnFamilies = columnFamilies });

    protected override IKvEngine OpenCheckpoint(string directory, IReadOnlyList<string> columnFamilies) =>
        Track(RocksDbEngine.Open(directory, new RocksDbOptions { ColumnFamilies = columnFamilies, CreateIfMissing = false }));

    protected override bool SharesSyncedWrites => true;

    private RocksDbEngine Open(string directory, RocksDbOptions? options = null) =>
        Track(RocksDbEngine.Open(directory, options ?? new RocksDbOptions { ColumnFamilies = StandardFamilies }));

    // ------------------------------------------------------------------ open / reopen / errors

    [Fact]
    public async Task BulkLoadWritesNoLogAndIsDurableAfterFlush()
    {
        string directory = Temp.Sub("bulk");
        using (var engine = RocksDbEngine.Open(directory, new RocksDbOptions { ColumnFamilies = ["a", "blobs"], BlobColumnFamilies = ["blobs"], BulkLoad = true }))
        {
            for (int i = 0; i < 50; i++)
                await engine.WriteAsync(new KvBatch().Put("a", S($"k{i}"), S($"v{i}")).Put("blobs", S($"b{i}"), new byte[8192]));
            // Nothing went through a write-ahead log: every WAL file is empty.
            Assert.All(Directory.GetFiles(directory, "*.log"), f => Assert.Equal(0, new FileInfo(f).Length));
            engine.Flush();
        }
        using (var engine = RocksDbEngine.Open(directory, new RocksDbOptions { ColumnFamilies = ["a", "blobs"], BlobColumnFamilies = ["blobs"] }))
        {
            for (int i = 0; i < 50; i++)
            {
                Assert.Equal(S($"v{i}"), engine.Get("a", S($"k{i}")));
                Assert.Equal(8192, engine.Get("blobs", S($"b{i}"))!.Length);
            }
        }
    }

    [Fact]
    public async Task ReopenKeepsDataAndColumnFamilies()
    {
        string directory = Temp.Sub("reopen");
        using (var engine = RocksDbEngine.Open(directory, new RocksDbOptions { ColumnFamilies = ["a", "b"] }))
        {
            await engine.WriteAsync(new KvBatch().Put("a", S("k"), S("in a")).Put("b", S("k"), S("in b")).Put("default", S("k"), S("in default")));
        }

        // Opened without naming the families: existing ones are opened anyway; new ones are created.
        using (var engine = RocksDbEngine.Open(directory, new RocksDbOptions { ColumnFamilies = ["c"] }))
        {
            Assert.Equal(new[] { "a", "b", "c", "default" }, engine.ColumnFamilies.Order(StringComparer.Ordinal));
            Assert.Equal(S("in a"), engine.Get("a", S("k")));
            Assert.Equal(S("in b"), engine.Get("b", S("k")));
            Assert.Equal(S("in default"), engine.Get("default", S("k")));
            Assert.Null(engine.Get("c", S("k")));
            await engine.WriteAsync(new KvBatch().Put("c", S("k"), S("in c")).Delete("a", S("k")));
        }

        using (var engine = RocksDbEngine.Open(directory, new RocksDbOptions { CreateIfMissing = false }))
        {
            Assert.Equal(4, engine.ColumnFamilies.Count);
            Assert.Equal(S("in c"), engine.Get("c", S("k")));
            Assert.Null(engine.Get("a", S("k")));
        }
    }

    [Fact]
    public void OpeningARegularFileIsStorageException()
    {
        string file = Temp.Sub("not-a-db");
        File.WriteAllText(file, "hello");
        var error = Assert.Throws<StorageException>(() => RocksDbEngine.Open(file, new RocksDbOptions()));
        Assert.False(string.IsNullOrWhiteSpace(error.Message));

        string inside = Path.Combine(file, "db");
        Assert.Throws<StorageException>(() => RocksDbEngine.Open(inside, new RocksDbOptions()));
    }

    [Fact]
    public void OpeningAMissingDatabaseWithoutCreateIsStorageException()
    {
        Assert.Throws<StorageException>(() => RocksDbEngine.Open(Temp.Sub("missing"), new RocksDbOptions { CreateIfMissing = false }));
        Assert.False(Directory.Exists(Temp.Sub("missing")) && Directory.EnumerateFileSystemEntries(Temp.Sub("missing")).Any());
    }

    [Fact]
    public void OpeningALockedDatabaseIsStorageException()
    {
        string directory = Temp.Sub("locked");
        Open(directory);
        Assert.Throws<StorageException>(() => RocksDbEngine.Open(directory, new RocksDbOptions()));
    }

    [Fact]
    public void InvalidOptionsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => RocksDbEngine.Open(Temp.Sub("x"), new RocksDbOptions { WriteQueueCapacity = 0 }));
        Assert.Throws<ArgumentException>(() => RocksDbEngine.Open(Temp.Sub("x"), new RocksDbOptions { ColumnFamilies = [""] }));
    }

    [Fact]
    public async Task CompressionAndCacheOptionsWork()
    {
        var engine = Open(Temp.Sub("zstd"), new RocksDbOptions { Compression = RocksDbCompression.Lz4, BlockCacheBytes = 0 });
        await engine.WriteAsync(new KvBatch().Put("default", S("k"), S("v")));
        Assert.Equal(S("v"), engine.Get("default", S("k")));
    }

    // ------------------------------------------------------------------ group commit details

    [Fact]
    public async Task PausedWriterCombinesQueuedBatchesIntoOneSyncedWrite()
    {
        var engine = Open(Temp.Sub("group"));
        await engine.WriteAsync(new KvBatch().Put(Data, S("warmup"), S("1")));
        var before = engine.Stats;

        var tasks = new List<ValueTask>();
        using (engine.PauseWriterForTesting())
        {
            for (int i = 0; i < 20; i++)
            {
                tasks.Add(engine.WriteAsync(new KvBatch().Put(Data, S("k"), KvKeys.EncodeUInt32((uint)i))));
            }

            Assert.All(tasks, t => Assert.False(t.IsCompleted));
        }

        foreach (var task in tasks)
        {
            await task;
        }

        var after = engine.Stats;
        Assert.Equal(20, after.BatchesWritten - before.BatchesWritten);
        Assert.Equal(1, after.SyncedWrites - before.SyncedWrites);
        Assert.Equal(KvKeys.EncodeUInt32(19), engine.Get(Data, S("k")));
    }

    [Theory]
    [InlineData(3, long.MaxValue, 10, 4)] // batches limit: 3+3+3+1
    [InlineData(512, 25, 10, 5)]          // bytes limit: each batch is 10 bytes, two fit in 25
    [InlineData(512, 5, 4, 4)]            // a single batch over the byte limit is still written, alone
    public async Task GroupsRespectLimits(int maxBatches, long maxBytes, int count, int expectedSyncs)
    {
        var engine = Open(Temp.Sub("limits"), new RocksDbOptions { ColumnFamilies = StandardFamilies, GroupCommitMaxBatches = maxBatches, GroupCommitMaxBytes = maxBytes });
        var tasks = new List<ValueTask>();
        using (engine.PauseWriterForTesting())
        {
            for (int i = 0; i < count; i++)
            {
                tasks.Add(engine.WriteAsync(new KvBatch().Put(Data, KvKeys.EncodeUInt32((uint)i), S("value"))));
            }
        }

        foreach (var task in tasks)
        {
            await task;
        }

        Assert.Equal(count, engine.Stats.BatchesWritten);
        Assert.Equal(expectedSyncs, engine.Stats.SyncedWrites);
        Assert.Equal(count, ReadAll(engine, Data).Count);
    }

    [Fact]
    public async Task FullQueueMakesWritersWaitAndKeepsOrder()
    {
        var engine = Open(Temp.Sub("full"), new RocksDbOptions { ColumnFamilies = StandardFamilies, WriteQueueCapacity = 2 });
        var tasks = new List<ValueTask>();
        using (engine.PauseWriterForTesting())
        {
            for (int i = 0; i < 50; i++)
            {
                tasks.Add(engine.WriteAsync(new KvBatch().Put(Data, S("k"), KvKeys.EncodeUInt32((uint)i)).Put(Data, KvKeys.EncodeUInt32((uint)i), S("v"))));
            }

            Assert.True(engine.QueuedWritesForTesting <= 2);
            Assert.All(tasks, t => Assert.False(t.IsCompleted));
        }

        foreach (var task in tasks)
        {
            await task;
        }

        Assert.Equal(KvKeys.EncodeUInt32(49), engine.Get(Data, S("k")));
        Assert.Equal(51, ReadAll(engine, Data).Count);
    }

    [Fact]
    public async Task CancelledBeforePickupIsNotWritten()
    {
        var engine = Open(Temp.Sub("cancel"));
        using var cts = new CancellationTokenSource();
        ValueTask first, cancelled, last;
        using (engine.PauseWriterForTesting())
        {
            first = engine.WriteAsync(new KvBatch().Put(Data, S("first"), S("1")));
            cancelled = engine.WriteAsync(new KvBatch().Put(Data, S("cancelled"), S("1")), cts.Token);
            last = engine.WriteAsync(new KvBatch().Put(Data, S("last"), S("1")));
            cts.Cancel();
            Assert.True(cancelled.IsCanceled);
        }

        await first;
        await last;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await cancelled);
        Assert.Null(engine.Get(Data, S("cancelled")));
        Assert.Equal(S("1"), engine.Get(Data, S("first")));
        Assert.Equal(S("1"), engine.Get(Data, S("last")));
        Assert.Equal(2, engine.Stats.BatchesWritten);
    }

    [Fact]
    public async Task CancelledAfterPickupIsWritten()
    {
        var engine = Open(Temp.Sub("cancel-late"));
        using var cts = new CancellationTokenSource();
        await engine.WriteAsync(new KvBatch().Put(Data, S("k"), S("1")), cts.Token);
        cts.Cancel(); // too late: already written, nothing happens
        Assert.Equal(S("1"), engine.Get(Data, S("k")));
    }

    [Fact]
    public async Task FailedWriteFailsEveryCallerOfTheGroupAndAppliesNothing()
    {
        var engine = Open(Temp.Sub("fail"));
        await engine.WriteAsync(new KvBatch().Put(Data, S("before"), S("1")));
        var before = engine.Stats;

        engine.InjectWriteFailureForTesting = true;
        var tasks = new List<ValueTask>();
        using (engine.PauseWriterForTesting())
        {
            for (int i = 0; i < 10; i++)
            {
                tasks.Add(engine.WriteAsync(new KvBatch().Put(Data, KvKeys.EncodeUInt32((uint)i), S("lost")).Delete(Data, S("before"))));
            }
        }

        foreach (var task in tasks)
        {
            await Assert.ThrowsAsync<StorageException>(async () => await task);
        }

        Assert.Equal(before, engine.Stats);
        Assert.Equal(new[] { Hex(S("before")) }, Keys(ReadAll(engine, Data)));

        // The engine keeps working once the fault is gone.
        engine.InjectWriteFailureForTesting = false;
        await engine.WriteAsync(new KvBatch().Put(Data, S("after"), S("1")));
        Assert.Equal(S("1"), engine.Get(Data, S("after")));
    }

    [Fact]
    public async Task DisposeFailsQueuedWritesWithObjectDisposed()
    {
        var engine = RocksDbEngine.Open(Temp.Sub("dispose-pending"), new RocksDbOptions { ColumnFamilies = StandardFamilies });
        var tasks = new List<ValueTask>();
        var pause = engine.PauseWriterForTesting();
        for (int i = 0; i < 5; i++)
        {
            tasks.Add(engine.WriteAsync(new KvBatch().Put(Data, KvKeys.EncodeUInt32((uint)i), S("v"))));
        }

        engine.Dispose();
        pause.Dispose();
        foreach (var task in tasks)
        {
            await Assert.ThrowsAsync<ObjectDisposedException>(async () => await task);
        }

        using var reopened = RocksDbEngine.Open(Temp.Sub("dispose-pending"), new RocksDbOptions());
        Assert.Empty(ReadAll(reopened, Data));
    }

    [Fact]
    public async Task WrittenDataIsDurableAcrossReopen()
    {
        string directory = Temp.Sub("durable");
        var engine = RocksDbEngine.Open(directory, new RocksDbOptions { ColumnFamilies = StandardFamilies });
        var tasks = Enumerable.Range(0, 100).Select(i => engine.WriteAsync(new KvBatch().Put(Data, KvKeys.EncodeUInt32((uint)i), S("v"))).AsTask()).ToList();
        await Task.WhenAll(tasks);
        engine.Dispose();

        using var reopened = RocksDbEngine.Open(directory, new RocksDbOptions());
        Assert.Equal(100, ReadAll(reopened, Data).Count);
    }

    // ------------------------------------------------------------------ lifetime

    [Fact]
    public async Task DisposingTheEngineWithLiveIteratorAndSnapshotDoesNotCrash()
    {
        string directory = Temp.Sub("live");
        var engine = RocksDbEngine.Open(directory, new RocksDbOptions { ColumnFamilies = StandardFamilies });
        await engine.WriteAsync(new KvBatch().Put(Data, S("a"), S("1")).Put(Data, S("b"), S("2")));
        var snapshot = engine.Snapshot();
        var iterator = engine.Iterate(Data, S("a"), S("z"), snapshot);
        iterator.SeekToFirst();

        engine.Dispose();
        Assert.Throws<ObjectDisposedException>(() => engine.Get(Data, S("a"), snapshot));

        // The iterator still works: the native database stays open until the last user is gone.
        Assert.Equal(S("a"), iterator.Key.ToArray());
        iterator.Next();
        Assert.Equal(S("2"), iterator.Value.ToArray());

        // Still open (and locked) while the iterator lives.
        Assert.Throws<StorageException>(() => RocksDbEngine.Open(directory, new RocksDbOptions()));

        snapshot.Dispose();
        iterator.Dispose();

        // Now closed: the directory can be opened again.
        using var reopened = RocksDbEngine.Open(directory, new RocksDbOptions());
        Assert.Equal(S("2"), reopened.Get(Data, S("b")));
    }

    [Fact]
    public void LeakedIteratorAndSnapshotAreReleasedByTheirFinalizers()
    {
        string directory = Temp.Sub("finalized");
        var engine = RocksDbEngine.Open(directory, new RocksDbOptions { ColumnFamilies = StandardFamilies });
        LeakIteratorAndSnapshot(engine);
        engine.Dispose();
        Assert.Throws<StorageException>(() => RocksDbEngine.Open(directory, new RocksDbOptions())); // still held by the leaked objects

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        GC.WaitForPendingFinalizers();

        using var reopened = RocksDbEngine.Open(directory, new RocksDbOptions());
        Assert.Contains(Data, reopened.ColumnFamilies);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void LeakIteratorAndSnapshot(RocksDbEngine engine)
    {
        var snapshot = engine.Snapshot();
        var iterator = engine.Iterate(Data, S("a"), null, snapshot);
        iterator.SeekToFirst();
        var other = engine.Iterate(Meta);
        other.SeekToLast();
    }

    [Fact]
    public async Task DisposeWhileWritingCompletesEveryWrite()
    {
        var engine = RocksDbEngine.Open(Temp.Sub("dispose-busy"), new RocksDbOptions { ColumnFamilies = StandardFamilies });
        var progress = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int completed = 0;
        var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            for (uint i = 0; ; i++)
            {
                try
                {
                    await engine.WriteAsync(new KvBatch().Put(Data, KvKeys.Concat(KvKeys.EncodeUInt32((uint)w), KvKeys.EncodeUInt32(i)), S("v")));
                }
                catch (ObjectDisposedException)
                {
                    return;
                }

                if (Interlocked.Increment(ref completed) == 100)
                {
                    progress.SetResult();
                }
            }
        })).ToArray();

        await progress.Task;
        engine.Dispose();
        await Task.WhenAll(writers); // every writer ends with ObjectDisposedException, none hangs
        Assert.True(engine.Stats.BatchesWritten >= 100);
    }
}

[CollectionDefinition(nameof(SerialCollection), DisableParallelization = true)]
public sealed class SerialCollection
{
}

/// <summary>Counts open file descriptors, so it runs alone.</summary>
[Collection(nameof(SerialCollection))]
public sealed class RocksDbLeakTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task OpenCloseIteratorsAndSnapshotsDoNotLeakFileDescriptors()
    {
        string directory = _temp.Sub("leak");
        var options = new RocksDbOptions { ColumnFamilies = ["data"] };
        using (var engine = RocksDbEngine.Open(directory, options))
        {
            await engine.WriteAsync(new KvBatch().Put("data", S("k"), S("v")));
        }

        // Warm up once so that lazily created process-wide resources exist before the baseline.
        Cycle(directory, options, 0);
        int baseline = OpenFileDescriptors();

        for (int i = 1; i <= 100; i++)
        {
            Cycle(directory, options, i);
        }

        using (var engine = RocksDbEngine.Open(directory, options))
        {
            for (int i = 0; i < 200; i++)
            {
                using var snapshot = engine.Snapshot();
                using var it = engine.Iterate("data", S("a"), S("z"), snapshot);
                it.SeekToFirst();
                Assert.True(it.Valid);
                var extra = engine.Iterate("data", [(byte)i]);
                extra.SeekToLast();
                extra.Dispose();
            }

            string checkpoint = _temp.Sub("checkpoint");
            engine.Checkpoint(checkpoint);
            Directory.Delete(checkpoint, recursive: true);
        }

        int after = OpenFileDescriptors();
        Assert.True(after <= baseline + 8, $"file descriptors grew from {baseline} to {after}");
    }

    private static void Cycle(string directory, RocksDbOptions options, int i)
    {
        using var engine = RocksDbEngine.Open(directory, options);
        if (i % 25 == 0)
        {
            // Occasional writes (each reopen flushes the log into a new table file, which makes opening slower).
            engine.WriteAsync(new KvBatch().Put("data", KvKeys.EncodeUInt32((uint)i), S("v"))).AsTask().GetAwaiter().GetResult();
        }

        using var snapshot = engine.Snapshot();
        using var it = engine.Iterate("data", null, null, snapshot);
        it.SeekToFirst();
        Assert.True(it.Valid);
    }
}
