using System.Security.Cryptography;
using Chain.Client;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Google.Protobuf;

namespace Chain.Agent;

/// <summary>
/// The local agent's API: Fetch (progress while the download runs, then the metadata, then the object's bytes in order
/// out of the cache, the whole object's SHA-256 checked) and Status (what each download waits on, cache use).
/// </summary>
internal sealed class AgentService(PeerAgent agent)
{
    private const int DataFrameBytes = 1024 * 1024;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(250);

    public void Register(RpcServiceRegistry registry)
    {
        registry.AddServerStreaming(AgentMethods.Fetch, FetchAsync);
        registry.AddUnary(AgentMethods.Status, (_, _) => Task.FromResult(agent.Status()));
    }

    private async Task FetchAsync(FetchRequest request, IStreamWriter<FetchResponse> writer, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        string key;
        try
        {
            key = Validation.DecodeKey(request.Key.Span);
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new RpcException(StatusCode.InvalidArgument, "the key is not valid UTF-8");
        }
        SwarmDownload download;
        try
        {
            download = await agent.DownloadAsync(request.Bucket, key, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ObjectNotFoundException or BucketNotFoundException)
        {
            throw new RpcException(StatusCode.NotFound, e.Message);
        }
        catch (ChainArgumentException e)
        {
            throw new RpcException(StatusCode.InvalidArgument, e.Message);
        }
        catch (ChainException e)
        {
            throw new RpcException(StatusCode.Unavailable, e.Message);
        }

        using var lease = download.Lease();
        while (!download.Completion.IsCompleted)
        {
            await writer.WriteAsync(new FetchResponse { Progress = download.Progress() }, ct).ConfigureAwait(false);
            await Task.WhenAny(download.Completion, Task.Delay(ProgressInterval, agent.Options.Time, ct)).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
        }
        try
        {
            await download.Completion.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new RpcException(StatusCode.Unavailable, $"download of {download.ObjectName} failed: {e.Message}");
        }
        await writer.WriteAsync(new FetchResponse { Progress = download.Progress() }, ct).ConfigureAwait(false);
        await writer.WriteAsync(new FetchResponse { Meta = MetaOf(download.Layout) }, ct).ConfigureAwait(false);

        using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[DataFrameBytes];
        foreach (var chunk in download.Layout.Chunks)
        {
            // Pinned by the lease; read through a pin of its own as well, so a bug there cannot serve a half-evicted file.
            using var pin = agent.Cache.Pin(chunk.Sha256Hex)
                ?? throw new RpcException(StatusCode.Unavailable, $"chunk {chunk.Sha256Hex} of {download.ObjectName} left the cache during assembly");
            await using var file = agent.Cache.OpenRead(chunk.Sha256Hex);
            long left = chunk.Size;
            while (left > 0)
            {
                int read = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), ct).ConfigureAwait(false);
                if (read == 0)
                    throw new RpcException(StatusCode.DataLoss, $"cached chunk {chunk.Sha256Hex} is shorter than {chunk.Size} bytes");
                whole.AppendData(buffer, 0, read);
                await writer.WriteAsync(new FetchResponse { Data = ByteString.CopyFrom(buffer, 0, read) }, ct).ConfigureAwait(false);
                left -= read;
            }
        }
        string digest = Convert.ToHexStringLower(whole.GetHashAndReset());
        if (digest != download.Layout.Info.Sha256Hex)
            throw new RpcException(StatusCode.DataLoss, $"{download.ObjectName}: assembled SHA-256 {digest}, expected {download.Layout.Info.Sha256Hex}");
    }

    private static ObjectMeta MetaOf(ObjectLayout layout)
    {
        var info = layout.Info;
        var meta = new ObjectMeta
        {
            Bucket = info.Bucket,
            Key = ByteString.CopyFrom(Validation.EncodeKey(info.Key)),
            Size = (ulong)info.Size,
            Sha256 = ByteString.CopyFrom(Convert.FromHexString(info.Sha256Hex)),
            Version = info.Version,
            CreatedUnixMs = info.Created.ToUnixTimeMilliseconds(),
            ContentType = info.ContentType,
            Distributed = !layout.Inline,
        };
        foreach (var (name, value) in info.UserMetadata)
            meta.UserMetadata[name] = value;
        return meta;
    }
}
