namespace Chain.Storage.RocksDb;

/// <summary>Compression applied to RocksDB SST files.</summary>
public enum RocksDbCompression
{
    None,
    Snappy,
    Lz4,
    Zstd,
}

/// <summary>Options for <see cref="RocksDbEngine.Open"/>.</summary>
public sealed record RocksDbOptions
{
    /// <summary>Column families to open besides "default" (always opened). Missing ones are created; existing ones not listed are opened too.</summary>
    public IReadOnlyList<string> ColumnFamilies { get; init; } = Array.Empty<string>();

    /// <summary>
    /// Column families whose values of at least <see cref="MinBlobBytes"/> go to blob files (RocksDB's integrated
    /// key-value separation): compaction moves only small references, never the values, and blob garbage collection
    /// is off, so a value is written once more after the WAL and never read back by background work — a damaged
    /// blob fails only the reads of that value (its checksum), never a compaction.
    /// </summary>
    public IReadOnlyList<string> BlobColumnFamilies { get; init; } = Array.Empty<string>();

    /// <summary>Smallest value stored in a blob file (in <see cref="BlobColumnFamilies"/>).</summary>
    public long MinBlobBytes { get; init; } = 4096;

    /// <summary>Memtable size of the blob column families (their values sit there until a flush).</summary>
    public long BlobWriteBufferBytes { get; init; } = 32L * 1024 * 1024;

    /// <summary>Create the database (and the parent directory) when it does not exist.</summary>
    public bool CreateIfMissing { get; init; } = true;

    /// <summary>Maximum number of caller batches combined into one synced native write.</summary>
    public int GroupCommitMaxBatches { get; init; } = 512;

    /// <summary>Maximum payload bytes (sum of <see cref="KvBatch.ByteSize"/>) combined into one synced native write; a single larger batch is still written alone.</summary>
    public long GroupCommitMaxBytes { get; init; } = 16L * 1024 * 1024;

    /// <summary>Capacity of the bounded write queue; WriteAsync waits (asynchronously) while it is full.</summary>
    public int WriteQueueCapacity { get; init; } = 4096;

    /// <summary>LRU block cache size in bytes; 0 keeps RocksDB's default cache.</summary>
    public long BlockCacheBytes { get; init; } = 32L * 1024 * 1024;

    /// <summary>SST compression (default none: values are usually small or already compressed, and it is faster).</summary>
    public RocksDbCompression Compression { get; init; } = RocksDbCompression.None;

    /// <summary>RocksDB background flush/compaction jobs.</summary>
    public int MaxBackgroundJobs { get; init; } = 2;

    /// <summary>
    /// Threads RocksDB starts (per column family, on every open) to open table files in parallel. RocksDB's default of
    /// 16 makes opening slow for small databases; raise it for databases with very many table files.
    /// </summary>
    public int MaxFileOpeningThreads { get; init; } = 1;

    /// <summary>
    /// Offline bulk loading only (a restore laying out a new data directory): writes skip the write-ahead log and are
    /// not synced, so a completed WriteAsync is NOT durable until <see cref="RocksDbEngine.Flush"/> returns. Never for a
    /// serving node.
    /// </summary>
    public bool BulkLoad { get; init; }

    /// <summary>When false (default) RocksDB's LOG file only records warnings and errors.</summary>
    public bool VerboseInfoLog { get; init; }

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(ColumnFamilies);
        foreach (var name in ColumnFamilies)
        {
            if (string.IsNullOrEmpty(name))
            {
                throw new ArgumentException("Column family names must be non-empty.", nameof(ColumnFamilies));
            }
        }

        ArgumentNullException.ThrowIfNull(BlobColumnFamilies);
        ArgumentOutOfRangeException.ThrowIfNegative(MinBlobBytes, nameof(MinBlobBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(BlobWriteBufferBytes, 1024 * 1024, nameof(BlobWriteBufferBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(GroupCommitMaxBatches, 1, nameof(GroupCommitMaxBatches));
        ArgumentOutOfRangeException.ThrowIfLessThan(GroupCommitMaxBytes, 1, nameof(GroupCommitMaxBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(WriteQueueCapacity, 1, nameof(WriteQueueCapacity));
        ArgumentOutOfRangeException.ThrowIfNegative(BlockCacheBytes, nameof(BlockCacheBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBackgroundJobs, 1, nameof(MaxBackgroundJobs));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxFileOpeningThreads, 1, nameof(MaxFileOpeningThreads));
    }
}
