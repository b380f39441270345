using System.Net;
using System.Runtime.CompilerServices;
using Google.Protobuf;

namespace Chain.Rpc;

/// <summary>
/// Client side of the gRPC wire protocol over HTTP/2 (h2c with prior knowledge for "http://" addresses).
/// One <see cref="HttpClient"/> (and connection pool) per channel; calls are multiplexed as HTTP/2 streams,
/// and more connections are opened when a server's stream limit is reached. Thread-safe.
/// </summary>
public sealed class RpcChannel : IRpcInvoker
{
    internal const string UserAgent = "chain-rpc-dotnet/1.0";

    private readonly HttpClient _client;
    private volatile bool _disposed;

    public RpcChannel(Uri address, RpcLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (!address.IsAbsoluteUri || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"expected an absolute http:// address, got '{address}'", nameof(address));
        }
        Address = address;
        Limits = limits ?? new RpcLimits();
        if (Limits.MaxMessageBytes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(limits), "MaxMessageBytes must not be negative");
        }

        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
            KeepAlivePingDelay = TimeSpan.FromSeconds(60),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(20),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            InitialHttp2StreamWindowSize = 1024 * 1024,
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ActivityHeadersPropagator = null,
        };
        _client = new HttpClient(handler, disposeHandler: true)
        {
            Timeout = Timeout.InfiniteTimeSpan,
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
    }

    public Uri Address { get; }

    internal RpcLimits Limits { get; }

    internal HttpClient Client => _client;

    /// <summary>One request, one response.</summary>
    public async Task<TResp> UnaryAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(request);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var frame = GrpcWire.Framed(request, Limits.MaxMessageBytes);
        using var call = new ClientCall<TReq, TResp>(this, method, options);
        call.StartUnary(frame);
        return await ReadSingleResponseAsync(call).ConfigureAwait(false);
    }

    /// <summary>
    /// One request, a stream of responses. Nothing is sent until enumeration starts; errors (including a
    /// non-OK final status, checked after the last message) surface from MoveNextAsync. Disposing the
    /// enumerator early cancels the call.
    /// </summary>
    public IAsyncEnumerable<TResp> ServerStreamingAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(request);
        return ServerStreamingCore(method, request, options);
    }

    private async IAsyncEnumerable<TResp> ServerStreamingCore<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions? options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var frame = GrpcWire.Framed(request, Limits.MaxMessageBytes);
        using var call = new ClientCall<TReq, TResp>(this, method, options);
        call.StartUnary(frame);
        while (await call.ReadNextAsync(cancellationToken).ConfigureAwait(false) is { } message)
        {
            yield return message;
        }
    }

    /// <summary>A stream of requests (starts at once), one response.</summary>
    public ClientStreamingCall<TReq, TResp> ClientStreaming<TReq, TResp>(Method<TReq, TResp> method, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        ArgumentNullException.ThrowIfNull(method);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var call = new ClientCall<TReq, TResp>(this, method, options);
        call.StartStreaming();
        var response = ReadSingleResponseAsync(call);
        return new ClientStreamingCall<TReq, TResp>(call, new ClientStreamWriter<TReq, TResp>(call), response);
    }

    /// <summary>Full duplex: requests and responses flow independently on one stream (starts at once).</summary>
    public DuplexCall<TReq, TResp> Duplex<TReq, TResp>(Method<TReq, TResp> method, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        ArgumentNullException.ThrowIfNull(method);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var call = new ClientCall<TReq, TResp>(this, method, options);
        call.StartStreaming();
        return new DuplexCall<TReq, TResp>(call, new ClientStreamWriter<TReq, TResp>(call), new ResponseStream<TReq, TResp>(call));
    }

    private static async Task<TResp> ReadSingleResponseAsync<TReq, TResp>(ClientCall<TReq, TResp> call)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        var response = await call.ReadNextAsync(CancellationToken.None).ConfigureAwait(false)
            ?? throw new RpcException(StatusCode.Internal, $"{call.FullName}: the call ended with OK but without a response message");
        if (await call.ReadNextAsync(CancellationToken.None).ConfigureAwait(false) is not null)
        {
            throw call.Abort(new RpcException(StatusCode.Internal, $"{call.FullName}: more than one response message for a single-response call"));
        }
        return response;
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _client.Dispose();
        }
    }
}

