using System.Security.Cryptography;
using System.Text;

namespace Chain.Jepsen;

/// <summary>Generated content of the large-object workload: unique per value, reproducible from (seed, value).</summary>
public static class LargeContent
{
    public static byte[] Generate(long seed, string value, int size)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        var content = new byte[size];
        byte[] tag = Encoding.UTF8.GetBytes($"{seed}:{value}:");
        ulong state = BitConverter.ToUInt64(SHA256.HashData(tag), 0) | 1;
        Span<byte> span = content;
        int i = 0;
        for (; i + 8 <= span.Length; i += 8)
        {
            // xorshift64*: cheap, and different for every (seed, value).
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            BitConverter.TryWriteBytes(span[i..], state * 0x2545F4914F6CDD1DUL);
        }
        for (; i < span.Length; i++)
            span[i] = (byte)i;
        tag.AsSpan(0, Math.Min(tag.Length, size)).CopyTo(span);
        return content;
    }
}

/// <summary>A write-only stream that keeps only the SHA-256 and the length of what is written to it.</summary>
public sealed class DigestStream : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _length;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => _length;

    public override long Position
    {
        get => _length;
        set => throw new NotSupportedException();
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

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _hash.Dispose();
        base.Dispose(disposing);
    }
}
