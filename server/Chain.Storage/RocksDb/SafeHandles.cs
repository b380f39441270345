using System.Runtime.InteropServices;

namespace Chain.Storage.RocksDb;

/// <summary>
/// Base class of every RocksDB handle. A handle may depend on other handles (a column family handle on its
/// database, an iterator on its read options, column family and database, ...). Dependencies are pinned with
/// <see cref="SafeHandle.DangerousAddRef"/> before the native object exists and released only after the native
/// object was freed, so a native object can never outlive what it points into, regardless of the order in which
/// the managed wrappers are disposed or finalized. Each native object is freed exactly once (SafeHandle
/// guarantees <see cref="ReleaseHandle"/> runs at most once, and only for a valid handle).
/// </summary>
internal abstract class RocksHandle : SafeHandle
{
    private SafeHandle[] _dependencies = Array.Empty<SafeHandle>();
    private int _dependencyCount;

    protected RocksHandle() : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    /// <summary>Frees the native object. Called exactly once, before the dependencies are released.</summary>
    protected abstract void Free(nint nativeHandle);

    protected sealed override bool ReleaseHandle()
    {
        try
        {
            Free(handle);
        }
        finally
        {
            ReleaseDependencies();
        }

        return true;
    }

    /// <summary>The raw pointer. Callers must hold a reference (see <see cref="Lease"/>) or own the handle.</summary>
    internal nint Pointer => handle;

    /// <summary>
    /// Pins <paramref name="dependencies"/>, calls <paramref name="create"/> and wraps its result. When creation fails
    /// (exception or null pointer) the dependencies are released again and nothing leaks.
    /// </summary>
    protected static THandle Create<THandle>(Func<nint> create, string what, params ReadOnlySpan<SafeHandle?> dependencies)
        where THandle : RocksHandle, new()
    {
        var wrapper = new THandle();
        try
        {
            wrapper.AcquireDependencies(dependencies);
            nint pointer = create();
            if (pointer == 0)
            {
                throw new StorageException($"RocksDB failed to create {what}.");
            }

            wrapper.SetHandle(pointer);
            return wrapper;
        }
        catch
        {
            if (wrapper.IsInvalid)
            {
                // ReleaseHandle never runs for an invalid handle: release what we pinned ourselves.
                wrapper.ReleaseDependencies();
            }

            wrapper.Dispose();
            throw;
        }
    }

    /// <summary>Wraps an already created native object; if pinning a dependency fails the object is freed.</summary>
    protected static THandle Adopt<THandle>(nint pointer, params ReadOnlySpan<SafeHandle?> dependencies)
        where THandle : RocksHandle, new()
    {
        var wrapper = new THandle();
        wrapper.SetHandle(pointer);
        try
        {
            wrapper.AcquireDependencies(dependencies);
            return wrapper;
        }
        catch
        {
            wrapper.Dispose();
            throw;
        }
    }

    private void AcquireDependencies(ReadOnlySpan<SafeHandle?> dependencies)
    {
        _dependencies = new SafeHandle[dependencies.Length];
        foreach (var dependency in dependencies)
        {
            if (dependency is null)
            {
                continue;
            }

            bool added = false;
            dependency.DangerousAddRef(ref added);
            if (added)
            {
                _dependencies[_dependencyCount++] = dependency;
            }
        }
    }

    private void ReleaseDependencies()
    {
        for (int i = _dependencyCount - 1; i >= 0; i--)
        {
            _dependencies[i].DangerousRelease();
            _dependencies[i] = null!;
        }

        _dependencyCount = 0;
    }

    /// <summary>Pins a handle for the duration of a native call; throws ObjectDisposedException if it is closed.</summary>
    internal readonly ref struct Lease
    {
        private readonly SafeHandle? _handle;

        public Lease(SafeHandle handle)
        {
            bool added = false;
            handle.DangerousAddRef(ref added);
            _handle = added ? handle : null;
        }

        public void Dispose() => _handle?.DangerousRelease();
    }
}

