using System.Security.Cryptography;

namespace Chain.Gateway.BuildCache;

/// <summary>The body exceeded <see cref="BuildCacheOptions.MaxEntryBytes"/>; the put is abandoned.</summary>
internal sealed class EntryTooLargeException(long limit) : IOException($"the entry is larger than the maximum of {limit} bytes")
{
}

/// <summary>A CAS body's SHA-256 is not its key; the put is abandoned.</summary>
internal sealed class DigestMismatchException(string actualHex) : IOException($"the body's SHA-256 is {actualHex}, not the key")
{
}

/// <summary>
/// Read-only view of a request body that counts bytes (throws <see cref="EntryTooLargeException"/> past the limit) and,
/// for CAS entries, hashes them and throws <see cref="DigestMismatchException"/> at the end when the digest differs.
/// The put reads to the end before it commits, so a throwing body never becomes an object.
/// </summary>
internal sealed class GuardedBody : Stream
{
    private readonly Stream _inner;
    private readonly long _limit;
    private readonly byte[]? _expectedSha256;
    private readonly IncrementalHash? _hash;
    private long _read;
    private bool _ended;

    public GuardedBody(Stream inner, long limit, byte[]? expectedSha256)
    {
        _inner = inner;
        _limit = limit;
        _expectedSha256 = expectedSha256;
        _hash = expectedSha256 is null ? null : IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    }

    public long BytesRead => _read;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _read; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_ended || buffer.Length == 0)
            return 0;
        int n = await _inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        if (n == 0)
        {
            _ended = true;
            CheckDigest();
            return 0;
        }
        _read += n;
        if (_read > _limit)
            throw new EntryTooLargeException(_limit);
        _hash?.AppendData(buffer.Span[..n]);
        return n;
    }

    private void CheckDigest()
    {
        if (_hash is null || _expectedSha256 is null)
            return;
        var actual = _hash.GetHashAndReset();
        if (!CryptographicOperations.FixedTimeEquals(actual, _expectedSha256))
            throw new DigestMismatchException(Convert.ToHexStringLower(actual));
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _hash?.Dispose();
        base.Dispose(disposing);
    }
}
