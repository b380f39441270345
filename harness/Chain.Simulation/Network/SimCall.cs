using System.Runtime.CompilerServices;
using Chain.Rpc;
using Chain.Rpc.Server;
using Chain.Simulation.Runtime;
using Google.Protobuf;

namespace Chain.Simulation.Network;

/// <summary>
/// One call on the simulated network, both halves. The client half runs in the calling process, the server half
/// (the registered handler) in the listening host's process; everything crossing between them is a delivery on
/// one of the two ordered <see cref="SimLink"/>s. Status semantics follow RpcChannel and RpcServer: the caller's
/// cancellation ends the call with OperationCanceledException, its timeout with DeadlineExceeded, a reset or a
/// refused connection with Unavailable; the handler's RpcException becomes the status and trailers, anything
/// else Internal; the server's call token fires on a reset, at the deadline and when the call has ended.
/// </summary>
internal sealed class SimCall
{
    private readonly SimNetwork _net;
    private readonly string _path;
    private readonly TimeSpan? _timeout;
    private SimLink? _toServer;
    private SimLink? _toClient;
    private RpcServiceRegistry? _registry;
    private bool _tracked;

    // client half
    private readonly Queue<byte[]> _clientInbox = new();
    private bool _clientDone;
    private Exception? _clientError;
    private TaskCompletionSource? _clientWaiter;
    private SimExecutor.Scheduled? _deadline;
    private CancellationTokenRegistration _callerRegistration;
    private bool _clientHalfClosed;

    // server half
    private readonly Queue<byte[]> _serverInbox = new();
    private bool _serverHalfClosed;
    private bool _serverReset;
    private bool _serverEnded;
    private bool _serverDeadline;
    private TaskCompletionSource? _serverWaiter;
    private CancellationTokenSource? _serverCts;

    public SimCall(SimNetwork net, SimProcess client, string path, CallOptions? options)
    {
        _net = net;
        Client = client;
        _path = path;
        _timeout = options?.Timeout;
    }

    public SimProcess Client { get; }
    public SimProcess? Server { get; private set; }
    public string? ServerHost { get; private set; }

    private SimExecutor Executor => _net.Executor;

    /// <summary>Adds (true) or removes (false) the call from the network's active set; false if it was not there.</summary>
    public bool Track(bool on)
    {
        if (on)
        {
            _tracked = true;
            _net.Started(this);
            return true;
        }
        if (!_tracked)
            return false;
        _tracked = false;
        _net.Removed(this);
        return true;
    }

    // ================= client half (runs in Client) =================

    public void Start(string host, CallOptions? options)
    {
        if (_timeout is { } timeout)
        {
            if (timeout <= TimeSpan.Zero)
            {
                ClientFail(new RpcException(StatusCode.DeadlineExceeded, $"{_path}: deadline of {timeout} exceeded"));
                return;
            }
            _deadline = Executor.At(Executor.Now + timeout.Ticks, Client,
                () => ClientAbort(new RpcException(StatusCode.DeadlineExceeded, $"{_path}: deadline of {timeout} exceeded")));
        }
        var listener = _net.Listener(host);
        if (listener is null)
        {
            long delay = _net.IsBlocked(Client.Name, host) ? _net.Options.ConnectTimeout.Ticks : _net.Latency();
            Executor.At(Executor.Now + delay, Client, () => ClientFail(new RpcException(StatusCode.Unavailable, $"{_path}: connection to {host} refused")));
            return;
        }
        Server = listener.Value.Process;
        _registry = listener.Value.Registry;
        ServerHost = host;
        _toServer = new SimLink(_net, Server, Client.Name, host);
        _toClient = new SimLink(_net, Client, host, Client.Name);
        Track(true);
        _toServer.Send(ServerOpen);
        if (options?.CancellationToken is { CanBeCanceled: true } token)
        {
            _callerRegistration = token.UnsafeRegister(static (s, t) =>
                ((SimCall)s!).ClientAbort(new OperationCanceledException("the call was cancelled", t)), this);
        }
    }

