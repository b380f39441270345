using System.Security.Cryptography;

namespace Chain.Harness;

/// <summary>
/// A write-only stream that keeps only the SHA-256 and the length of what is written to it. Seekable to the start
/// only: a get retried after a partial attempt rewinds its destination, which starts the digest over.
/// </summary>
public sealed class DigestStream : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _length;

    public override bool CanRead => false;
    public override bool CanSeek => true;
    public override bool CanWrite => true;
    public override long Length => _length;

    public override long Position
    {
        get => _length;
        set => SetLength(value);
    }

    public string DigestHex() => Convert.ToHexStringLower(_hash.GetCurrentHash());

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        _hash.AppendData(buffer);
        _length += buffer.Length;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin)
    {
        if (origin != SeekOrigin.Begin)
            throw new NotSupportedException();
        SetLength(offset);
        return offset;
    }

    /// <summary>Only to the current length (nothing to do) or to 0 (start over).</summary>
    public override void SetLength(long value)
    {
        if (value == _length)
            return;
        if (value != 0)
            throw new NotSupportedException("a digest stream can only start over");
        _hash.GetHashAndReset();
        _length = 0;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _hash.Dispose();
        base.Dispose(disposing);
    }
}
