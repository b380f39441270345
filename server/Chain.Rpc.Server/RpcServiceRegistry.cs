using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Microsoft.AspNetCore.Http;

namespace Chain.Rpc.Server;

/// <summary>The handlers a server dispatches to, by "/{service}/{method}". Thread-safe; methods may be added while serving.</summary>
public sealed class RpcServiceRegistry
{
    private readonly ConcurrentDictionary<string, ServerMethod> _methods = new(StringComparer.Ordinal);

    public void AddUnary<TReq, TResp>(Method<TReq, TResp> m, Func<TReq, ServerCallContext, Task<TResp>> handler)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(handler);
        Add(m.FullName, new ServerMethod(async (io, context) =>
        {
            var request = await io.ReadSingleAsync(m.RequestParser);
            var response = await handler(request, context)
                ?? throw new InvalidOperationException($"the handler of {m.FullName} returned null");
            context.CancellationToken.ThrowIfCancellationRequested();
            await io.WriteAsync(response, CancellationToken.None);
        }));
    }

    public void AddServerStreaming<TReq, TResp>(Method<TReq, TResp> m, Func<TReq, IStreamWriter<TResp>, ServerCallContext, Task> handler)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(handler);
        Add(m.FullName, new ServerMethod(async (io, context) =>
        {
            var request = await io.ReadSingleAsync(m.RequestParser);
            var writer = new ServerStreamWriter<TResp>(io);
            try
            {
                await handler(request, writer, context);
            }
            finally
            {
                writer.Close();
            }
        }));
    }

    public void AddClientStreaming<TReq, TResp>(Method<TReq, TResp> m, Func<IAsyncEnumerable<TReq>, ServerCallContext, Task<TResp>> handler)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(handler);
        Add(m.FullName, new ServerMethod(async (io, context) =>
        {
            var response = await handler(new RequestStream<TReq>(io, m.RequestParser), context)
                ?? throw new InvalidOperationException($"the handler of {m.FullName} returned null");
            context.CancellationToken.ThrowIfCancellationRequested();
            await io.WriteAsync(response, CancellationToken.None);
        }));
    }

    public void AddDuplex<TReq, TResp>(Method<TReq, TResp> m, Func<IAsyncEnumerable<TReq>, IStreamWriter<TResp>, ServerCallContext, Task> handler)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        ArgumentNullException.ThrowIfNull(m);
        ArgumentNullException.ThrowIfNull(handler);
        Add(m.FullName, new ServerMethod(async (io, context) =>
        {
            var writer = new ServerStreamWriter<TResp>(io);
            try
            {
                await handler(new RequestStream<TReq>(io, m.RequestParser), writer, context);
            }
            finally
            {
                writer.Close();
            }
        }));
    }

    /// <summary>The handler registered for "/{service}/{method}", or null.</summary>
    internal ServerMethod? Find(string path) => _methods.TryGetValue(path, out var method) ? method : null;

    private void Add(string fullName, ServerMethod method)
    {
        if (!_methods.TryAdd(fullName, method))
        {
            throw new InvalidOperationException($"a handler for {fullName} is already registered");
        }
    }
}

/// <summary>A registered method: reads its request(s), runs the handler, writes its response(s). Status is written by the dispatcher.</summary>
internal sealed class ServerMethod(Func<ServerCallIo, ServerCallContext, Task> invoke)
{
    public Task InvokeAsync(ServerCallIo io, ServerCallContext context) => invoke(io, context);
}

/// <summary>
/// Message I/O of one server call. The handlers' wrappers above run on whatever context the transport gives them
/// and never leave it (no ConfigureAwait(false)): the deterministic simulation runs them on its own single-threaded
/// executor through an in-memory implementation (harness/Chain.Simulation). Kestrel has no synchronization
/// context, so over HTTP/2 this is the same as ConfigureAwait(false).
/// </summary>
internal abstract class ServerCallIo
{
    public abstract CancellationToken CallToken { get; }

    /// <summary>The next request message, or null at the end of the request stream.</summary>
    public abstract ValueTask<T?> ReadAsync<T>(MessageParser<T> parser, CancellationToken cancellationToken)
        where T : class, IMessage<T>;

