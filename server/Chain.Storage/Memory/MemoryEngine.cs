using System.Collections.Immutable;
using System.Text;

namespace Chain.Storage.Memory;

/// <summary>
/// In-memory <see cref="IKvEngine"/> with the same semantics as the RocksDB engine, for fast tests and simulation.
/// Each column family is an immutable list of entries sorted byte-wise by key; a write builds new lists under a lock
/// and publishes them atomically, so readers, snapshots and iterators work lock-free on captured versions.
/// Keys and values are copied on the way in and out, so callers may reuse their arrays.
/// </summary>
public sealed class MemoryEngine : IKvEngine
{
    internal const string CheckpointFileName = "memory-engine.checkpoint";
    private static readonly byte[] FileMagic = "CHAINMEM"u8.ToArray();
    private static readonly byte[] FileTrailer = "END."u8.ToArray();
    private const int FileVersion = 1;

    private readonly object _writeLock = new();
    private readonly string[] _columnFamilyNames;
    private volatile Tables _current;
    private int _disposed;
    private long _batchesWritten;
    private long _syncedWrites;
    private long _bytesWritten;

    /// <summary>Creates an empty engine with "default" plus <paramref name="columnFamilies"/>.</summary>
    public MemoryEngine(IEnumerable<string> columnFamilies)
        : this(EmptyTables(columnFamilies))
    {
    }

    /// <summary>Creates an empty engine with only the "default" column family.</summary>
    public MemoryEngine()
        : this(Array.Empty<string>())
    {
    }

    private MemoryEngine(Tables tables)
    {
        _current = tables;
        _columnFamilyNames = tables.Keys.ToArray();
    }

    public IReadOnlyList<string> ColumnFamilies => _columnFamilyNames;

    /// <summary>Counters; still readable after dispose. Every applied batch is its own group (SyncedWrites == BatchesWritten).</summary>
    public KvEngineStats Stats => new(
        Interlocked.Read(ref _batchesWritten),
        Interlocked.Read(ref _syncedWrites),
        Interlocked.Read(ref _bytesWritten));

    public byte[]? Get(string columnFamily, ReadOnlySpan<byte> key, IKvSnapshot? snapshot = null)
    {
        var table = ResolveTable(columnFamily, snapshot);
        int index = LowerBound(table, key);
        return index < table.Count && table[index].Key.AsSpan().SequenceEqual(key) ? table[index].Value.ToArray() : null;
    }

    public IKvIterator Iterate(string columnFamily, byte[]? lowerInclusive = null, byte[]? upperExclusive = null, IKvSnapshot? snapshot = null)
    {
        var table = ResolveTable(columnFamily, snapshot);
        return new MemoryIterator(table, lowerInclusive, upperExclusive);
    }

    public IKvSnapshot Snapshot()
    {
        ThrowIfDisposed();
        return new MemorySnapshot(this, _current);
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

        var ops = batch.Ops.ToArray();
        foreach (var op in ops)
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

            ResolveName(op.ColumnFamily);
        }

        lock (_writeLock)
        {
            ThrowIfDisposed();
            var builders = new Dictionary<string, ImmutableList<KeyValuePair<byte[], byte[]>>.Builder>(StringComparer.Ordinal);
            foreach (var op in ops)
            {
                if (!builders.TryGetValue(op.ColumnFamily, out var table))
                {
                    table = _current[op.ColumnFamily].ToBuilder();
                    builders.Add(op.ColumnFamily, table);
                }

                Apply(table, op);
            }

            var next = _current;
            foreach (var (name, table) in builders)
            {
                next = next.SetItem(name, table.ToImmutable());
            }

            _current = next; // atomic publication of the whole batch
            Interlocked.Increment(ref _batchesWritten);
            Interlocked.Increment(ref _syncedWrites);
            Interlocked.Add(ref _bytesWritten, batch.ByteSize);
        }