    public void ClientSend(byte[] data)
    {
        if (_clientDone)
            throw _clientError ?? new InvalidOperationException($"{_path}: the call has already completed; no more request messages can be sent");
        if (_clientHalfClosed)
            throw new InvalidOperationException("the request stream has already been completed");
        _toServer?.Send(() => ServerReceive(data));
    }

    public void ClientHalfClose()
    {
        if (_clientHalfClosed || _clientDone)
            return;
        _clientHalfClosed = true;
        _toServer?.Send(ServerHalfClose);
    }

    /// <summary>The next response message, null once the call ended with OK; throws the call's error otherwise.</summary>
    public async ValueTask<byte[]?> ClientReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_clientInbox.Count > 0)
                return _clientInbox.Dequeue();
            if (_clientDone)
                return _clientError is null ? null : throw _clientError;
            cancellationToken.ThrowIfCancellationRequested();
            _clientWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task wait = _clientWaiter.Task;
            using (cancellationToken.UnsafeRegister(static (s, t) =>
                       ((SimCall)s!).ClientAbort(new OperationCanceledException("the call was cancelled", t)), this))
            {
                await wait;
            }
        }
    }

    /// <summary>Ends the call from the client side (cancellation, deadline, dispose): the server sees a reset.</summary>
    public void ClientAbort(Exception error)
    {
        if (_clientDone)
            return;
        ClientFail(error);
        if (Track(false))
        {
            _toServer?.Close();
            _toClient?.Close();
            if (Server is { } server)
                Executor.At(Executor.Now + _net.Latency(), server, ServerResetDelivered);
        }
    }

    /// <summary>The call failed locally or by a reset: buffered responses are discarded.</summary>
    private void ClientFail(Exception error)
    {
        if (_clientDone)
            return;
        _clientInbox.Clear();
        ClientEnd(error);
    }

    private void ClientEnd(Exception? status)
    {
        _clientDone = true;
        _clientError = status;
        if (_deadline is not null)
            _deadline.Cancelled = true;
        _callerRegistration.Dispose();
        WakeClient();
    }

    private void WakeClient()
    {
        TaskCompletionSource? waiter = _clientWaiter;
        _clientWaiter = null;
        waiter?.TrySetResult();
    }

    private void ClientReceive(byte[] data)
    {
        if (_clientDone)
            return;
        _clientInbox.Enqueue(data);
        WakeClient();
    }

    private void ClientStatus(Exception? status)
    {
        if (_clientDone)
            return;
        Track(false);
        ClientEnd(status);
    }

    /// <summary>A reset of the stream (drop, crash of the peer, keepalive): both halves learn it after a latency.</summary>
    public void ResetBothSides(string reason)
    {
        _toServer?.Close();
        _toClient?.Close();
        Executor.At(Executor.Now + _net.Latency(), Client, () => ClientFail(new RpcException(StatusCode.Unavailable, $"{_path}: {reason}")));
        if (Server is { } server)
            Executor.At(Executor.Now + _net.Latency(), server, ServerResetDelivered);
    }

    // ================= server half (runs in Server) =================

    private void ServerOpen()
    {
        ServerMethod? method = _registry!.Find(_path);
        if (method is null)
        {
            ServerSendStatus(new RpcException(StatusCode.Unimplemented, $"unknown method {_path}"));
            return;
        }
        _serverCts = new CancellationTokenSource();
        DateTimeOffset? deadline = null;
        if (_timeout is { } timeout)
        {
            deadline = Server!.Time.GetUtcNow() + timeout;
            Executor.At(Executor.Now + timeout.Ticks, Server, () =>
            {
                if (_serverEnded)
                    return;
                _serverDeadline = true;
                _serverCts.Cancel();
            });
        }
        if (_serverReset)
            _serverCts.Cancel(); // the reset overtook the headers while this process was paused: the call starts aborted
        var context = new ServerCallContext(_path, _serverCts.Token, deadline, "sim:" + Client.Name, new Dictionary<string, string>(StringComparer.Ordinal));
        _ = RunHandlerAsync(method, new SimServerCallIo(this), context);
    }

    private async Task RunHandlerAsync(ServerMethod method, ServerCallIo io, ServerCallContext context)
    {
        Exception? status;
        try
        {
            await method.InvokeAsync(io, context);
            status = _serverDeadline ? new RpcException(StatusCode.DeadlineExceeded, "deadline exceeded") : null;
        }
        catch (RpcException e)
        {
            // Trailers are copied: nothing crosses the network by reference.
            status = new RpcException(e.Status, e.Detail, new Dictionary<string, string>(e.Trailers, StringComparer.Ordinal));
        }
        catch (Exception) when (_serverDeadline)
        {
            status = new RpcException(StatusCode.DeadlineExceeded, "deadline exceeded");
        }
        catch (Exception) when (_serverReset)
        {
            return; // the client went away; nothing can be sent
        }
        catch (Exception e)
        {
            _net.HandlerFailures++;
            _net.LastHandlerFailure = $"{_path} on {Server!.Name}: {e.GetType().Name}: {e.Message}";
            status = new RpcException(StatusCode.Internal, $"internal error: {e.GetType().FullName}: {e.Message}");
        }
        if (_serverReset)
            return;
        ServerSendStatus(status);
    }

    private void ServerSendStatus(Exception? status)
    {
        _serverEnded = true;
        _toClient!.Send(() => ClientStatus(status));
        _serverCts?.Cancel();
    }

    private void ServerReceive(byte[] data)
    {
        if (_serverReset || _serverEnded)
            return;
        _serverInbox.Enqueue(data);
        WakeServer();
    }

    private void ServerHalfClose()
    {
        _serverHalfClosed = true;
        WakeServer();
    }

    private void ServerResetDelivered()
    {
        if (_serverReset)
            return;
        _serverReset = true;
        _serverCts?.Cancel();
        WakeServer();
    }

    private void WakeServer()
    {
        TaskCompletionSource? waiter = _serverWaiter;
        _serverWaiter = null;
        waiter?.TrySetResult();
    }

    public async ValueTask<byte[]?> ServerReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_serverReset)
                throw new OperationCanceledException("the client reset the stream");
            cancellationToken.ThrowIfCancellationRequested();
            if (_serverInbox.Count > 0)
                return _serverInbox.Dequeue();
            if (_serverHalfClosed)
                return null;
            _serverWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task wait = _serverWaiter.Task;
            using (cancellationToken.UnsafeRegister(static s => ((SimCall)s!).WakeServer(), this))
            {
                await wait;
            }
        }
    }

    public void ServerWrite(IMessage message, CancellationToken cancellationToken)
    {
        if (_serverReset)
            throw new OperationCanceledException("the client reset the stream");
        _serverCts!.Token.ThrowIfCancellationRequested();
        cancellationToken.ThrowIfCancellationRequested();
        byte[] data = SimNetwork.Serialize(message, _path);
        _toClient!.Send(() => ClientReceive(data));
    }

    public CancellationToken ServerToken => _serverCts!.Token;

    private sealed class SimServerCallIo(SimCall call) : ServerCallIo
    {
        public override CancellationToken CallToken => call.ServerToken;

        public override async ValueTask<T?> ReadAsync<T>(MessageParser<T> parser, CancellationToken cancellationToken)
            where T : class
        {
            byte[]? data = await call.ServerReadAsync(cancellationToken);
            if (data is null)
                return null;
            try
            {
                return parser.ParseFrom(data);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new RpcException(StatusCode.InvalidArgument, $"unparseable request message: {e.Message}");
            }
        }

        public override ValueTask WriteAsync(IMessage message, CancellationToken cancellationToken)
        {
            call.ServerWrite(message, cancellationToken);
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>The typed client view of a <see cref="SimCall"/>: request writer, response reader, disposable.</summary>
internal sealed class SimClientCall<TReq, TResp>(SimCall call, Method<TReq, TResp> method) : IDisposable, IClientStreamWriter<TReq>, IAsyncEnumerable<TResp>
    where TReq : class, IMessage<TReq>
    where TResp : class, IMessage<TResp>
{
    private bool _enumerated;

    public ValueTask WriteAsync(TReq message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        cancellationToken.ThrowIfCancellationRequested();
        call.ClientSend(SimNetwork.Serialize(message, method.FullName));
        return ValueTask.CompletedTask;
    }

    public void WriteRaw(byte[] data) => call.ClientSend(data);

    public ValueTask CompleteAsync()
    {
        call.ClientHalfClose();
        return ValueTask.CompletedTask;
    }

    public async ValueTask<TResp?> ReadNextAsync(CancellationToken cancellationToken)
    {
        byte[]? data = await call.ClientReadAsync(cancellationToken);
        return data is null ? null : method.ResponseParser.ParseFrom(data);
    }

    public async Task<TResp> ReadSingleAsync()
    {
        TResp response = await ReadNextAsync(CancellationToken.None)
            ?? throw new RpcException(StatusCode.Internal, $"{method.FullName}: the call ended with OK but without a response message");
        if (await ReadNextAsync(CancellationToken.None) is not null)
            throw new RpcException(StatusCode.Internal, $"{method.FullName}: more than one response message for a single-response call");
        return response;
    }

    public IAsyncEnumerator<TResp> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        if (_enumerated)
            throw new InvalidOperationException("the response stream can be enumerated only once");
        _enumerated = true;
        return new Enumerator(this, cancellationToken);
    }

    public void Dispose() => call.ClientAbort(new RpcException(StatusCode.Cancelled, $"{method.FullName}: the call was disposed"));

    private sealed class Enumerator(SimClientCall<TReq, TResp> owner, CancellationToken cancellationToken) : IAsyncEnumerator<TResp>
    {
        private TResp? _current;

        public TResp Current => _current ?? throw new InvalidOperationException("no current message");

        public async ValueTask<bool> MoveNextAsync()
        {
            _current = await owner.ReadNextAsync(cancellationToken);
            return _current is not null;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

/// <summary>An <see cref="IRpcInvoker"/> on the simulated network, for calls made by one process.</summary>
internal sealed class SimInvoker(SimNetwork net, SimProcess from, Uri address) : IRpcInvoker
{
    public Uri Address => address;

    private SimClientCall<TReq, TResp> Open<TReq, TResp>(Method<TReq, TResp> method, CallOptions? options)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        var core = new SimCall(net, from, method.FullName, options);
        core.Start(address.Host, options);
        return new SimClientCall<TReq, TResp>(core, method);
    }

    public async Task<TResp> UnaryAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        byte[] data = SimNetwork.Serialize(request, method.FullName);
        using SimClientCall<TReq, TResp> call = Open(method, options);
        call.WriteRaw(data);
        await call.CompleteAsync();
        return await call.ReadSingleAsync();
    }

    public IAsyncEnumerable<TResp> ServerStreamingAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp> =>
        ServerStreamingCore(method, SimNetwork.Serialize(request, method.FullName), options);

    private async IAsyncEnumerable<TResp> ServerStreamingCore<TReq, TResp>(Method<TReq, TResp> method, byte[] request, CallOptions? options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        using SimClientCall<TReq, TResp> call = Open(method, options);
        call.WriteRaw(request);
        await call.CompleteAsync();
        while (await call.ReadNextAsync(cancellationToken) is { } message)
            yield return message;
    }

    public ClientStreamingCall<TReq, TResp> ClientStreaming<TReq, TResp>(Method<TReq, TResp> method, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        SimClientCall<TReq, TResp> call = Open(method, options);
        return new ClientStreamingCall<TReq, TResp>(call, call, call.ReadSingleAsync());
    }

    public DuplexCall<TReq, TResp> Duplex<TReq, TResp>(Method<TReq, TResp> method, CallOptions? options = null)
        where TReq : class, IMessage<TReq>
        where TResp : class, IMessage<TResp>
    {
        SimClientCall<TReq, TResp> call = Open(method, options);
        return new DuplexCall<TReq, TResp>(call, call, call);
    }

    public void Dispose()
    {
    }
}
