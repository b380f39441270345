using System.Runtime.InteropServices;
using System.Threading.Channels;

namespace Chain.Storage.RocksDb;

/// <summary>
/// <see cref="IKvEngine"/> on RocksDB (C API via P/Invoke). Writes go through a bounded queue to one dedicated
/// writer thread that combines every queued caller batch (group commit) into one native write batch and writes it
/// with sync=true, so concurrent callers share one WAL fsync.
/// </summary>
/// <remarks>
/// Lifetime: iterators and snapshots should be disposed before the engine. If they are not, they keep the native
/// database open (reference counted) until they are disposed or finalized, so nothing is freed while in use; the
/// database directory stays locked until then.
/// </remarks>
public sealed class RocksDbEngine : IKvEngine
{
    private readonly DbHandle _db;
    private readonly Dictionary<string, ColumnFamilyHandle> _columnFamilies;
    private readonly ColumnFamilyHandle[] _columnFamilyList;
    private readonly string[] _columnFamilyNames;
    private readonly ReadOptionsHandle _defaultReadOptions;
    private readonly Channel<PendingWrite> _queue;
    private readonly Thread _writerThread;
    private readonly int _groupMaxBatches;
    private readonly long _groupMaxBytes;

    private int _disposed;
    private readonly bool _bulkLoad;
    private long _batchesWritten;
    private long _syncedWrites;
    private long _bytesWritten;

    // Test hooks (internal): pause the writer before it takes the next group, and make native writes fail.
    private ManualResetEventSlim? _writerGate;
    private volatile bool _injectWriteFailure;

    private RocksDbEngine(string path, DbHandle db, ColumnFamilyHandle[] columnFamilies, RocksDbOptions options)
    {
        Path = path;
        _db = db;
        _columnFamilyList = columnFamilies;
        _columnFamilies = new Dictionary<string, ColumnFamilyHandle>(StringComparer.Ordinal);
        foreach (var columnFamily in columnFamilies)
        {
            _columnFamilies.Add(columnFamily.Name, columnFamily);
        }

        _columnFamilyNames = columnFamilies.Select(c => c.Name).ToArray();
        _bulkLoad = options.BulkLoad;
        _groupMaxBatches = options.GroupCommitMaxBatches;
        _groupMaxBytes = options.GroupCommitMaxBytes;
        _defaultReadOptions = ReadOptionsHandle.Create();
        _queue = Channel.CreateBounded<PendingWrite>(new BoundedChannelOptions(options.WriteQueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
            AllowSynchronousContinuations = false,
        });
        _writerThread = new Thread(WriterLoop)
        {
            IsBackground = true,
            Name = "rocksdb-group-commit",
        };
        _writerThread.Start();
    }

    /// <summary>Full path of the database directory.</summary>
    public string Path { get; }

    public IReadOnlyList<string> ColumnFamilies => _columnFamilyNames;

    /// <summary>Counters; still readable after dispose.</summary>
    public KvEngineStats Stats => new(
        Interlocked.Read(ref _batchesWritten),
        Interlocked.Read(ref _syncedWrites),
        Interlocked.Read(ref _bytesWritten));

