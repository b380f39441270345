using System.Runtime.InteropServices;

namespace Chain.Storage.RocksDb;

/// <summary>
/// P/Invoke declarations for the subset of the RocksDB C API (rocksdb/c.h, RocksDB 7.8) used by
/// <see cref="RocksDbEngine"/>. Every native object is passed as a raw pointer (<c>nint</c>); ownership and
/// lifetime are managed by the SafeHandle subclasses in SafeHandles.cs. Error-returning functions take a
/// <c>char** errptr</c> which must point at a zero-initialised <c>nint</c>; a non-zero result is a
/// malloc()ed message that must be released with <see cref="rocksdb_free"/> (see <see cref="NativeErrors"/>).
/// </summary>
internal static unsafe partial class Native
{
    internal const string Lib = "librocksdb.so.7.8";

    // ---- compression types (enum in c.h) ----
    internal const int NoCompression = 0;
    internal const int SnappyCompression = 1;
    internal const int Lz4Compression = 4;
    internal const int ZstdCompression = 7;

    // ---- InfoLogLevel ----
    internal const int InfoLogLevelWarn = 2;

    // ---- memory ----
    [LibraryImport(Lib)]
    internal static partial void rocksdb_free(nint ptr);

    // ---- options ----
    [LibraryImport(Lib)]
    internal static partial nint rocksdb_options_create();

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_destroy(nint options);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_create_if_missing(nint options, byte value);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_create_missing_column_families(nint options, byte value);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_compression(nint options, int compression);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_max_background_jobs(nint options, int jobs);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_max_file_opening_threads(nint options, int threads);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_keep_log_file_num(nint options, nuint count);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_info_log_level(nint options, int level);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_block_based_table_factory(nint options, nint tableOptions);

    [LibraryImport(Lib)]
    internal static partial nint rocksdb_flushoptions_create();

    [LibraryImport(Lib)]
    internal static partial void rocksdb_flushoptions_destroy(nint options);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_flushoptions_set_wait(nint options, byte value);

    [LibraryImport(Lib)]
    internal static unsafe partial void rocksdb_flush_cf(nint db, nint options, nint columnFamily, nint* errptr);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_enable_blob_files(nint options, byte value);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_min_blob_size(nint options, ulong size);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_blob_file_size(nint options, ulong size);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_enable_blob_gc(nint options, byte value);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_options_set_write_buffer_size(nint options, nuint size);

    // ---- block based table options / cache ----
    [LibraryImport(Lib)]
    internal static partial nint rocksdb_block_based_options_create();

    [LibraryImport(Lib)]
    internal static partial void rocksdb_block_based_options_destroy(nint tableOptions);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_block_based_options_set_block_cache(nint tableOptions, nint cache);

    [LibraryImport(Lib)]
    internal static partial nint rocksdb_cache_create_lru(nuint capacity);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_cache_destroy(nint cache);

    // ---- open / close / column families ----
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint rocksdb_list_column_families(nint options, string name, nuint* count, nint* errptr);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_list_column_families_destroy(nint list, nuint count);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial nint rocksdb_open_column_families(
        nint options,
        string name,
        int numColumnFamilies,
        nint* columnFamilyNames,
        nint* columnFamilyOptions,
        nint* columnFamilyHandles,
        nint* errptr);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_close(nint db);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_column_family_handle_destroy(nint handle);

    // ---- reads ----
    [LibraryImport(Lib)]
    internal static partial nint rocksdb_get_pinned_cf(nint db, nint readOptions, nint columnFamily, byte* key, nuint keyLength, nint* errptr);

    [LibraryImport(Lib)]
    internal static partial byte* rocksdb_pinnableslice_value(nint slice, nuint* valueLength);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_pinnableslice_destroy(nint slice);

    [LibraryImport(Lib)]
    internal static partial nint rocksdb_readoptions_create();

    [LibraryImport(Lib)]
    internal static partial void rocksdb_readoptions_destroy(nint readOptions);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_readoptions_set_snapshot(nint readOptions, nint snapshot);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_readoptions_set_iterate_lower_bound(nint readOptions, byte* key, nuint keyLength);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_readoptions_set_iterate_upper_bound(nint readOptions, byte* key, nuint keyLength);

