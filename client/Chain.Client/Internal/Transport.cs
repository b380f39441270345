using System.Collections.Concurrent;
using Chain.Protocol;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Client.Internal;

/// <summary>The calls the client makes on one endpoint. Implemented over <see cref="RpcChannel"/>; faked in unit tests.</summary>
internal interface IRpcCaller
{
    Task<TResp> UnaryAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions options)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>;

    IAsyncEnumerable<TResp> ServerStreamingAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions options)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>;

    IClientStreamingCall<TReq, TResp> ClientStreaming<TReq, TResp>(Method<TReq, TResp> method, CallOptions options)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>;
}

internal interface IClientStreamingCall<in TReq, TResp> : IDisposable
{
    IClientStreamWriter<TReq> RequestStream { get; }
    Task<TResp> ResponseAsync { get; }
}

/// <summary>Hands out one caller per endpoint address, cached and reused.</summary>
internal interface IRpcTransport : IDisposable
{
    IRpcCaller For(Uri address);

    /// <summary>
    /// Gives <paramref name="address"/> a new connection for the calls that follow: an HTTP/2 connection whose
    /// packets were dropped (a partition) waits out TCP's retransmission back-off long after the peer is reachable.
    /// </summary>
    void Reconnect(Uri address);
}

/// <summary>One <see cref="RpcChannel"/> per address (normalized absolute URI), created on first use, disposed with the transport.</summary>
internal sealed class RpcChannelTransport : IRpcTransport
{
    private static readonly RpcLimits ChannelLimits = new() { MaxMessageBytes = Limits.MessageBytesMax };

    private readonly ConcurrentDictionary<string, Lazy<ChannelCaller>> _channels = new(StringComparer.Ordinal);
    private volatile bool _disposed;

    public IRpcCaller For(Uri address)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var lazy = _channels.GetOrAdd(address.AbsoluteUri,
            static (_, uri) => new Lazy<ChannelCaller>(() => new ChannelCaller(new RpcChannel(uri, ChannelLimits)), LazyThreadSafetyMode.ExecutionAndPublication),
            address);
        return lazy.Value;
    }

    public void Reconnect(Uri address)
    {
        if (_disposed || !_channels.TryRemove(address.AbsoluteUri, out Lazy<ChannelCaller>? old) || !old.IsValueCreated)
            return;
        // Calls still running on the old channel end by their deadlines; it is disposed after the longest of those.
        RpcChannel retired = old.Value.Channel;
        _ = Task.Delay(RetiredChannelLinger).ContinueWith(_ => retired.Dispose(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
    }

    /// <summary>How long a replaced channel stays open for the calls already on it.</summary>
    private static readonly TimeSpan RetiredChannelLinger = TimeSpan.FromMinutes(2);

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (var lazy in _channels.Values)
        {
            if (lazy.IsValueCreated)
                lazy.Value.Channel.Dispose();
        }
        _channels.Clear();
    }

    private sealed class ChannelCaller(RpcChannel channel) : IRpcCaller
    {
        public RpcChannel Channel { get; } = channel;

        public Task<TResp> UnaryAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions options)
            where TReq : class, IMessage<TReq>
            where TResp : class, IMessage<TResp>
            => Channel.UnaryAsync(method, request, options);

        public IAsyncEnumerable<TResp> ServerStreamingAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions options)
            where TReq : class, IMessage<TReq>
            where TResp : class, IMessage<TResp>
            => Channel.ServerStreamingAsync(method, request, options);

        public IClientStreamingCall<TReq, TResp> ClientStreaming<TReq, TResp>(Method<TReq, TResp> method, CallOptions options)
            where TReq : class, IMessage<TReq>
            where TResp : class, IMessage<TResp>
            => new StreamingCall<TReq, TResp>(Channel.ClientStreaming(method, options));
    }

    private sealed class StreamingCall<TReq, TResp>(ClientStreamingCall<TReq, TResp> call) : IClientStreamingCall<TReq, TResp>
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        public IClientStreamWriter<TReq> RequestStream => call.RequestStream;
        public Task<TResp> ResponseAsync => call.ResponseAsync;
        public void Dispose() => call.Dispose();
    }
}