    /// <summary>
    /// Opens (or creates) the database at <paramref name="path"/> with "default", every column family already in the
    /// database and every one in <see cref="RocksDbOptions.ColumnFamilies"/> (missing ones are created).
    /// </summary>
    /// <exception cref="StorageException">RocksDB refused to open the database (not a database, locked, I/O error, ...).</exception>
    public static unsafe RocksDbEngine Open(string path, RocksDbOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        string fullPath = System.IO.Path.GetFullPath(path);

        if (!options.CreateIfMissing && !Directory.Exists(fullPath))
        {
            // Checked here: RocksDB would create the directory (for its LOG file) before failing.
            throw new StorageException($"RocksDB database '{fullPath}' does not exist (CreateIfMissing is false).");
        }

        if (options.CreateIfMissing)
        {
            string? parent = System.IO.Path.GetDirectoryName(fullPath);
            if (parent is not null && !Directory.Exists(parent))
            {
                try
                {
                    Directory.CreateDirectory(parent);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw new StorageException($"Cannot create the parent directory of '{fullPath}': {ex.Message}", ex);
                }
            }
        }

        using var nativeOptions = CreateNativeOptions(options);
        using var blobOptions = CreateNativeOptions(options);
        Native.rocksdb_options_set_enable_blob_files(blobOptions.Pointer, 1);
        Native.rocksdb_options_set_min_blob_size(blobOptions.Pointer, (ulong)options.MinBlobBytes);
        Native.rocksdb_options_set_blob_file_size(blobOptions.Pointer, 256UL * 1024 * 1024);
        Native.rocksdb_options_set_enable_blob_gc(blobOptions.Pointer, 0);
        Native.rocksdb_options_set_write_buffer_size(blobOptions.Pointer, (nuint)options.BlobWriteBufferBytes);
        var names = new List<string> { "default" };
        foreach (var existing in ListColumnFamilies(nativeOptions, fullPath))
        {
            if (!names.Contains(existing, StringComparer.Ordinal))
            {
                names.Add(existing);
            }
        }

        foreach (var requested in options.ColumnFamilies)
        {
            if (!names.Contains(requested, StringComparer.Ordinal))
            {
                names.Add(requested);
            }
        }

        int count = names.Count;
        var namePointers = new nint[count];
        var optionPointers = new nint[count];
        var handlePointers = new nint[count];
        nint db;
        nint error = 0;
        try
        {
            for (int i = 0; i < count; i++)
            {
                namePointers[i] = Marshal.StringToCoTaskMemUTF8(names[i]);
                optionPointers[i] = options.BlobColumnFamilies.Contains(names[i], StringComparer.Ordinal) ? blobOptions.Pointer : nativeOptions.Pointer;
            }

            fixed (nint* namesPtr = namePointers)
            fixed (nint* optionsPtr = optionPointers)
            fixed (nint* handlesPtr = handlePointers)
            {
                db = Native.rocksdb_open_column_families(nativeOptions.Pointer, fullPath, count, namesPtr, optionsPtr, handlesPtr, &error);
            }
        }
        finally
        {
            foreach (var pointer in namePointers)
            {
                if (pointer != 0)
                {
                    Marshal.FreeCoTaskMem(pointer);
                }
            }
        }

        NativeErrors.Check(error, $"open '{fullPath}'");
        if (db == 0)
        {
            throw new StorageException($"RocksDB open '{fullPath}' returned no database.");
        }

        var dbHandle = DbHandle.Adopt(db);
        var columnFamilies = new ColumnFamilyHandle[count];
        for (int i = 0; i < count; i++)
        {
            // Adopt cannot fail here (the db handle was just created and is open).
            columnFamilies[i] = ColumnFamilyHandle.Adopt(handlePointers[i], names[i], dbHandle);
        }

        try
        {
            return new RocksDbEngine(fullPath, dbHandle, columnFamilies, options);
        }
        catch
        {
            foreach (var columnFamily in columnFamilies)
            {
                columnFamily.Dispose();
            }

            dbHandle.Dispose();
            throw;
        }
    }