    // ---- snapshots ----
    [LibraryImport(Lib)]
    internal static partial nint rocksdb_create_snapshot(nint db);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_release_snapshot(nint db, nint snapshot);

    // ---- iterators ----
    [LibraryImport(Lib)]
    internal static partial nint rocksdb_create_iterator_cf(nint db, nint readOptions, nint columnFamily);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_iter_destroy(nint iterator);

    [LibraryImport(Lib)]
    internal static partial byte rocksdb_iter_valid(nint iterator);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_iter_seek_to_first(nint iterator);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_iter_seek_to_last(nint iterator);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_iter_seek(nint iterator, byte* key, nuint keyLength);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_iter_seek_for_prev(nint iterator, byte* key, nuint keyLength);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_iter_next(nint iterator);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_iter_prev(nint iterator);

    [LibraryImport(Lib)]
    internal static partial byte* rocksdb_iter_key(nint iterator, nuint* keyLength);

    [LibraryImport(Lib)]
    internal static partial byte* rocksdb_iter_value(nint iterator, nuint* valueLength);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_iter_get_error(nint iterator, nint* errptr);

    // ---- writes ----
    [LibraryImport(Lib)]
    internal static partial nint rocksdb_writeoptions_create();

    [LibraryImport(Lib)]
    internal static partial void rocksdb_writeoptions_destroy(nint writeOptions);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_writeoptions_set_sync(nint writeOptions, byte sync);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_writeoptions_disable_WAL(nint writeOptions, int disable);

    [LibraryImport(Lib)]
    internal static partial nint rocksdb_writebatch_create();

    [LibraryImport(Lib)]
    internal static partial void rocksdb_writebatch_destroy(nint batch);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_writebatch_clear(nint batch);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_writebatch_put_cf(nint batch, nint columnFamily, byte* key, nuint keyLength, byte* value, nuint valueLength);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_writebatch_delete_cf(nint batch, nint columnFamily, byte* key, nuint keyLength);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_writebatch_delete_range_cf(nint batch, nint columnFamily, byte* startKey, nuint startKeyLength, byte* endKey, nuint endKeyLength);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_write(nint db, nint writeOptions, nint batch, nint* errptr);

    // ---- checkpoints ----
    [LibraryImport(Lib)]
    internal static partial nint rocksdb_checkpoint_object_create(nint db, nint* errptr);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial void rocksdb_checkpoint_create(nint checkpoint, string checkpointDir, ulong logSizeForFlush, nint* errptr);

    [LibraryImport(Lib)]
    internal static partial void rocksdb_checkpoint_object_destroy(nint checkpoint);
}

/// <summary>Converts RocksDB <c>char** errptr</c> results into <see cref="StorageException"/>.</summary>
internal static class NativeErrors
{
    /// <summary>Throws a <see cref="StorageException"/> when <paramref name="error"/> is set, freeing the native string.</summary>
    internal static void Check(nint error, string operation)
    {
        if (error == 0)
        {
            return;
        }

        throw new StorageException($"RocksDB {operation} failed: {TakeMessage(error)}");
    }

    /// <summary>Reads and frees a native error string.</summary>
    internal static string TakeMessage(nint error)
    {
        try
        {
            return Marshal.PtrToStringUTF8(error) ?? "unknown error";
        }
        finally
        {
            Native.rocksdb_free(error);
        }
    }
}

/// <summary>Pointer helpers for building RocksDB slices from managed spans.</summary>
internal static unsafe class NativeBytes
{
    private static readonly byte* Empty = (byte*)NativeMemory.AllocZeroed(1);

    /// <summary>
    /// <c>fixed</c> yields null for an empty span; RocksDB slices are better not built from a null pointer even
    /// for length 0, so substitute a valid (never freed, one byte) buffer.
    /// </summary>
    internal static byte* NonNull(byte* pointer) => pointer != null ? pointer : Empty;
}