    /// <summary>Sends one response message.</summary>
    public abstract ValueTask WriteAsync(IMessage message, CancellationToken cancellationToken);

    /// <summary>Exactly one request message followed by the end of the request stream.</summary>
    public async Task<T> ReadSingleAsync<T>(MessageParser<T> parser)
        where T : class, IMessage<T>
    {
        var message = await ReadAsync(parser, CallToken)
            ?? throw new RpcException(StatusCode.Internal, "the request stream ended without a request message");
        if (await ReadAsync(parser, CallToken) is not null)
        {
            throw new RpcException(StatusCode.Internal, "more than one request message for a single-request method");
        }
        return message;
    }
}

/// <summary>Message I/O of one server call over the HTTP/2 request and response bodies.</summary>
internal sealed class HttpServerCallIo(HttpContext http, int maxMessageBytes, StatusCode compressedStatus, CancellationToken callToken) : ServerCallIo
{
    private readonly byte[] _prefix = new byte[GrpcWire.PrefixSize];

    public override CancellationToken CallToken => callToken;

    public override ValueTask<T?> ReadAsync<T>(MessageParser<T> parser, CancellationToken cancellationToken)
        where T : class =>
        GrpcWire.ReadMessageAsync(http.Request.Body, parser, maxMessageBytes, _prefix,
            StatusCode.InvalidArgument, compressedStatus, cancellationToken);

    /// <summary>Frames one response message into the response body and flushes it (headers go out with the first one).</summary>
    public override async ValueTask WriteAsync(IMessage message, CancellationToken cancellationToken)
    {
        var size = GrpcWire.CheckedSize(message, maxMessageBytes);
        callToken.ThrowIfCancellationRequested();
        cancellationToken.ThrowIfCancellationRequested();

        var writer = http.Response.BodyWriter;
        GrpcWire.WritePrefix(writer.GetSpan(GrpcWire.PrefixSize), size);
        writer.Advance(GrpcWire.PrefixSize);
        if (size > 0)
        {
            message.WriteTo(writer);
        }

        System.IO.Pipelines.FlushResult result;
        if (cancellationToken.CanBeCanceled)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, callToken);
            result = await writer.FlushAsync(linked.Token).ConfigureAwait(false);
        }
        else
        {
            result = await writer.FlushAsync(callToken).ConfigureAwait(false);
        }
        if (result.IsCanceled)
        {
            throw new OperationCanceledException("the response write was cancelled");
        }
        callToken.ThrowIfCancellationRequested();
    }
}

internal sealed class ServerStreamWriter<T>(ServerCallIo io) : IStreamWriter<T>
    where T : class, IMessage<T>
{
    private int _writing;
    private volatile bool _closed;

    public async ValueTask WriteAsync(T message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (Interlocked.Exchange(ref _writing, 1) != 0)
        {
            throw new InvalidOperationException("a write is already in progress; writes must be sequential");
        }
        try
        {
            if (_closed)
            {
                throw new InvalidOperationException("the call has ended; no more responses can be written");
            }
            await io.WriteAsync(message, cancellationToken);
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    public void Close() => _closed = true;
}

/// <summary>The request messages of a streaming call; enumerable once. Ends at the client's half-close.</summary>
internal sealed class RequestStream<T>(ServerCallIo io, MessageParser<T> parser) : IAsyncEnumerable<T>
    where T : class, IMessage<T>
{
    private int _enumerated;

    public IAsyncEnumerator<T> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _enumerated, 1) != 0)
        {
            throw new InvalidOperationException("the request stream can be enumerated only once");
        }
        return ReadAllAsync(cancellationToken).GetAsyncEnumerator(cancellationToken);
    }

    private async IAsyncEnumerable<T> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var linked = cancellationToken.CanBeCanceled
            ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, io.CallToken)
            : null;
        var token = linked?.Token ?? io.CallToken;
        while (await io.ReadAsync(parser, token) is { } message)
        {
            yield return message;
        }
    }
}