    private static OptionsHandle CreateNativeOptions(RocksDbOptions options)
    {
        var native = OptionsHandle.Create();
        try
        {
            nint pointer = native.Pointer;
            Native.rocksdb_options_set_create_if_missing(pointer, options.CreateIfMissing ? (byte)1 : (byte)0);
            Native.rocksdb_options_set_create_missing_column_families(pointer, 1);
            Native.rocksdb_options_set_compression(pointer, options.Compression switch
            {
                RocksDbCompression.Snappy => Native.SnappyCompression,
                RocksDbCompression.Lz4 => Native.Lz4Compression,
                RocksDbCompression.Zstd => Native.ZstdCompression,
                _ => Native.NoCompression,
            });
            Native.rocksdb_options_set_max_background_jobs(pointer, options.MaxBackgroundJobs);
            Native.rocksdb_options_set_max_file_opening_threads(pointer, options.MaxFileOpeningThreads);
            Native.rocksdb_options_set_keep_log_file_num(pointer, 4);
            if (!options.VerboseInfoLog)
            {
                Native.rocksdb_options_set_info_log_level(pointer, Native.InfoLogLevelWarn);
            }

            if (options.BlockCacheBytes > 0)
            {
                // The table factory copies the table options, which hold their own reference to the cache:
                // both wrappers can be released right away.
                using var cache = CacheHandle.CreateLru(options.BlockCacheBytes);
                using var tableOptions = BlockBasedTableOptionsHandle.Create();
                Native.rocksdb_block_based_options_set_block_cache(tableOptions.Pointer, cache.Pointer);
                Native.rocksdb_options_set_block_based_table_factory(pointer, tableOptions.Pointer);
            }

            return native;
        }
        catch
        {
            native.Dispose();
            throw;
        }
    }

    private static unsafe List<string> ListColumnFamilies(OptionsHandle options, string path)
    {
        var result = new List<string>();
        nuint count = 0;
        nint error = 0;
        nint list = Native.rocksdb_list_column_families(options.Pointer, path, &count, &error);
        if (error != 0)
        {
            // No database there yet (or not readable): open reports the real problem if there is one.
            NativeErrors.TakeMessage(error);
            return result;
        }

        if (list == 0)
        {
            return result;
        }

        try
        {
            var entries = (nint*)list;
            for (nuint i = 0; i < count; i++)
            {
                var name = Marshal.PtrToStringUTF8(entries[i]);
                if (!string.IsNullOrEmpty(name))
                {
                    result.Add(name);
                }
            }
        }
        finally
        {
            Native.rocksdb_list_column_families_destroy(list, count);
        }

        return result;
    }

    public unsafe byte[]? Get(string columnFamily, ReadOnlySpan<byte> key, IKvSnapshot? snapshot = null)
    {
        ThrowIfDisposed();
        var cf = ResolveColumnFamily(columnFamily);
        var readOptions = snapshot is null ? _defaultReadOptions : OwnSnapshot(snapshot).ReadOptions;

        using var cfLease = new RocksHandle.Lease(cf); // also keeps the database open
        using var readLease = new RocksHandle.Lease(readOptions);
        nint error = 0;
        nint slice;
        fixed (byte* keyPtr = key)
        {
            slice = Native.rocksdb_get_pinned_cf(_db.Pointer, readOptions.Pointer, cf.Pointer, NativeBytes.NonNull(keyPtr), (nuint)key.Length, &error);
        }

        NativeErrors.Check(error, "get");
        if (slice == 0)
        {
            return null;
        }

        try
        {
            nuint length = 0;
            byte* value = Native.rocksdb_pinnableslice_value(slice, &length);
            return length == 0 ? Array.Empty<byte>() : new ReadOnlySpan<byte>(value, checked((int)length)).ToArray();
        }
        finally
        {
            Native.rocksdb_pinnableslice_destroy(slice);
        }
    }

    public IKvIterator Iterate(string columnFamily, byte[]? lowerInclusive = null, byte[]? upperExclusive = null, IKvSnapshot? snapshot = null)
    {
        ThrowIfDisposed();
        var cf = ResolveColumnFamily(columnFamily);
        var snapshotHandle = snapshot is null ? null : OwnSnapshot(snapshot).Handle;

        // The bounds are referenced (not copied) by the read options, which the iterator references: copy them to native
        // memory that the read options keep alive until the iterator is gone.
        NativeBufferHandle? bounds = null;
        ReadOptionsHandle? readOptions = null;
        try
        {
            if (lowerInclusive is not null || upperExclusive is not null)
            {
                bounds = NativeBufferHandle.Copy(lowerInclusive, upperExclusive);
            }

            readOptions = ReadOptionsHandle.CreateWithBounds(
                snapshotHandle,
                bounds,
                lowerInclusive?.Length ?? 0,
                upperExclusive?.Length ?? 0,
                lowerInclusive is not null,
                upperExclusive is not null);
            var iterator = IteratorHandle.Create(_db, cf, readOptions);
            return new RocksDbIterator(iterator);
        }
        finally
        {
            // Drop our own references; the iterator holds its own on everything it needs.
            readOptions?.Dispose();
            bounds?.Dispose();
        }
    }