/// <summary>rocksdb_options_t.</summary>
internal sealed class OptionsHandle : RocksHandle
{
    internal static OptionsHandle Create() => Create<OptionsHandle>(static () => Native.rocksdb_options_create(), "options");

    protected override void Free(nint nativeHandle) => Native.rocksdb_options_destroy(nativeHandle);
}

/// <summary>rocksdb_block_based_table_options_t (copied into the options by rocksdb_options_set_block_based_table_factory).</summary>
internal sealed class BlockBasedTableOptionsHandle : RocksHandle
{
    internal static BlockBasedTableOptionsHandle Create() =>
        Create<BlockBasedTableOptionsHandle>(static () => Native.rocksdb_block_based_options_create(), "block based table options");

    protected override void Free(nint nativeHandle) => Native.rocksdb_block_based_options_destroy(nativeHandle);
}

/// <summary>rocksdb_cache_t (a shared_ptr holder; table options keep their own reference).</summary>
internal sealed class CacheHandle : RocksHandle
{
    internal static CacheHandle CreateLru(long capacityBytes) =>
        Create<CacheHandle>(() => Native.rocksdb_cache_create_lru((nuint)capacityBytes), "block cache");

    protected override void Free(nint nativeHandle) => Native.rocksdb_cache_destroy(nativeHandle);
}

/// <summary>rocksdb_t. Closed (rocksdb_close) when the last dependent handle is gone.</summary>
internal sealed class DbHandle : RocksHandle
{
    internal static DbHandle Adopt(nint db) => Adopt<DbHandle>(db);

    protected override void Free(nint nativeHandle) => Native.rocksdb_close(nativeHandle);
}

/// <summary>rocksdb_column_family_handle_t; keeps its database open.</summary>
internal sealed class ColumnFamilyHandle : RocksHandle
{
    internal string Name { get; private set; } = "";

    internal static ColumnFamilyHandle Adopt(nint columnFamily, string name, DbHandle db)
    {
        var handle = Adopt<ColumnFamilyHandle>(columnFamily, db);
        handle.Name = name;
        return handle;
    }

    protected override void Free(nint nativeHandle) => Native.rocksdb_column_family_handle_destroy(nativeHandle);
}

/// <summary>A rocksdb snapshot; released through the database it came from, which it keeps open.</summary>
internal sealed class SnapshotHandle : RocksHandle
{
    private DbHandle? _db;

    internal static SnapshotHandle Create(DbHandle db)
    {
        var handle = Create<SnapshotHandle>(() => Native.rocksdb_create_snapshot(db.Pointer), "snapshot", db);
        handle._db = db;
        return handle;
    }

    // The database is a dependency, so it is still open here (dependencies are released after Free).
    protected override void Free(nint nativeHandle) => Native.rocksdb_release_snapshot(_db!.Pointer, nativeHandle);
}

/// <summary>rocksdb_readoptions_t; keeps the snapshot (if any) and the bound buffer (if any) it points to alive.</summary>
internal sealed class ReadOptionsHandle : RocksHandle
{
    internal static ReadOptionsHandle Create(SnapshotHandle? snapshot = null)
    {
        return Create<ReadOptionsHandle>(
            () =>
            {
                nint options = Native.rocksdb_readoptions_create();
                if (options != 0 && snapshot is not null)
                {
                    Native.rocksdb_readoptions_set_snapshot(options, snapshot.Pointer);
                }

                return options;
            },
            "read options",
            snapshot);
    }

