using System.Security.Cryptography;

namespace Chain.Agent;

/// <summary>The cache cannot take a chunk: it is larger than the free space even after evicting every unpinned chunk.</summary>
public sealed class CacheFullException(string message) : Exception(message);

/// <summary>
/// A directory of verified chunks, each a file named by its hex SHA-256 (written to a temporary file, then renamed;
/// not fsynced: a cache needs no durability, and a file damaged by a crash is caught at the next start). The index is rebuilt at start: every file's
/// digest is checked again and damaged or stray files are deleted. Holds at most <see cref="CapacityBytes"/> bytes:
/// room is made by evicting the least recently used unpinned chunks (by bytes, never by age); a chunk that cannot fit
/// is refused, never stored over the cap. Pinned chunks (being served or assembled) are never evicted. Thread-safe.
/// </summary>
public sealed class ChunkCache
{
    private const string TempSuffix = ".tmp";

    private sealed class Entry(string hex, long size)
    {
        public string Hex { get; } = hex;
        public long Size { get; } = size;
        public int Pins;
        public LinkedListNode<Entry>? Node;
    }

    private readonly object _gate = new();
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _lru = new(); // first: least recently used
    private long _used;      // bytes of the chunks indexed
    private long _reserved;  // bytes of chunks being written

    private ChunkCache(string directory, long capacityBytes)
    {
        Directory = directory;
        CapacityBytes = capacityBytes;
    }

    public string Directory { get; }
    public long CapacityBytes { get; }

    /// <summary>Called (outside the cache's lock) with the hex id of each chunk evicted to make room.</summary>
    public event Action<string>? Evicted;

    public long UsedBytes { get { lock (_gate) return _used; } }
    public int Count { get { lock (_gate) return _entries.Count; } }
    /// <summary>Files deleted at start because their content did not match their name (or was not a chunk).</summary>
    public int DiscardedAtStart { get; private set; }

