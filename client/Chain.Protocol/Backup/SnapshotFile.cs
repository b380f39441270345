using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Chain.Protocol.Backup;

/// <summary>What a snapshot file holds: a chain's object and dedup records, or its chunk records and chunks.</summary>
public enum SnapshotKind : byte
{
    Records = 1,
    Chunks = 2,
}

/// <summary>The header of a snapshot file: which chain, which part, the applied sequence number, the source node.</summary>
public sealed record SnapshotHeader(uint ChainId, SnapshotKind Kind, ulong AppliedSeq, string SourceNode);

/// <summary>One record: the column family's name, the key (with the chain prefix) and the value.</summary>
public readonly record struct SnapshotRecord(string ColumnFamily, byte[] Key, byte[] Value);

/// <summary>A snapshot file that is not what it should be (garbage, truncated, wrong digest); names the file.</summary>
public sealed class SnapshotFormatException(string message) : Exception(message);

/// <summary>
/// The backup's per-chain file format, length-prefixed and self-checking:
/// <code>
/// header:  "CHNSNAP1" | version u16 | kind u8 | chain u32 | applied seq u64 | node id length u16 | node id (UTF-8)
/// record:  0x01 | column family code u8 | key length u32 | value length u32 | key | value
/// trailer: 0xFF | record count u64 | SHA-256 of every byte before this digest
/// </code>
/// Integers are big-endian. Nothing may follow the trailer. The backup's manifest also records each file's size and
/// SHA-256, checked before a restore touches anything.
/// </summary>
public static class SnapshotFile
{
    public const ushort FormatVersion = 1;
    public const int KeyBytesMax = 4096;
    public const int ValueBytesMax = Limits.MessageBytesMax;
    private const int NodeIdBytesMax = 1024;
    internal const byte RecordTag = 0x01;
    internal const byte TrailerTag = 0xFF;
    internal static ReadOnlySpan<byte> Magic => "CHNSNAP1"u8;

    /// <summary>Column families a snapshot may carry, by their one-byte codes (index + 1).</summary>
    public static readonly IReadOnlyList<string> ColumnFamilies = new[] { "objects", "dedup", "chunkinfo", "chunks" };

    internal static byte Code(string columnFamily)
    {
        for (int i = 0; i < ColumnFamilies.Count; i++)
        {
            if (ColumnFamilies[i] == columnFamily)
                return (byte)(i + 1);
        }
        throw new ArgumentException($"column family '{columnFamily}' cannot go into a snapshot file", nameof(columnFamily));
    }

    internal static byte[] EncodeHeader(SnapshotHeader header)
    {
        byte[] node = Encoding.UTF8.GetBytes(header.SourceNode);
        if (node.Length > NodeIdBytesMax)
            throw new ArgumentException("source node id is too long", nameof(header));
        var b = new byte[8 + 2 + 1 + 4 + 8 + 2 + node.Length];
        Magic.CopyTo(b);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(8), FormatVersion);
        b[10] = (byte)header.Kind;
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(11), header.ChainId);
        BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(15), header.AppliedSeq);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(23), (ushort)node.Length);
        node.CopyTo(b.AsSpan(25));
        return b;
    }

    /// <summary>SHA-256 and size of a whole file, read in constant memory.</summary>
    public static (long Bytes, byte[] Sha256) HashFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        byte[] digest = SHA256.HashData(stream);
        return (stream.Length, digest);
    }

    /// <summary>Makes a rename or a new file in <paramref name="directory"/> durable (fsync of the directory; Linux).</summary>
    public static void SyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux())
            return;
        int fd = open(directory, 0 /* O_RDONLY */);
        if (fd < 0)
            throw new IOException($"cannot open directory {directory} to sync it: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            if (fsync(fd) != 0)
                throw new IOException($"fsync of directory {directory} failed: errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            _ = close(fd);
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int fsync(int fd);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);
}

