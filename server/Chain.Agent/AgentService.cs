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

        await agent.CopyObjectAsync(download, (data, token) => writer.WriteAsync(new FetchResponse { Data = ByteString.CopyFrom(data.Span) }, token).AsTask(), ct)
            .ConfigureAwait(false);
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