        return ValueTask.CompletedTask;
    }

    private static void Apply(ImmutableList<KeyValuePair<byte[], byte[]>>.Builder table, in KvOp op)
    {
        switch (op.Kind)
        {
            case KvOpKind.Put:
            {
                var entry = new KeyValuePair<byte[], byte[]>(op.Key.ToArray(), op.Value!.ToArray());
                int index = table.BinarySearch(entry, EntryComparer.Instance);
                if (index >= 0)
                {
                    table[index] = entry;
                }
                else
                {
                    table.Insert(~index, entry);
                }

                break;
            }

            case KvOpKind.Delete:
            {
                int index = table.BinarySearch(Probe(op.Key), EntryComparer.Instance);
                if (index >= 0)
                {
                    table.RemoveAt(index);
                }

                break;
            }

            case KvOpKind.DeleteRange:
            {
                int start = LowerBound(table, op.Key);
                int end = LowerBound(table, op.Value!);
                if (end > start)
                {
                    table.RemoveRange(start, end - start);
                }

                break;
            }
        }
    }

    public void Checkpoint(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ThrowIfDisposed();
        var tables = _current;
        string fullPath = Path.GetFullPath(directory);
        if (Directory.Exists(fullPath) || File.Exists(fullPath))
        {
            throw new IOException($"Checkpoint directory '{fullPath}' already exists.");
        }

        Directory.CreateDirectory(fullPath);
        string file = Path.Combine(fullPath, CheckpointFileName);
        string temp = file + ".tmp";
        using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            {
                writer.Write(FileMagic);
                writer.Write(FileVersion);
                writer.Write(_columnFamilyNames.Length);
                foreach (var name in _columnFamilyNames)
                {
                    var table = tables[name];
                    writer.Write(name);
                    writer.Write(table.Count);
                    foreach (var entry in table)
                    {
                        writer.Write(entry.Key.Length);
                        writer.Write(entry.Key);
                        writer.Write(entry.Value.Length);
                        writer.Write(entry.Value);
                    }
                }

                writer.Write(FileTrailer);
            }

            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, file);
    }

    /// <summary>Loads an engine from a directory written by <see cref="Checkpoint"/>.</summary>
    /// <exception cref="StorageException">The checkpoint is missing, truncated or corrupt.</exception>
    public static MemoryEngine OpenCheckpoint(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string file = Path.Combine(Path.GetFullPath(directory), CheckpointFileName);
        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read);
            using var reader = new BinaryReader(stream, Encoding.UTF8);
            if (!reader.ReadBytes(FileMagic.Length).AsSpan().SequenceEqual(FileMagic) || reader.ReadInt32() != FileVersion)
            {
                throw new StorageException($"'{file}' is not a memory engine checkpoint.");
            }

            int columnFamilyCount = reader.ReadInt32();
            if (columnFamilyCount < 1)
            {
                throw new StorageException($"Corrupt memory engine checkpoint '{file}'.");
            }

            var tables = ImmutableDictionary.Create<string, ImmutableList<KeyValuePair<byte[], byte[]>>>(StringComparer.Ordinal);
            var order = new List<string>();
            for (int i = 0; i < columnFamilyCount; i++)
            {
                string name = reader.ReadString();
                int count = reader.ReadInt32();
                if (count < 0 || tables.ContainsKey(name))
                {
                    throw new StorageException($"Corrupt memory engine checkpoint '{file}'.");
                }

                var table = ImmutableList.CreateBuilder<KeyValuePair<byte[], byte[]>>();
                for (int j = 0; j < count; j++)
                {
                    var key = ReadBlob(reader, file);
                    var value = ReadBlob(reader, file);
                    if (table.Count > 0 && EntryComparer.Instance.Compare(table[^1], Probe(key)) >= 0)
                    {
                        throw new StorageException($"Corrupt memory engine checkpoint '{file}' (keys out of order).");
                    }

                    table.Add(new KeyValuePair<byte[], byte[]>(key, value));
                }

                tables = tables.Add(name, table.ToImmutable());
                order.Add(name);
            }

            if (!reader.ReadBytes(FileTrailer.Length).AsSpan().SequenceEqual(FileTrailer) || stream.Position != stream.Length)
            {
                throw new StorageException($"Corrupt memory engine checkpoint '{file}' (bad trailer).");
            }

            if (!tables.ContainsKey("default"))
            {
                throw new StorageException($"Corrupt memory engine checkpoint '{file}' (no default column family).");
            }

            return new MemoryEngine(new Tables(tables, order));
        }
        catch (Exception ex) when (ex is (IOException and not StorageException) or UnauthorizedAccessException or FormatException)
        {
            throw new StorageException($"Cannot read memory engine checkpoint '{file}': {ex.Message}", ex);
        }
    }

    private static byte[] ReadBlob(BinaryReader reader, string file)
    {
        int length = reader.ReadInt32();
        if (length < 0 || length > reader.BaseStream.Length - reader.BaseStream.Position)
        {
            throw new StorageException($"Corrupt memory engine checkpoint '{file}'.");
        }

        var bytes = reader.ReadBytes(length);
        if (bytes.Length != length)
        {
            throw new StorageException($"Corrupt memory engine checkpoint '{file}' (truncated).");
        }

        return bytes;
    }

    public void Dispose()
    {
        lock (_writeLock)
        {
            _disposed = 1;
        }
    }

    // ---------------------------------------------------------------- helpers

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private static KeyValuePair<byte[], byte[]> Probe(byte[] key) => new(key, Array.Empty<byte>());

    /// <summary>Index of the first entry whose key is &gt;= <paramref name="key"/>.</summary>
    internal static int LowerBound(IReadOnlyList<KeyValuePair<byte[], byte[]>> table, ReadOnlySpan<byte> key)
    {
        int low = 0;
        int high = table.Count;
        while (low < high)
        {
            int mid = low + ((high - low) >> 1);
            if (table[mid].Key.AsSpan().SequenceCompareTo(key) < 0)
            {
                low = mid + 1;
            }
            else
            {
                high = mid;
            }
        }

        return low;
    }

    /// <summary>Index of the first entry whose key is &gt; <paramref name="key"/>.</summary>
    internal static int UpperBound(IReadOnlyList<KeyValuePair<byte[], byte[]>> table, ReadOnlySpan<byte> key)
    {
        int low = 0;
        int high = table.Count;
        while (low < high)
        {
            int mid = low + ((high - low) >> 1);
            if (table[mid].Key.AsSpan().SequenceCompareTo(key) <= 0)
            {
                low = mid + 1;
            }
            else
            {
                high = mid;
            }
        }

        return low;
    }

    private void ResolveName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!_current.ContainsKey(name))
        {
            throw new ArgumentException($"Unknown column family '{name}'.", nameof(name));
        }
    }

    private ImmutableList<KeyValuePair<byte[], byte[]>> ResolveTable(string columnFamily, IKvSnapshot? snapshot)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(columnFamily);
        Tables tables;
        if (snapshot is null)
        {
            tables = _current;
        }
        else if (snapshot is MemorySnapshot own && ReferenceEquals(own.Owner, this))
        {
            tables = own.Tables;
        }
        else
        {
            throw new ArgumentException("The snapshot was not created by this engine.", nameof(snapshot));
        }

        if (!tables.TryGetValue(columnFamily, out var table))
        {
            throw new ArgumentException($"Unknown column family '{columnFamily}'.", nameof(columnFamily));
        }

        return table;
    }

    private static Tables EmptyTables(IEnumerable<string> columnFamilies)
    {
        ArgumentNullException.ThrowIfNull(columnFamilies);
        var order = new List<string> { "default" };
        foreach (var name in columnFamilies)
        {
            if (string.IsNullOrEmpty(name))
            {
                throw new ArgumentException("Column family names must be non-empty.", nameof(columnFamilies));
            }

            if (!order.Contains(name, StringComparer.Ordinal))
            {
                order.Add(name);
            }
        }

        var tables = ImmutableDictionary.Create<string, ImmutableList<KeyValuePair<byte[], byte[]>>>(StringComparer.Ordinal);
        foreach (var name in order)
        {
            tables = tables.Add(name, ImmutableList<KeyValuePair<byte[], byte[]>>.Empty);
        }

        return new Tables(tables, order);
    }

    /// <summary>An immutable version of all column families (in creation order).</summary>
    private sealed class Tables(ImmutableDictionary<string, ImmutableList<KeyValuePair<byte[], byte[]>>> map, IReadOnlyList<string> order)
    {
        public IReadOnlyList<string> Keys => order;

        public ImmutableList<KeyValuePair<byte[], byte[]>> this[string name] => map[name];

        public bool ContainsKey(string name) => map.ContainsKey(name);

        public bool TryGetValue(string name, out ImmutableList<KeyValuePair<byte[], byte[]>> table) => map.TryGetValue(name, out table!);

        public Tables SetItem(string name, ImmutableList<KeyValuePair<byte[], byte[]>> table) => new(map.SetItem(name, table), order);
    }

    private sealed class EntryComparer : IComparer<KeyValuePair<byte[], byte[]>>
    {
        public static readonly EntryComparer Instance = new();

        public int Compare(KeyValuePair<byte[], byte[]> x, KeyValuePair<byte[], byte[]> y) => x.Key.AsSpan().SequenceCompareTo(y.Key);
    }

    private sealed class MemorySnapshot(MemoryEngine owner, Tables tables) : IKvSnapshot
    {
        private int _disposed;

        public MemoryEngine Owner => owner;

        public Tables Tables
        {
            get
            {
                ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
                return tables;
            }
        }

        public void Dispose() => Volatile.Write(ref _disposed, 1);
    }

    /// <summary>Iterator over a captured, immutable table; entries in [lowerIndex, upperIndex) are inside the bounds.</summary>
    private sealed class MemoryIterator : IKvIterator
    {
        private readonly ImmutableList<KeyValuePair<byte[], byte[]>> _table;
        private readonly int _lowerIndex;
        private readonly int _upperIndex;
        private int _position = -1;
        private KeyValuePair<byte[], byte[]> _current;
        private bool _disposed;

        public MemoryIterator(ImmutableList<KeyValuePair<byte[], byte[]>> table, byte[]? lowerInclusive, byte[]? upperExclusive)
        {
            _table = table;
            _lowerIndex = lowerInclusive is null ? 0 : LowerBound(table, lowerInclusive);
            _upperIndex = upperExclusive is null ? table.Count : Math.Max(_lowerIndex, LowerBound(table, upperExclusive));
        }

        public bool Valid
        {
            get
            {
                ThrowIfDisposed();
                return IsValid;
            }
        }

        private bool IsValid => _position >= _lowerIndex && _position < _upperIndex;

        public ReadOnlySpan<byte> Key
        {
            get
            {
                RequireValid();
                return _current.Key;
            }
        }

        public ReadOnlySpan<byte> Value
        {
            get
            {
                RequireValid();
                return _current.Value;
            }
        }

        public void SeekToFirst()
        {
            ThrowIfDisposed();
            MoveTo(_lowerIndex);
        }

        public void SeekToLast()
        {
            ThrowIfDisposed();
            MoveTo(_upperIndex - 1);
        }

        public void Seek(ReadOnlySpan<byte> target)
        {
            ThrowIfDisposed();
            MoveTo(Math.Max(_lowerIndex, LowerBound(_table, target)));
        }

        public void SeekForPrev(ReadOnlySpan<byte> target)
        {
            ThrowIfDisposed();
            MoveTo(Math.Min(_upperIndex, UpperBound(_table, target)) - 1);
        }

        public void Next()
        {
            RequireValid();
            MoveTo(_position + 1);
        }

        public void Prev()
        {
            RequireValid();
            MoveTo(_position - 1);
        }

        public void Dispose() => _disposed = true;

        private void MoveTo(int position)
        {
            _position = position;
            _current = IsValid ? _table[position] : default;
        }

        private void RequireValid()
        {
            ThrowIfDisposed();
            if (!IsValid)
            {
                throw new InvalidOperationException("The iterator is not positioned on an entry.");
            }
        }

        private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
    }
}