    /// <summary>Read options whose iterate bounds point into <paramref name="bounds"/>, which stays allocated as long as they live.</summary>
    internal static unsafe ReadOptionsHandle CreateWithBounds(SnapshotHandle? snapshot, NativeBufferHandle? bounds, int lowerLength, int upperLength, bool hasLower, bool hasUpper)
    {
        return Create<ReadOptionsHandle>(
            () =>
            {
                nint options = Native.rocksdb_readoptions_create();
                if (options == 0)
                {
                    return 0;
                }

                if (snapshot is not null)
                {
                    Native.rocksdb_readoptions_set_snapshot(options, snapshot.Pointer);
                }

                byte* memory = bounds is null ? null : (byte*)bounds.Pointer;
                if (hasLower)
                {
                    Native.rocksdb_readoptions_set_iterate_lower_bound(options, memory, (nuint)lowerLength);
                }

                if (hasUpper)
                {
                    Native.rocksdb_readoptions_set_iterate_upper_bound(options, memory + lowerLength, (nuint)upperLength);
                }

                return options;
            },
            "read options",
            snapshot,
            bounds);
    }

    protected override void Free(nint nativeHandle) => Native.rocksdb_readoptions_destroy(nativeHandle);
}

/// <summary>A block of native memory (NativeMemory.Alloc), e.g. the iterate bounds referenced by read options.</summary>
internal sealed unsafe class NativeBufferHandle : RocksHandle
{
    /// <summary>Copies the concatenation of <paramref name="first"/> and <paramref name="second"/> into native memory (at least 1 byte is allocated).</summary>
    internal static NativeBufferHandle Copy(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        int length = first.Length + second.Length;
        var handle = Create<NativeBufferHandle>(() => (nint)NativeMemory.Alloc((nuint)Math.Max(1, length)), "native buffer");
        var target = new Span<byte>((void*)handle.Pointer, length);
        first.CopyTo(target);
        second.CopyTo(target[first.Length..]);
        return handle;
    }

    protected override void Free(nint nativeHandle) => NativeMemory.Free((void*)nativeHandle);
}

/// <summary>rocksdb_iterator_t; keeps its read options (and through them snapshot and bounds), column family and database alive.</summary>
internal sealed class IteratorHandle : RocksHandle
{
    internal static IteratorHandle Create(DbHandle db, ColumnFamilyHandle columnFamily, ReadOptionsHandle readOptions) =>
        Create<IteratorHandle>(
            () => Native.rocksdb_create_iterator_cf(db.Pointer, readOptions.Pointer, columnFamily.Pointer),
            "iterator",
            db,
            columnFamily,
            readOptions);

    protected override void Free(nint nativeHandle) => Native.rocksdb_iter_destroy(nativeHandle);
}

/// <summary>rocksdb_writeoptions_t.</summary>
internal sealed class WriteOptionsHandle : RocksHandle
{
    internal static WriteOptionsHandle Create(bool sync, bool disableWal = false) =>
        Create<WriteOptionsHandle>(
            () =>
            {
                nint options = Native.rocksdb_writeoptions_create();
                if (options != 0)
                {
                    Native.rocksdb_writeoptions_set_sync(options, sync ? (byte)1 : (byte)0);
                    if (disableWal)
                    {
                        Native.rocksdb_writeoptions_disable_WAL(options, 1);
                    }
                }

                return options;
            },
            "write options");

    protected override void Free(nint nativeHandle) => Native.rocksdb_writeoptions_destroy(nativeHandle);
}

/// <summary>rocksdb_writebatch_t.</summary>
internal sealed class WriteBatchHandle : RocksHandle
{
    internal static WriteBatchHandle Create() => Create<WriteBatchHandle>(static () => Native.rocksdb_writebatch_create(), "write batch");

    protected override void Free(nint nativeHandle) => Native.rocksdb_writebatch_destroy(nativeHandle);
}

/// <summary>rocksdb_checkpoint_t; keeps its database open.</summary>
internal sealed class CheckpointHandle : RocksHandle
{
    internal static unsafe CheckpointHandle Create(DbHandle db) =>
        Create<CheckpointHandle>(
            () =>
            {
                nint error = 0;
                nint checkpoint = Native.rocksdb_checkpoint_object_create(db.Pointer, &error);
                NativeErrors.Check(error, "checkpoint object create");
                return checkpoint;
            },
            "checkpoint",
            db);

    protected override void Free(nint nativeHandle) => Native.rocksdb_checkpoint_object_destroy(nativeHandle);
}