    public IKvSnapshot Snapshot()
    {
        ThrowIfDisposed();
        var handle = SnapshotHandle.Create(_db);
        try
        {
            return new RocksDbSnapshot(this, handle, ReadOptionsHandle.Create(handle));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public unsafe void Checkpoint(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ThrowIfDisposed();
        string fullPath = System.IO.Path.GetFullPath(directory);
        if (Directory.Exists(fullPath) || File.Exists(fullPath))
        {
            throw new IOException($"Checkpoint directory '{fullPath}' already exists.");
        }

        string? parent = System.IO.Path.GetDirectoryName(fullPath);
        if (parent is not null)
        {
            Directory.CreateDirectory(parent);
        }

        using var checkpoint = CheckpointHandle.Create(_db);
        nint error = 0;
        Native.rocksdb_checkpoint_create(checkpoint.Pointer, fullPath, 0, &error);
        NativeErrors.Check(error, $"checkpoint to '{fullPath}'");
    }

    public ValueTask WriteAsync(KvBatch batch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ThrowIfDisposed();
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        if (batch.Count == 0)
        {
            return ValueTask.CompletedTask;
        }

        var pending = PendingWrite.Create(batch, this, cancellationToken);
        ValueTask enqueue;
        try
        {
            enqueue = _queue.Writer.WriteAsync(pending, cancellationToken);
        }
        catch
        {
            pending.Abandon();
            throw;
        }

        if (enqueue.IsCompletedSuccessfully)
        {
            return new ValueTask(pending.Task);
        }

        return EnqueueSlowAsync(enqueue, pending);
    }

    private static async ValueTask EnqueueSlowAsync(ValueTask enqueue, PendingWrite pending)
    {
        try
        {
            await enqueue.ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            pending.Abandon();
            throw new ObjectDisposedException(nameof(RocksDbEngine));
        }
        catch
        {
            pending.Abandon();
            throw;
        }

        await pending.Task.ConfigureAwait(false);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Stop the writer: queued writes that it has not taken yet fail with ObjectDisposedException; a group it is
        // writing right now completes first.
        _queue.Writer.TryComplete();
        _writerGate?.Set();
        if (Thread.CurrentThread != _writerThread)
        {
            _writerThread.Join();
        }

        FlushMemtables();
        _defaultReadOptions.Dispose();
        foreach (var columnFamily in _columnFamilyList)
        {
            columnFamily.Dispose();
        }

        // Closes the database now, or when the last live iterator/snapshot/checkpoint releases it.
        _db.Dispose();
    }

    /// <summary>
    /// Writes every column family's memtable to table (and blob) files and waits for it; throws on failure. With
    /// <see cref="RocksDbOptions.BulkLoad"/> this is what makes the writes durable.
    /// </summary>
    public void Flush()
    {
        ThrowIfDisposed();
        FlushColumnFamilies(throwOnError: true);
    }

    /// <summary>
    /// On a clean close, writes the memtables to table (and blob) files, so the data no longer lives only in the WAL
    /// and the next open replays nothing. Best effort: a failure leaves the WAL, which recovery replays.
    /// </summary>
    private void FlushMemtables()
    {
        try
        {
            FlushColumnFamilies(throwOnError: false);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private unsafe void FlushColumnFamilies(bool throwOnError)
    {
        nint options = Native.rocksdb_flushoptions_create();
        try
        {
            Native.rocksdb_flushoptions_set_wait(options, 1);
            foreach (var columnFamily in _columnFamilyList)
            {
                nint error = 0;
                Native.rocksdb_flush_cf(_db.Pointer, options, columnFamily.Pointer, &error);
                if (error != 0)
                {
                    string message = Marshal.PtrToStringUTF8(error) ?? "unknown error";
                    Native.rocksdb_free(error);
                    if (throwOnError)
                        throw new StorageException($"RocksDB flush failed: {message}");
                }
            }
        }
        finally
        {
            Native.rocksdb_flushoptions_destroy(options);
        }
    }

    // ---------------------------------------------------------------- group commit

    private void WriterLoop()
    {
        // The writer pins the database and the column families for its whole life.
        var pinned = new List<SafeHandle>();
        WriteBatchHandle? batch = null;
        WriteOptionsHandle? syncOptions = null;
        WriteOptionsHandle? failingOptions = null;
        var group = new List<PendingWrite>();
        PendingWrite? carry = null;
        var reader = _queue.Reader;
        try
        {
            foreach (SafeHandle handle in _columnFamilyList.Prepend<SafeHandle>(_db))
            {
                bool added = false;
                handle.DangerousAddRef(ref added);
                if (added)
                {
                    pinned.Add(handle);
                }
            }

            batch = WriteBatchHandle.Create();
            syncOptions = _bulkLoad ? WriteOptionsHandle.Create(sync: false, disableWal: true) : WriteOptionsHandle.Create(sync: true);

            while (true)
            {
                if (carry is null && !reader.TryPeek(out _))
                {
                    if (!WaitToRead(reader))
                    {
                        break; // completed and drained
                    }

                    continue;
                }

                Volatile.Read(ref _writerGate)?.Wait();

                group.Clear();
                long bytes = 0;
                if (carry is not null)
                {
                    group.Add(carry);
                    bytes = carry.Bytes;
                    carry = null;
                }

                while (group.Count < _groupMaxBatches && reader.TryRead(out var next))
                {
                    if (!next.TryTake())
                    {
                        continue; // cancelled before it was picked up: not written
                    }

                    if (group.Count > 0 && bytes + next.Bytes > _groupMaxBytes)
                    {
                        carry = next; // first of the next group
                        break;
                    }

                    group.Add(next);
                    bytes += next.Bytes;
                }

                if (group.Count == 0)
                {
                    continue;
                }

                if (Volatile.Read(ref _disposed) != 0)
                {
                    FailAll(group, new ObjectDisposedException(nameof(RocksDbEngine)));
                    continue;
                }

                WriteOptionsHandle options = syncOptions;
                if (_injectWriteFailure)
                {
                    // Sync with the WAL disabled is rejected by RocksDB: a genuine native write error, nothing applied.
                    failingOptions ??= WriteOptionsHandle.Create(sync: true, disableWal: true);
                    options = failingOptions;
                }

                WriteGroup(group, bytes, batch, options);
            }
        }
        catch (Exception ex)
        {
            // Not expected (native write errors are handled per group): fail whatever is left.
            FailAll(group, ex);
            if (carry is not null)
            {
                carry.Fail(ex);
                carry = null;
            }
        }
        finally
        {
            var disposed = new ObjectDisposedException(nameof(RocksDbEngine));
            carry?.Fail(disposed);
            _queue.Writer.TryComplete();
            while (reader.TryRead(out var leftover))
            {
                leftover.Fail(disposed);
            }

            failingOptions?.Dispose();
            syncOptions?.Dispose();
            batch?.Dispose();
            foreach (var handle in pinned)
            {
                handle.DangerousRelease();
            }
        }
    }

    private static bool WaitToRead(ChannelReader<PendingWrite> reader)
    {
        var wait = reader.WaitToReadAsync();
        return wait.IsCompleted ? wait.Result : wait.AsTask().GetAwaiter().GetResult();
    }

    private static void FailAll(List<PendingWrite> group, Exception exception)
    {
        foreach (var pending in group)
        {
            pending.Fail(exception);
        }

        group.Clear();
    }

    private unsafe void WriteGroup(List<PendingWrite> group, long bytes, WriteBatchHandle batch, WriteOptionsHandle options)
    {
        nint batchPtr = batch.Pointer;
        Exception? failure = null;
        try
        {
            Native.rocksdb_writebatch_clear(batchPtr);
            foreach (var pending in group)
            {
                var ops = pending.Ops;
                var columnFamilies = pending.ColumnFamilies;
                for (int i = 0; i < ops.Length; i++)
                {
                    AppendOp(batchPtr, columnFamilies[i].Pointer, ops[i]);
                }
            }

            nint error = 0;
            Native.rocksdb_write(_db.Pointer, options.Pointer, batchPtr, &error);
            NativeErrors.Check(error, "write");
        }
        catch (Exception ex)
        {
            failure = ex as StorageException ?? new StorageException($"RocksDB write failed: {ex.Message}", ex);
        }
        finally
        {
            Native.rocksdb_writebatch_clear(batchPtr);
        }

        if (failure is not null)
        {
            FailAll(group, failure);
            return;
        }

        Interlocked.Add(ref _batchesWritten, group.Count);
        Interlocked.Increment(ref _syncedWrites);
        Interlocked.Add(ref _bytesWritten, bytes);
        foreach (var pending in group)
        {
            pending.Complete();
        }

        group.Clear();
    }

    private static unsafe void AppendOp(nint batch, nint columnFamily, in KvOp op)
    {
        switch (op.Kind)
        {
            case KvOpKind.Put:
                fixed (byte* key = op.Key)
                fixed (byte* value = op.Value)
                {
                    Native.rocksdb_writebatch_put_cf(batch, columnFamily, NativeBytes.NonNull(key), (nuint)op.Key.Length, NativeBytes.NonNull(value), (nuint)op.Value!.Length);
                }

                break;
            case KvOpKind.Delete:
                fixed (byte* key = op.Key)
                {
                    Native.rocksdb_writebatch_delete_cf(batch, columnFamily, NativeBytes.NonNull(key), (nuint)op.Key.Length);
                }

                break;
            case KvOpKind.DeleteRange:
                fixed (byte* start = op.Key)
                fixed (byte* end = op.Value)
                {
                    Native.rocksdb_writebatch_delete_range_cf(batch, columnFamily, NativeBytes.NonNull(start), (nuint)op.Key.Length, NativeBytes.NonNull(end), (nuint)op.Value!.Length);
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op.Kind, "Unknown operation kind.");
        }
    }

    // ---------------------------------------------------------------- helpers

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private ColumnFamilyHandle ResolveColumnFamily(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!_columnFamilies.TryGetValue(name, out var handle))
        {
            throw new ArgumentException($"Unknown column family '{name}'.", nameof(name));
        }

        return handle;
    }

    private RocksDbSnapshot OwnSnapshot(IKvSnapshot snapshot)
    {
        if (snapshot is not RocksDbSnapshot own || !ReferenceEquals(own.Owner, this))
        {
            throw new ArgumentException("The snapshot was not created by this engine.", nameof(snapshot));
        }

        return own;
    }

    // ---------------------------------------------------------------- test hooks

    /// <summary>Test hook: the writer stops before taking its next group until the returned object is disposed.</summary>
    internal IDisposable PauseWriterForTesting()
    {
        var gate = new ManualResetEventSlim(false);
        if (Interlocked.CompareExchange(ref _writerGate, gate, null) is not null)
        {
            gate.Dispose();
            throw new InvalidOperationException("The writer is already paused.");
        }

        return new WriterPause(this, gate);
    }

    /// <summary>Test hook: while true, every native write is rejected by RocksDB (sync with WAL disabled).</summary>
    internal bool InjectWriteFailureForTesting
    {
        get => _injectWriteFailure;
        set => _injectWriteFailure = value;
    }

    /// <summary>Test hook: number of writes queued but not yet taken by the writer.</summary>
    internal int QueuedWritesForTesting => _queue.Reader.Count;

    private sealed class WriterPause(RocksDbEngine engine, ManualResetEventSlim gate) : IDisposable
    {
        public void Dispose()
        {
            if (Interlocked.CompareExchange(ref engine._writerGate, null, gate) == gate)
            {
                gate.Set(); // the gate object is left to the GC: the writer may still be returning from Wait()
            }
        }
    }

    // ---------------------------------------------------------------- nested types

    /// <summary>One caller batch waiting for the writer.</summary>
    private sealed class PendingWrite
    {
        private const int Queued = 0;
        private const int Taken = 1;
        private const int Cancelled = 2;

        private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationToken _cancellationToken;
        private CancellationTokenRegistration _registration;
        private int _state;

        private PendingWrite(KvOp[] ops, ColumnFamilyHandle[] columnFamilies, long bytes, CancellationToken cancellationToken)
        {
            Ops = ops;
            ColumnFamilies = columnFamilies;
            Bytes = bytes;
            _cancellationToken = cancellationToken;
        }

        public KvOp[] Ops { get; }
        public ColumnFamilyHandle[] ColumnFamilies { get; }
        public long Bytes { get; }
        public Task Task => _completion.Task;

        /// <summary>Copies and validates the batch (the caller may reuse it after WriteAsync returns).</summary>
        public static PendingWrite Create(KvBatch batch, RocksDbEngine engine, CancellationToken cancellationToken)
        {
            var ops = new KvOp[batch.Count];
            var columnFamilies = new ColumnFamilyHandle[batch.Count];
            int n = 0;
            foreach (var op in batch.Ops)
            {
                ArgumentNullException.ThrowIfNull(op.Key, nameof(batch));
                if (op.Kind is KvOpKind.Put or KvOpKind.DeleteRange)
                {
                    ArgumentNullException.ThrowIfNull(op.Value, nameof(batch));
                }
                else if (op.Kind != KvOpKind.Delete)
                {
                    throw new ArgumentException($"Unknown operation kind {op.Kind}.", nameof(batch));
                }

                var columnFamily = engine.ResolveColumnFamily(op.ColumnFamily);
                if (op.Kind == KvOpKind.DeleteRange && op.Key.AsSpan().SequenceCompareTo(op.Value) >= 0)
                {
                    continue; // empty or inverted range: nothing to delete
                }

                ops[n] = op;
                columnFamilies[n] = columnFamily;
                n++;
            }

            if (n != ops.Length)
            {
                Array.Resize(ref ops, n);
                Array.Resize(ref columnFamilies, n);
            }

            var pending = new PendingWrite(ops, columnFamilies, batch.ByteSize, cancellationToken);
            if (cancellationToken.CanBeCanceled)
            {
                pending._registration = cancellationToken.UnsafeRegister(static state => ((PendingWrite)state!).Cancel(), pending);
            }

            return pending;
        }

        /// <summary>The writer takes the batch; false when it was cancelled first.</summary>
        public bool TryTake()
        {
            if (Interlocked.CompareExchange(ref _state, Taken, Queued) != Queued)
            {
                return false;
            }

            _registration.Unregister();
            return true;
        }

        private void Cancel()
        {
            if (Interlocked.CompareExchange(ref _state, Cancelled, Queued) == Queued)
            {
                _completion.TrySetCanceled(_cancellationToken);
            }
        }

        /// <summary>The batch never reached the queue.</summary>
        public void Abandon()
        {
            Interlocked.CompareExchange(ref _state, Cancelled, Queued);
            _registration.Unregister();
        }

        public void Complete() => _completion.TrySetResult();

        public void Fail(Exception exception)
        {
            _registration.Unregister();
            _completion.TrySetException(exception);
        }
    }
}

/// <summary>A RocksDB snapshot plus read options that read through it.</summary>
internal sealed class RocksDbSnapshot : IKvSnapshot
{
    internal RocksDbSnapshot(RocksDbEngine owner, SnapshotHandle handle, ReadOptionsHandle readOptions)
    {
        Owner = owner;
        Handle = handle;
        ReadOptions = readOptions;
    }

    internal RocksDbEngine Owner { get; }
    internal SnapshotHandle Handle { get; }
    internal ReadOptionsHandle ReadOptions { get; }

    public void Dispose()
    {
        // Released natively once nothing (read options, iterators) references it any more.
        ReadOptions.Dispose();
        Handle.Dispose();
    }
}

/// <summary>A native RocksDB iterator. Not thread-safe (like any iterator); safe against use after dispose.</summary>
internal sealed unsafe class RocksDbIterator : IKvIterator
{
    private readonly IteratorHandle _handle;

    internal RocksDbIterator(IteratorHandle handle) => _handle = handle;

    public bool Valid
    {
        get
        {
            using var lease = new RocksHandle.Lease(_handle);
            return Native.rocksdb_iter_valid(_handle.Pointer) != 0;
        }
    }

    public ReadOnlySpan<byte> Key
    {
        get
        {
            using var lease = new RocksHandle.Lease(_handle);
            RequireValid();
            nuint length = 0;
            byte* key = Native.rocksdb_iter_key(_handle.Pointer, &length);
            return new ReadOnlySpan<byte>(key, checked((int)length));
        }
    }

    public ReadOnlySpan<byte> Value
    {
        get
        {
            using var lease = new RocksHandle.Lease(_handle);
            RequireValid();
            nuint length = 0;
            byte* value = Native.rocksdb_iter_value(_handle.Pointer, &length);
            return new ReadOnlySpan<byte>(value, checked((int)length));
        }
    }

    public void SeekToFirst()
    {
        using var lease = new RocksHandle.Lease(_handle);
        Native.rocksdb_iter_seek_to_first(_handle.Pointer);
        CheckStatus();
    }

    public void SeekToLast()
    {
        using var lease = new RocksHandle.Lease(_handle);
        Native.rocksdb_iter_seek_to_last(_handle.Pointer);
        CheckStatus();
    }

    public void Seek(ReadOnlySpan<byte> target)
    {
        using var lease = new RocksHandle.Lease(_handle);
        fixed (byte* key = target)
        {
            Native.rocksdb_iter_seek(_handle.Pointer, NativeBytes.NonNull(key), (nuint)target.Length);
        }

        CheckStatus();
    }

    public void SeekForPrev(ReadOnlySpan<byte> target)
    {
        using var lease = new RocksHandle.Lease(_handle);
        fixed (byte* key = target)
        {
            Native.rocksdb_iter_seek_for_prev(_handle.Pointer, NativeBytes.NonNull(key), (nuint)target.Length);
        }

        CheckStatus();
    }

    public void Next()
    {
        using var lease = new RocksHandle.Lease(_handle);
        RequireValid();
        Native.rocksdb_iter_next(_handle.Pointer);
        CheckStatus();
    }

    public void Prev()
    {
        using var lease = new RocksHandle.Lease(_handle);
        RequireValid();
        Native.rocksdb_iter_prev(_handle.Pointer);
        CheckStatus();
    }

    public void Dispose() => _handle.Dispose();

    private void RequireValid()
    {
        if (Native.rocksdb_iter_valid(_handle.Pointer) == 0)
        {
            throw new InvalidOperationException("The iterator is not positioned on an entry.");
        }
    }

    private void CheckStatus()
    {
        if (Native.rocksdb_iter_valid(_handle.Pointer) != 0)
        {
            return;
        }

        nint error = 0;
        Native.rocksdb_iter_get_error(_handle.Pointer, &error);
        NativeErrors.Check(error, "iterator");
    }
}