/// <summary>
/// Writes one snapshot file: to <c>path.tmp</c>, then on <see cref="CompleteAsync"/> the trailer, fsync, rename to the
/// final name and fsync of the directory. Holds one record at a time. Disposing without completing deletes the
/// temporary file.
/// </summary>
public sealed class SnapshotFileWriter : IAsyncDisposable
{
    private readonly string _path;
    private readonly string _temp;
    private readonly FileStream _file;
    private readonly IncrementalHash _content = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly IncrementalHash _whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly byte[] _recordHeader = new byte[10];
    private long _records;
    private long _bytes;
    private bool _completed;

    public SnapshotFileWriter(string path, SnapshotHeader header)
    {
        ArgumentNullException.ThrowIfNull(header);
        _path = Path.GetFullPath(path);
        _temp = _path + ".tmp";
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        _file = new FileStream(_temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
        Header = header;
        Append(SnapshotFile.EncodeHeader(header));
    }

    public SnapshotHeader Header { get; }
    public long Records => _records;

    /// <summary>Bytes written so far (the file's size once completed).</summary>
    public long Bytes => _bytes;

    private void Append(ReadOnlySpan<byte> data)
    {
        _file.Write(data);
        _content.AppendData(data);
        _whole.AppendData(data);
        _bytes += data.Length;
    }

    public async ValueTask AddAsync(string columnFamily, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default)
    {
        if (_completed)
            throw new InvalidOperationException("the snapshot file is complete");
        if (key.Length is 0 or > SnapshotFile.KeyBytesMax)
            throw new ArgumentException($"a key must be 1..{SnapshotFile.KeyBytesMax} bytes", nameof(key));
        if (value.Length > SnapshotFile.ValueBytesMax)
            throw new ArgumentException($"a value must be at most {SnapshotFile.ValueBytesMax} bytes", nameof(value));
        _recordHeader[0] = SnapshotFile.RecordTag;
        _recordHeader[1] = SnapshotFile.Code(columnFamily);
        BinaryPrimitives.WriteUInt32BigEndian(_recordHeader.AsSpan(2), (uint)key.Length);
        BinaryPrimitives.WriteUInt32BigEndian(_recordHeader.AsSpan(6), (uint)value.Length);
        Append(_recordHeader);
        Append(key.Span);
        _content.AppendData(value.Span);
        _whole.AppendData(value.Span);
        await _file.WriteAsync(value, cancellationToken).ConfigureAwait(false);
        _bytes += value.Length;
        _records++;
    }

    /// <summary>Writes the trailer and makes the file durable under its final name; returns its size and SHA-256.</summary>
    public async Task<(long Bytes, byte[] Sha256)> CompleteAsync(CancellationToken cancellationToken = default)
    {
        var trailer = new byte[9];
        trailer[0] = SnapshotFile.TrailerTag;
        BinaryPrimitives.WriteUInt64BigEndian(trailer.AsSpan(1), (ulong)_records);
        Append(trailer);
        byte[] digest = _content.GetHashAndReset();
        _file.Write(digest);
        _whole.AppendData(digest);
        _bytes += digest.Length;
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
        _file.Flush(flushToDisk: true);
        await _file.DisposeAsync().ConfigureAwait(false);
        File.Move(_temp, _path, overwrite: true);
        SnapshotFile.SyncDirectory(Path.GetDirectoryName(_path)!);
        _completed = true;
        return (_bytes, _whole.GetHashAndReset());
    }

    public async ValueTask DisposeAsync()
    {
        if (!_completed)
        {
            await _file.DisposeAsync().ConfigureAwait(false);
            try
            {
                File.Delete(_temp);
            }
            catch (IOException)
            {
            }
        }
        _content.Dispose();
        _whole.Dispose();
    }
}

/// <summary>
/// Reads a snapshot file record by record, checking its structure as it goes and its trailer (count and SHA-256) at
/// the end: <see cref="Read"/> returns false only after a valid trailer; anything else throws
/// <see cref="SnapshotFormatException"/> naming the file. Records read before the end are not yet verified.
/// </summary>
public sealed class SnapshotFileReader : IDisposable
{
    private readonly string _path;
    private readonly Stream _stream;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _records;
    private bool _done;

