using Chain.Protocol;

namespace Chain.Client.Internal;

/// <summary>
/// Cuts an object's content into chunks of exactly <see cref="ChunkBytes"/> bytes (the last one may be shorter)
/// and knows whether it can start over for a retry.
/// </summary>
internal abstract class ChunkSource
{
    protected ChunkSource(int chunkBytes)
    {
        ChunkBytes = chunkBytes;
    }

    /// <summary>Size of the chunks read from now on (a put switches to frames once it knows the object is inline).</summary>
    public int ChunkBytes
    {
        get => _chunkBytes;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            _chunkBytes = value;
        }
    }

    private int _chunkBytes;

    /// <summary>Bytes from the start to the end, when known.</summary>
    public abstract long? Length { get; }

    /// <summary>True once anything was read since the start (or the last rewind).</summary>
    public bool Consumed { get; protected set; }

    /// <summary>Goes back to the start; false when that is impossible.</summary>
    public abstract bool TryRewind();

    /// <summary>The next chunk; empty at the end. The memory stays valid after the next call (it is not reused).</summary>
    public abstract ValueTask<ReadOnlyMemory<byte>> ReadChunkAsync(CancellationToken cancellationToken);

    public static ChunkSource For(Stream stream, int chunkBytes = Limits.ChunkBytes) => new StreamChunkSource(stream, chunkBytes);

    public static ChunkSource For(ReadOnlyMemory<byte> content, int chunkBytes = Limits.ChunkBytes) => new MemoryChunkSource(content, chunkBytes);
}

internal sealed class StreamChunkSource : ChunkSource
{
    private readonly Stream _stream;
    private readonly long _start;
    private bool _ended;

    public StreamChunkSource(Stream stream, int chunkBytes) : base(chunkBytes)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead)
            throw new ArgumentException("the content stream is not readable", nameof(stream));
        _stream = stream;
        if (stream.CanSeek)
        {
            _start = stream.Position;
            long remaining = stream.Length - _start;
            Length = remaining > 0 ? remaining : 0;
        }
    }

    public override long? Length { get; }

    public override bool TryRewind()
    {
        if (!Consumed)
            return true;
        if (!_stream.CanSeek)
            return false;
        _stream.Position = _start;
        Consumed = false;
        _ended = false;
        return true;
    }

    public override async ValueTask<ReadOnlyMemory<byte>> ReadChunkAsync(CancellationToken cancellationToken)
    {
        if (_ended)
            return ReadOnlyMemory<byte>.Empty;
        // A fresh buffer per chunk: the transport may still hold the previous message when WriteAsync returns.
        byte[] buffer = GC.AllocateUninitializedArray<byte>(ChunkBytes);
        int filled = 0;
        while (filled < buffer.Length)
        {
            int n = await _stream.ReadAsync(buffer.AsMemory(filled), cancellationToken).ConfigureAwait(false);
            if (n <= 0)
            {
                _ended = true;
                break;
            }
            filled += n;
            Consumed = true;
        }
        return filled == 0 ? ReadOnlyMemory<byte>.Empty : buffer.AsMemory(0, filled);
    }
}

internal sealed class MemoryChunkSource(ReadOnlyMemory<byte> content, int chunkBytes) : ChunkSource(chunkBytes)
{
    private int _offset;

    public override long? Length => content.Length;

    public override bool TryRewind()
    {
        _offset = 0;
        Consumed = false;
        return true;
    }

    public override ValueTask<ReadOnlyMemory<byte>> ReadChunkAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        int n = Math.Min(ChunkBytes, content.Length - _offset);
        var chunk = content.Slice(_offset, n);
        _offset += n;
        if (n > 0)
            Consumed = true;
        return ValueTask.FromResult(chunk);
    }
}

/// <summary>
/// Chunks already read from a source (to decide how to store the object), then the rest of the source. Rewinds only
/// when the source can.
/// </summary>
internal sealed class PrefixedChunkSource(IReadOnlyList<ReadOnlyMemory<byte>> head, ChunkSource rest) : ChunkSource(rest.ChunkBytes)
{
    private int _next;

    public override long? Length => null;

    public override bool TryRewind()
    {
        if (!rest.TryRewind())
            return false;
        _next = head.Count; // the source starts over from its beginning, which the prefix came from
        Consumed = false;
        return true;
    }

    public override ValueTask<ReadOnlyMemory<byte>> ReadChunkAsync(CancellationToken cancellationToken)
    {
        Consumed = true;
        if (_next < head.Count)
            return ValueTask.FromResult(head[_next++]);
        return rest.ReadChunkAsync(cancellationToken);
    }
}