    /// <summary>Opens (creating) the cache directory and rebuilds the index, verifying every chunk file.</summary>
    public static ChunkCache Open(string directory, long capacityBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacityBytes);
        System.IO.Directory.CreateDirectory(directory);
        var cache = new ChunkCache(directory, capacityBytes);
        var found = new List<(Entry Entry, DateTime Touched)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(directory))
        {
            string name = Path.GetFileName(path);
            if (name.EndsWith(TempSuffix, StringComparison.Ordinal))
            {
                File.Delete(path); // an interrupted write
                continue;
            }
            if (!IsChunkName(name))
                continue; // not ours (the peer id file, ...)
            byte[] digest;
            long size;
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
            {
                size = stream.Length;
                digest = SHA256.HashData(stream);
            }
            if (!Convert.ToHexStringLower(digest).Equals(name, StringComparison.Ordinal))
            {
                File.Delete(path);
                cache.DiscardedAtStart++;
                continue;
            }
            found.Add((new Entry(name, size), File.GetLastWriteTimeUtc(path)));
        }
        foreach (var (entry, _) in found.OrderBy(f => f.Touched))
        {
            entry.Node = cache._lru.AddLast(entry);
            cache._entries.Add(entry.Hex, entry);
            cache._used += entry.Size;
        }
        // A smaller capacity than last time: drop the oldest until the rest fits.
        lock (cache._gate)
            cache.EvictFor(0);
        return cache;
    }

    public static bool IsChunkName(string name) =>
        name.Length == 64 && name.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');

    public bool Contains(string hex)
    {
        lock (_gate)
            return _entries.ContainsKey(hex);
    }

    /// <summary>
    /// Stores a chunk after checking it against <paramref name="sha256"/> (false: the data does not match; nothing is
    /// stored). Already held: only marks it used. <see cref="CacheFullException"/> when it cannot fit.
    /// </summary>
    public Task<bool> PutAsync(ReadOnlyMemory<byte> sha256, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        if (!SHA256.HashData(data.Span).AsSpan().SequenceEqual(sha256.Span))
            return Task.FromResult(false);
        PutVerified(sha256, data, cancellationToken);
        return Task.FromResult(true);
    }

    /// <summary>Stores a chunk the caller has just checked against <paramref name="sha256"/> (a download verifies before it caches).</summary>
    internal void PutVerified(ReadOnlyMemory<byte> sha256, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        string hex = Convert.ToHexStringLower(sha256.Span);
        List<string> evicted;
        lock (_gate)
        {
            if (_entries.TryGetValue(hex, out var held))
            {
                Touch(held);
                return;
            }
            long evictable = _lru.Where(e => e.Pins == 0).Sum(e => e.Size);
            if (_used - evictable + _reserved + data.Length > CapacityBytes)
            {
                // Refused before evicting anything: a chunk that cannot fit must not empty the cache either.
                throw new CacheFullException(
                    $"chunk {hex} ({data.Length} bytes) does not fit: cache holds {_used} of {CapacityBytes} bytes, {_used - evictable} pinned, {_reserved} being written");
            }
            evicted = EvictFor(data.Length);
            _reserved += data.Length;
        }
        try
        {
            string final = PathOf(hex);
            string temp = final + "." + Guid.NewGuid().ToString("N")[..8] + TempSuffix;
            cancellationToken.ThrowIfCancellationRequested();
            // One synchronous write (a page-cache copy; async file I/O would only add a thread hop). No fsync: a cache
            // needs no durability. A crash may leave a renamed file with lost contents, and the next start re-verifies
            // every file and deletes what does not match its name.
            using (var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, FileOptions.None, data.Length))
                RandomAccess.Write(handle, data.Span, 0);
            File.Move(temp, final, overwrite: true);
            lock (_gate)
            {
                var entry = new Entry(hex, data.Length);
                entry.Node = _lru.AddLast(entry);
                _entries[hex] = entry;
                _used += data.Length;
            }
        }
        finally
        {
            lock (_gate)
                _reserved -= data.Length;
        }
        foreach (var old in evicted)
            Evicted?.Invoke(old);
    }

    /// <summary>Pins a held chunk (never evicted until the pin is disposed) and marks it used; null when not held.</summary>
    public IDisposable? Pin(string hex)
    {
        lock (_gate)
        {
            if (!_entries.TryGetValue(hex, out var entry))
                return null;
            entry.Pins++;
            Touch(entry);
            return new PinHandle(this, entry);
        }
    }

    /// <summary>Opens a pinned chunk's file for reading.</summary>
    public FileStream OpenRead(string hex) =>
        new(PathOf(hex), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);

    private sealed class PinHandle(ChunkCache cache, Entry entry) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
                return;
            lock (cache._gate)
                entry.Pins--;
        }
    }

    /// <summary>The file of a chunk (pin it before reading).</summary>
    internal string PathOf(string hex) => Path.Combine(Directory, hex);

    private void Touch(Entry entry)
    {
        if (entry.Node is null)
            return;
        _lru.Remove(entry.Node);
        _lru.AddLast(entry.Node);
    }

    /// <summary>Under the lock: removes least recently used unpinned chunks until <paramref name="bytes"/> more fit (or none is left to evict).</summary>
    private List<string> EvictFor(long bytes)
    {
        var evicted = new List<string>();
        var node = _lru.First;
        while (node is not null && _used + _reserved + bytes > CapacityBytes)
        {
            var next = node.Next;
            var entry = node.Value;
            if (entry.Pins == 0)
            {
                _lru.Remove(node);
                entry.Node = null;
                _entries.Remove(entry.Hex);
                _used -= entry.Size;
                DeleteFile(entry.Hex); // under the lock: a concurrent put of the same chunk cannot lose its new file
                evicted.Add(entry.Hex);
            }
            node = next;
        }
        return evicted;
    }

    private void DeleteFile(string hex)
    {
        try
        {
            File.Delete(PathOf(hex));
        }
        catch (IOException)
        {
            // removed from the index already; a leftover file is re-verified and re-indexed at the next start
        }
    }
}