    public SnapshotFileReader(string path)
    {
        _path = path;
        _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        byte[] fixedPart = ReadExactly(25, "header");
        if (!fixedPart.AsSpan(0, 8).SequenceEqual(SnapshotFile.Magic))
            throw Bad("not a Chain snapshot file (bad magic)");
        ushort version = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(8));
        if (version != SnapshotFile.FormatVersion)
            throw Bad($"format version {version} is not supported (this build reads {SnapshotFile.FormatVersion})");
        var kind = (SnapshotKind)fixedPart[10];
        if (kind is not (SnapshotKind.Records or SnapshotKind.Chunks))
            throw Bad($"unknown snapshot kind {fixedPart[10]}");
        uint chain = BinaryPrimitives.ReadUInt32BigEndian(fixedPart.AsSpan(11));
        ulong applied = BinaryPrimitives.ReadUInt64BigEndian(fixedPart.AsSpan(15));
        int nodeLength = BinaryPrimitives.ReadUInt16BigEndian(fixedPart.AsSpan(23));
        if (nodeLength > 1024)
            throw Bad("source node id is too long");
        string node = Encoding.UTF8.GetString(ReadExactly(nodeLength, "header"));
        Header = new SnapshotHeader(chain, kind, applied, node);
    }

    public SnapshotHeader Header { get; }

    /// <summary>Records read so far.</summary>
    public long Records => _records;

    /// <summary>The next record; false at a valid end of file.</summary>
    public bool Read(out SnapshotRecord record)
    {
        record = default;
        if (_done)
            return false;
        byte tag = ReadExactly(1, "record")[0];
        if (tag == SnapshotFile.TrailerTag)
        {
            byte[] count = ReadExactly(8, "trailer");
            byte[] expected = _hash.GetHashAndReset();
            var digest = new byte[32];
            if (_stream.ReadAtLeast(digest, 32, throwOnEndOfStream: false) != 32)
                throw Bad("truncated (in the trailer)");
            if (BinaryPrimitives.ReadUInt64BigEndian(count) != (ulong)_records)
                throw Bad($"trailer counts {BinaryPrimitives.ReadUInt64BigEndian(count)} records, the file holds {_records}");
            if (!CryptographicOperations.FixedTimeEquals(expected, digest))
                throw Bad("SHA-256 in the trailer does not match the contents (corrupt)");
            if (_stream.ReadByte() != -1)
                throw Bad("bytes after the trailer");
            _done = true;
            return false;
        }
        if (tag != SnapshotFile.RecordTag)
            throw Bad($"unexpected byte 0x{tag:x2} where a record should start (corrupt)");
        byte[] head = ReadExactly(9, "record header");
        int code = head[0];
        if (code < 1 || code > SnapshotFile.ColumnFamilies.Count)
            throw Bad($"unknown column family code {code} (corrupt)");
        uint keyLength = BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(1));
        uint valueLength = BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(5));
        if (keyLength is 0 or > SnapshotFile.KeyBytesMax)
            throw Bad($"key length {keyLength} out of range (corrupt)");
        if (valueLength > SnapshotFile.ValueBytesMax)
            throw Bad($"value length {valueLength} out of range (corrupt)");
        byte[] key = ReadExactly((int)keyLength, "record key");
        byte[] value = ReadExactly((int)valueLength, "record value");
        _records++;
        record = new SnapshotRecord(SnapshotFile.ColumnFamilies[code - 1], key, value);
        return true;
    }

    /// <summary>Reads to the end, checking everything; returns the header and the record count.</summary>
    public static (SnapshotHeader Header, long Records) Verify(string path)
    {
        using var reader = new SnapshotFileReader(path);
        while (reader.Read(out _))
        {
        }
        return (reader.Header, reader.Records);
    }

    private byte[] ReadExactly(int count, string what)
    {
        var buffer = new byte[count];
        if (count > 0 && _stream.ReadAtLeast(buffer, count, throwOnEndOfStream: false) != count)
            throw Bad($"truncated (in a {what})");
        _hash.AppendData(buffer);
        return buffer;
    }

    private SnapshotFormatException Bad(string problem) => new($"snapshot file {_path}: {problem}");

    public void Dispose()
    {
        _stream.Dispose();
        _hash.Dispose();
    }
}
