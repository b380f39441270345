using System.Buffers;
using System.Runtime.CompilerServices;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Google.Protobuf;

namespace Chain.Agent;

/// <summary>
/// Peer.GetChunk (the RPC path; peers with a data port use <see cref="ChunkWireServer"/>): streams a cached (verified) chunk in frames under the upload cap; at most
/// <see cref="PeerAgentOptions.MaxUploads"/> at once (RESOURCE_EXHAUSTED beyond), NOT_FOUND when not cached. The chunk is
/// pinned while it is served.
/// </summary>
internal sealed class PeerService(ChunkCache cache, RateLimiter uploadLimit, PeerAgentOptions options)
{
    private int _uploads;
    private long _bytesUploaded;

    public int UploadsInFlight => Volatile.Read(ref _uploads);
    public long BytesUploaded => Interlocked.Read(ref _bytesUploaded);

    public void Register(RpcServiceRegistry registry) => registry.AddServerStreaming(PeerMethods.GetChunk, GetChunkAsync);

    private async Task GetChunkAsync(PeerChunkRequest request, IStreamWriter<PeerChunkResponse> writer, ServerCallContext context)
    {
        if (request.Sha256.Length != 32)
            throw new RpcException(StatusCode.InvalidArgument, $"a chunk id is 32 bytes, got {request.Sha256.Length}");
        string hex = Convert.ToHexStringLower(request.Sha256.Span);
        if (!TryBeginUpload())
            throw new RpcException(StatusCode.ResourceExhausted, $"at the upload cap ({options.MaxUploads} at once)");
        try
        {
            using var pin = cache.Pin(hex) ?? throw new RpcException(StatusCode.NotFound, $"chunk {hex} is not cached here");
            long size = new FileInfo(cache.PathOf(hex)).Length;
            bool first = true;
            await foreach (var data in UploadFramesAsync(hex, size, context.CancellationToken).ConfigureAwait(false))
            {
                var frame = new PeerChunkResponse { Data = ByteString.CopyFrom(data.Span) };
                if (first)
                    frame.ChunkSize = (uint)size;
                await writer.WriteAsync(frame, context.CancellationToken).ConfigureAwait(false);
                first = false;
            }
            if (first)
                await writer.WriteAsync(new PeerChunkResponse { ChunkSize = 0 }, context.CancellationToken).ConfigureAwait(false); // an empty chunk
        }
        finally
        {
            EndUpload();
        }
    }

    /// <summary>True when uploads go frame by frame (an upload cap, or the corrupt test break); else they may be sent whole.</summary>
    internal bool UploadsPaced => uploadLimit.BytesPerSecond != 0 || options.UnsafeTestCorruptUploads;

    /// <summary>
    /// A pinned chunk's <paramref name="size"/> bytes in frames of at most <see cref="PeerAgentOptions.FrameBytes"/>, each
    /// paid to the upload cap before it is handed out and counted as uploaded once the caller has sent it (the caller
    /// sends a frame before asking for the next: the buffer is reused). Both transports upload through this.
    /// </summary>
    internal async IAsyncEnumerable<ReadOnlyMemory<byte>> UploadFramesAsync(string hex, long size, [EnumeratorCancellation] CancellationToken ct)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(options.FrameBytes);
        try
        {
            await using var file = cache.OpenRead(hex);
            bool first = true;
            for (long left = size; left > 0;)
            {
                int read = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(options.FrameBytes, left)), ct).ConfigureAwait(false);
                if (read == 0)
                    throw new IOException($"cached chunk {hex} is shorter than {size} bytes");
                await uploadLimit.WaitAsync(read, ct).ConfigureAwait(false);
                if (first && options.UnsafeTestCorruptUploads)
                    buffer[0] ^= 0xFF; // test break: the receiver's verification must catch this
                first = false;
                yield return buffer.AsMemory(0, read);
                Uploaded(read);
                left -= read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Takes an upload slot (this service's and the data port's uploads share the cap); false at the cap.</summary>
    internal bool TryBeginUpload()
    {
        if (Interlocked.Increment(ref _uploads) <= options.MaxUploads)
            return true;
        Interlocked.Decrement(ref _uploads);
        return false;
    }

    internal void EndUpload() => Interlocked.Decrement(ref _uploads);

    internal void Uploaded(long bytes) => Interlocked.Add(ref _bytesUploaded, bytes);
}
