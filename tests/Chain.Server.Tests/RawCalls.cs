using System.Security.Cryptography;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Server.Tests;

/// <summary>Builds wire-level requests by hand, bypassing the client library's own validation.</summary>
internal static class RawCalls
{
    public static byte[] NewRequestId() => RandomNumberGenerator.GetBytes(Limits.RequestIdBytes);

    public static PutChunk Chunk(byte[] data) => new() { Data = ByteString.CopyFrom(data), Sha256 = ByteString.CopyFrom(SHA256.HashData(data)) };

    public static PutCommit Commit(byte[] data) => new() { Size = (ulong)data.Length, Sha256 = ByteString.CopyFrom(SHA256.HashData(data)) };

    public static PutHeader Header(ClusterConfig config, string bucket, byte[] key, byte[] requestId, ulong? epoch = null, uint? chain = null)
    {
        uint chainId = chain ?? Placement.ChainFor(bucket, key, config.Chains.Count);
        return new PutHeader
        {
            Routing = new Routing { ChainId = chainId, Epoch = epoch ?? config.Chains[(int)chainId].Epoch },
            Bucket = bucket,
            Key = ByteString.CopyFrom(key),
            RequestId = ByteString.CopyFrom(requestId),
        };
    }

    /// <summary>Sends a put as given messages; returns the response or throws the RpcException.</summary>
    public static async Task<PutResponse> PutAsync(RpcChannel channel, params PutRequest[] messages)
    {
        using ClientStreamingCall<PutRequest, PutResponse> call = channel.ClientStreaming(StoreMethods.Put, new CallOptions { Timeout = TimeSpan.FromSeconds(20) });
        try
        {
            foreach (PutRequest m in messages)
                await call.RequestStream.WriteAsync(m);
            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            // the server may answer before reading everything; the response carries the status
        }
        return await call.ResponseAsync;
    }

    public static async Task<PutResponse> PutBytesAsync(RpcChannel channel, PutHeader header, byte[] data)
    {
        var messages = new List<PutRequest> { new() { Header = header } };
        if (data.Length > 0)
            messages.Add(new PutRequest { Chunk = Chunk(data) });
        messages.Add(new PutRequest { Commit = Commit(data) });
        return await PutAsync(channel, messages.ToArray());
    }

    public static string? Kind(RpcException e) => e.Trailers.TryGetValue(ErrorTrailers.Kind, out string? k) ? k : null;
}
