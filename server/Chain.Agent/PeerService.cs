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
            await using var file = cache.OpenRead(hex);
            long size = file.Length;
            var buffer = new byte[(int)Math.Min(options.FrameBytes, Math.Max(1, size))];
            bool first = true;
            while (true)
            {
                int read = await file.ReadAsync(buffer, context.CancellationToken).ConfigureAwait(false);
                if (read == 0 && !first)
                    break;
                await uploadLimit.WaitAsync(read, context.CancellationToken).ConfigureAwait(false);
                if (first && read > 0 && options.UnsafeTestCorruptUploads)
                    buffer[0] ^= 0xFF; // test break: the receiver's verification must catch this
                var frame = new PeerChunkResponse { Data = ByteString.CopyFrom(buffer, 0, read) };
                if (first)
                    frame.ChunkSize = (uint)size;
                await writer.WriteAsync(frame, context.CancellationToken).ConfigureAwait(false);
                Uploaded(read);
                first = false;
                if (read == 0)
                    break;
            }
        }
        finally
        {
            EndUpload();
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
