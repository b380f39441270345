namespace Chain.Storage;

/// <summary>
/// An ordered key-value engine with column families. Keys and values are byte strings, ordered byte-wise
/// (unsigned lexicographic). Two implementations share one test suite: <c>RocksDbEngine</c> (durable) and
/// <c>MemoryEngine</c> (fast tests, simulation).
/// </summary>
public interface IKvEngine : IDisposable
{
    /// <summary>Column families this engine was opened with ("default" is always present).</summary>
    IReadOnlyList<string> ColumnFamilies { get; }

    /// <summary>Point read; null when absent. Reads see every write whose WriteAsync completed.</summary>
    byte[]? Get(string columnFamily, ReadOnlySpan<byte> key, IKvSnapshot? snapshot = null);

    /// <summary>Forward/backward iterator over [lowerInclusive, upperExclusive); null bounds are open.</summary>
    IKvIterator Iterate(string columnFamily, byte[]? lowerInclusive = null, byte[]? upperExclusive = null, IKvSnapshot? snapshot = null);

    /// <summary>A consistent point-in-time view; dispose it to release it.</summary>
    IKvSnapshot Snapshot();

    /// <summary>
    /// Applies the batch atomically. When the task completes successfully the batch is durable (synced
    /// write-ahead log) and visible. Batches are applied in the order WriteAsync was called. Concurrent
    /// callers share fsyncs (group commit). A failed write (disk full, I/O error) throws StorageException
    /// and leaves none of the batch visible.
    /// </summary>
    ValueTask WriteAsync(KvBatch batch, CancellationToken cancellationToken = default);

    /// <summary>Writes a consistent copy of the whole engine to <paramref name="directory"/> (which must not exist).</summary>
    void Checkpoint(string directory);

    /// <summary>Counters for tests and metrics.</summary>
    KvEngineStats Stats { get; }
}

public interface IKvSnapshot : IDisposable
{
}

/// <summary>An iterator positioned on an entry when <see cref="Valid"/>. Spans are valid until the next move.</summary>
public interface IKvIterator : IDisposable
{
    bool Valid { get; }
    ReadOnlySpan<byte> Key { get; }
    ReadOnlySpan<byte> Value { get; }
    void SeekToFirst();
    void SeekToLast();
    /// <summary>Positions at the first key &gt;= target.</summary>
    void Seek(ReadOnlySpan<byte> target);
    /// <summary>Positions at the last key &lt;= target.</summary>
    void SeekForPrev(ReadOnlySpan<byte> target);
    void Next();
    void Prev();
}

public sealed record KvEngineStats(long BatchesWritten, long SyncedWrites, long BytesWritten);

public enum KvOpKind : byte { Put, Delete, DeleteRange }

public readonly record struct KvOp(KvOpKind Kind, string ColumnFamily, byte[] Key, byte[]? Value);

/// <summary>An engine-neutral atomic write batch. For DeleteRange, Key is the inclusive start, Value the exclusive end.</summary>
public sealed class KvBatch
{
    private readonly List<KvOp> _ops = new();

    public IReadOnlyList<KvOp> Ops => _ops;
    public int Count => _ops.Count;
    public long ByteSize { get; private set; }

    public KvBatch Put(string columnFamily, byte[] key, byte[] value)
    {
        _ops.Add(new KvOp(KvOpKind.Put, columnFamily, key, value));
        ByteSize += key.Length + value.Length;
        return this;
    }

    public KvBatch Delete(string columnFamily, byte[] key)
    {
        _ops.Add(new KvOp(KvOpKind.Delete, columnFamily, key, null));
        ByteSize += key.Length;
        return this;
    }

    public KvBatch DeleteRange(string columnFamily, byte[] startInclusive, byte[] endExclusive)
    {
        _ops.Add(new KvOp(KvOpKind.DeleteRange, columnFamily, startInclusive, endExclusive));
        ByteSize += startInclusive.Length + endExclusive.Length;
        return this;
    }
}

/// <summary>An operating error of the engine (I/O error, disk full, corruption): handled, not asserted.</summary>
public sealed class StorageException : IOException
{
    public StorageException(string message, Exception? inner = null) : base(message, inner) { }
    public bool IsNoSpace => Message.Contains("No space", StringComparison.OrdinalIgnoreCase);
}