/// <summary>A client-streaming call: write requests, complete, await the single response. Dispose aborts the call.</summary>
public sealed class ClientStreamingCall<TReq, TResp> : IDisposable
    where TReq : class, IMessage<TReq>
    where TResp : class, IMessage<TResp>
{
    private readonly IDisposable _call;

    /// <summary>For other implementations of <see cref="IRpcInvoker"/>: disposing <paramref name="call"/> aborts the call.</summary>
    public ClientStreamingCall(IDisposable call, IClientStreamWriter<TReq> requestStream, Task<TResp> responseAsync)
    {
        _call = call;
        RequestStream = requestStream;
        ResponseAsync = responseAsync;
    }

    public IClientStreamWriter<TReq> RequestStream { get; }

    public Task<TResp> ResponseAsync { get; }

    public void Dispose() => _call.Dispose();
}

/// <summary>A full-duplex call. The response stream can be enumerated once. Dispose aborts the call.</summary>
public sealed class DuplexCall<TReq, TResp> : IDisposable
    where TReq : class, IMessage<TReq>
    where TResp : class, IMessage<TResp>
{
    private readonly IDisposable _call;

    /// <summary>For other implementations of <see cref="IRpcInvoker"/>: disposing <paramref name="call"/> aborts the call.</summary>
    public DuplexCall(IDisposable call, IClientStreamWriter<TReq> requestStream, IAsyncEnumerable<TResp> responseStream)
    {
        _call = call;
        RequestStream = requestStream;
        ResponseStream = responseStream;
    }

    public IClientStreamWriter<TReq> RequestStream { get; }

    public IAsyncEnumerable<TResp> ResponseStream { get; }

    public void Dispose() => _call.Dispose();
}

internal sealed class ClientStreamWriter<TReq, TResp> : IClientStreamWriter<TReq>
    where TReq : class, IMessage<TReq>
    where TResp : class, IMessage<TResp>
{
    private readonly ClientCall<TReq, TResp> _call;
    private int _writing;
    private volatile bool _completed;

    public ClientStreamWriter(ClientCall<TReq, TResp> call) => _call = call;

    public async ValueTask WriteAsync(TReq message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (Interlocked.Exchange(ref _writing, 1) != 0)
        {
            throw new InvalidOperationException("a write is already in progress; writes must be sequential");
        }
        try
        {
            if (_completed)
            {
                throw new InvalidOperationException("the request stream has already been completed");
            }
            await _call.WriteMessageAsync(message, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    public ValueTask CompleteAsync()
    {
        _completed = true;
        _call.CompleteRequest();
        return ValueTask.CompletedTask;
    }
}

internal sealed class ResponseStream<TReq, TResp> : IAsyncEnumerable<TResp>
    where TReq : class, IMessage<TReq>
    where TResp : class, IMessage<TResp>
{
    private readonly ClientCall<TReq, TResp> _call;
    private int _enumerated;

    public ResponseStream(ClientCall<TReq, TResp> call) => _call = call;

    public IAsyncEnumerator<TResp> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _enumerated, 1) != 0)
        {
            throw new InvalidOperationException("the response stream can be enumerated only once");
        }
        return new Enumerator(_call, cancellationToken);
    }

    private sealed class Enumerator(ClientCall<TReq, TResp> call, CancellationToken cancellationToken) : IAsyncEnumerator<TResp>
    {
        private TResp? _current;

        public TResp Current => _current ?? throw new InvalidOperationException("no current message");

        public async ValueTask<bool> MoveNextAsync()
        {
            _current = await call.ReadNextAsync(cancellationToken).ConfigureAwait(false);
            return _current is not null;
        }

        // The call belongs to the DuplexCall, which aborts it when disposed.
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
