using System.Buffers.Binary;

namespace Chain.ScaleBench;

/// <summary>
/// A read-only, seekable stream of <see cref="Length"/> pseudo-random bytes that exist only as a function of the
/// position (SplitMix64 of seed and 8-byte word index): no two chunks repeat (chunks are content-addressed and would
/// be stored once), nothing is held in memory, and a retry that seeks back reads the same bytes again.
/// </summary>
public sealed class PatternStream : Stream
{
    private readonly ulong _seed;
    private long _position;

    public PatternStream(long length, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        _seed = seed;
    }

    public override long Length { get; }

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;

    public override long Position
    {
        get => _position;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _position = value;
        }
    }

    /// <summary>Fills <paramref name="destination"/> with the bytes at <paramref name="offset"/> of the pattern of <paramref name="seed"/>.</summary>
    public static void Fill(ulong seed, long offset, Span<byte> destination)
    {
        Span<byte> word = stackalloc byte[8];
        int done = 0;
        long position = offset;
        while (done < destination.Length)
        {
            long index = position >> 3;
            int within = (int)(position & 7);
            if (within == 0 && destination.Length - done >= 8)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(destination[done..], Word(seed, index));
                done += 8;
                position += 8;
                continue;
            }
            BinaryPrimitives.WriteUInt64LittleEndian(word, Word(seed, index));
            int take = Math.Min(8 - within, destination.Length - done);
            word.Slice(within, take).CopyTo(destination[done..]);
            done += take;
            position += take;
        }
    }

    private static ulong Word(ulong seed, long index)
    {
        ulong z = seed + (ulong)(index + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        long left = Length - _position;
        if (left <= 0)
            return 0;
        int take = (int)Math.Min(buffer.Length, left);
        Fill(_seed, _position, buffer[..take]);
        _position += take;
        return take;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Read(buffer.Span));
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override long Seek(long offset, SeekOrigin origin)
    {
        long target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            SeekOrigin.End => Length + offset,
            _ => throw new ArgumentOutOfRangeException(nameof(origin)),
        };
        Position = target;
        return target;
    }

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
