using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Google.Protobuf;

namespace Chain.Rpc;

/// <summary>
/// One client call over one HTTP/2 stream: sends the request headers (and body through an
/// <see cref="HttpContent"/>), validates the response headers, reads length-prefixed messages, and turns the
/// trailers (or anything that went wrong) into a final status.
/// Reads are sequential (one reader); writes are sequential (one writer); both may run at the same time.
/// </summary>
internal sealed class ClientCall<TReq, TResp> : IDisposable
    where TReq : class, IMessage<TReq>
    where TResp : class, IMessage<TResp>
{
    private static readonly CallOptions DefaultOptions = new();

    private readonly RpcChannel _channel;
    private readonly Method<TReq, TResp> _method;
    private readonly CallOptions _options;
    private readonly CancellationTokenSource _abort = new();
    private readonly CancellationTokenSource? _deadlineTimer;
    private readonly CancellationTokenRegistration _callerRegistration;
    private readonly CancellationTokenRegistration _deadlineRegistration;
    private readonly byte[] _prefix = new byte[GrpcWire.PrefixSize];

    /// <summary>The final status: null for OK, else the exception every later operation throws.</summary>
    private readonly TaskCompletionSource<Exception?> _status = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Serializes reads of the response body (the consumer's, and a writer's drain after the server closed the request).</summary>
    private readonly SemaphoreSlim _readLock = new(1, 1);

    /// <summary>Messages read ahead by such a drain, served before anything else.</summary>
    private Queue<TResp>? _readAhead;

    private StreamingRequestContent? _streamingContent;
    private Task _headers = Task.CompletedTask;
    private HttpResponseMessage? _response;
    private Stream? _responseStream;
    private int _finished;
    private volatile bool _disposed;
    private volatile bool _deadlineExceeded;
    private volatile RpcException? _abortError;
    private volatile StrongBox<CancellationToken>? _cancelledBy;

    public ClientCall(RpcChannel channel, Method<TReq, TResp> method, CallOptions? options)
    {
        _channel = channel;
        _method = method;
        _options = options ?? DefaultOptions;
        if (_options.Headers is { } headers)
        {
            foreach (var (name, value) in headers)
            {
                if (!GrpcWire.IsValidCustomMetadata(name, value ?? ""))
                {
                    throw new ArgumentException($"invalid custom request header '{name}' (lower-case token name, printable ASCII value, not reserved)", nameof(options));
                }
            }
        }

        if (_options.Timeout is { } timeout)
        {
            if (timeout <= TimeSpan.Zero)
            {
                _deadlineExceeded = true;
                _abort.Cancel();
            }
            else if (timeout.TotalMilliseconds < uint.MaxValue - 1)
            {
                _deadlineTimer = new CancellationTokenSource(timeout);
                _deadlineRegistration = _deadlineTimer.Token.UnsafeRegister(static s =>
                {
                    var call = (ClientCall<TReq, TResp>)s!;
                    call._deadlineExceeded = true;
                    call._abort.Cancel();
                }, this);
            }
        }
        if (_options.CancellationToken.CanBeCanceled)
        {
            _callerRegistration = _options.CancellationToken.UnsafeRegister(
                static (s, token) => ((ClientCall<TReq, TResp>)s!).CancelByCaller(token), this);
        }
    }

    public string FullName => _method.FullName;

    // ---- starting ----

    /// <summary>Starts a call whose single request message is already framed.</summary>
    public void StartUnary(byte[] framedRequest) => Start(new FramedContent(framedRequest));

    /// <summary>Starts a call whose request messages are pushed later through <see cref="WriteMessageAsync"/>.</summary>
    public void StartStreaming()
    {
        _streamingContent = new StreamingRequestContent();
        Start(_streamingContent);
    }

    private void Start(HttpContent content)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_channel.Address, _method.FullName))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = content,
        };
        request.Headers.TryAddWithoutValidation("te", "trailers");
        request.Headers.TryAddWithoutValidation("user-agent", RpcChannel.UserAgent);
        if (_options.Timeout is { } timeout)
        {
            request.Headers.TryAddWithoutValidation("grpc-timeout", GrpcWire.EncodeTimeout(timeout));
        }
        if (_options.Headers is { } headers)
        {
            foreach (var (name, value) in headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        }

        Task<HttpResponseMessage> send;
        try
        {
            send = _channel.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, _abort.Token);
        }
        catch (Exception ex)
        {
            send = Task.FromException<HttpResponseMessage>(ex);
        }
        _headers = ReceiveHeadersAsync(send);
        // Whoever needs the headers observes the failure; keep an unobserved one from being reported.
        _headers.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task ReceiveHeadersAsync(Task<HttpResponseMessage> send)
    {
        HttpResponseMessage response;
        try
        {
            response = await send.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            throw Fail(ex);
        }
        _response = response;
        if (_disposed)
        {
            response.Dispose();
            throw Fail(new ObjectDisposedException(nameof(ClientCall<TReq, TResp>)));
        }

        // A status in the headers: a Trailers-Only response (or a server that puts it there on any error).
        if (GetHeader(response.Headers, "grpc-status") is not null)
        {
            var status = ReadStatus(response, trailersOnly: true);
            Finish(status);
            response.Dispose();
            if (status is not null)
            {
                throw status;
            }
            return;
        }

        var httpStatus = (int)response.StatusCode;
        if (httpStatus != 200)
        {
            throw Abort(new RpcException(GrpcWire.FromHttpStatus(httpStatus),
                $"{FullName}: HTTP status {httpStatus} {response.ReasonPhrase} without a grpc-status"));
        }
        var contentType = GetHeader(response.Content.Headers, "content-type");
        if (!GrpcWire.IsGrpcContentType(contentType))
        {
            throw Abort(new RpcException(StatusCode.Unknown,
                $"{FullName}: unexpected response content-type '{contentType}' (expected {GrpcWire.ContentType})"));
        }
        try
        {
            _responseStream = await response.Content.ReadAsStreamAsync(_abort.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            throw Fail(ex);
        }
    }

    // ---- reading ----

    /// <summary>The next response message, or null once the call has ended with OK. Throws the call's error otherwise.</summary>
    public async ValueTask<TResp?> ReadNextAsync(CancellationToken cancellationToken)
    {
        CancellationTokenRegistration registration = default;
        if (cancellationToken.CanBeCanceled)
        {
            registration = cancellationToken.UnsafeRegister(
                static (s, token) => ((ClientCall<TReq, TResp>)s!).CancelByCaller(token), this);
        }
        try
        {
            return await ReadNextCoreAsync().ConfigureAwait(false);
        }
        finally
        {
            registration.Dispose();
        }
    }

    private async ValueTask<TResp?> ReadNextCoreAsync()
    {
        await _headers.ConfigureAwait(false);
        await _readLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_readAhead is { Count: > 0 } readAhead)
            {
                return readAhead.Dequeue();
            }
            return await ReadFromBodyAsync().ConfigureAwait(false);
        }
        finally
        {
            _readLock.Release();
        }
    }

    /// <summary>Reads the next message from the response body, or the final status at its end. Caller holds the read lock.</summary>
    private async ValueTask<TResp?> ReadFromBodyAsync()
    {
        if (Volatile.Read(ref _finished) != 0)
        {
            var status = await _status.Task.ConfigureAwait(false);
            return status is null ? null : throw status;
        }

        TResp? message;
        try
        {
            message = await GrpcWire.ReadMessageAsync(_responseStream!, _method.ResponseParser, _channel.Limits.MaxMessageBytes,
                _prefix, StatusCode.Internal, StatusCode.Internal, _abort.Token).ConfigureAwait(false);
        }
        catch (RpcException ex) when (!_abort.IsCancellationRequested)
        {
            // Framing error (oversized, truncated, compressed, unparseable): give up on the whole call.
            throw Abort(new RpcException(ex.Status, $"{FullName}: {ex.Detail}"));
        }
        catch (Exception ex)
        {
            throw Fail(ex);
        }
        if (message is not null)
        {
            return message;
        }

        // End of the response body: the trailers are in.
        var final = ReadStatus(_response!, trailersOnly: false);
        Finish(final);
        _response!.Dispose();
        return final is null ? null : throw final;
    }

    // ---- writing ----

    /// <summary>Frames, writes and flushes one request message. Sequential use only.</summary>
    public async ValueTask WriteMessageAsync(TReq message, CancellationToken cancellationToken)
    {
        var content = _streamingContent ?? throw new InvalidOperationException("this call has no request stream");
        if (Volatile.Read(ref _finished) != 0)
        {
            var status = await _status.Task.ConfigureAwait(false);
            throw status ?? new InvalidOperationException($"{FullName}: the call has already completed; no more request messages can be sent");
        }

        var buffer = GrpcWire.RentFramed(message, _channel.Limits.MaxMessageBytes, out var length);
        CancellationTokenRegistration registration = default;
        try
        {
            if (cancellationToken.CanBeCanceled)
            {
                // Cancelling a write may leave half a message on the wire, so it ends the call.
                registration = cancellationToken.UnsafeRegister(
                    static (s, token) => ((ClientCall<TReq, TResp>)s!).CancelByCaller(token), this);
            }
            var stream = await content.StreamTask.WaitAsync(_abort.Token).ConfigureAwait(false);
            await stream.WriteAsync(buffer.AsMemory(0, length), _abort.Token).ConfigureAwait(false);
            await stream.FlushAsync(_abort.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            throw await TranslateWriteFailureAsync(ex).ConfigureAwait(false);
        }
        finally
        {
            registration.Dispose();
            GrpcWire.ReturnBuffer(buffer);
        }
    }

    /// <summary>Half-closes the request stream (END_STREAM once the pending writes are out).</summary>
    public void CompleteRequest() => _streamingContent?.Complete();

    private async Task<Exception> TranslateWriteFailureAsync(Exception ex)
    {
        if (ex is RpcException || _cancelledBy is not null || _deadlineExceeded || _disposed || _abortError is not null)
        {
            return Translate(ex);
        }

        // Most often the server has ended the call while we were still sending: it sends its trailers and then
        // resets the request side with NO_ERROR, which SocketsHttpHandler reports to the writer as a cancellation
        // while keeping the complete response. Report the server's status then, even if nobody has read the
        // response yet (duplex): the rest of the response is already buffered, so it is read ahead.
        if (!_status.Task.IsCompleted && !_headers.IsCompleted)
        {
            await Task.WhenAny(_headers, Task.Delay(TimeSpan.FromSeconds(1))).ConfigureAwait(false);
        }
        var closedByServer = ex is OperationCanceledException or ObjectDisposedException || _streamingContent?.ClosedByTransport == true;
        if (!_status.Task.IsCompleted && closedByServer && _headers.IsCompletedSuccessfully)
        {
            await _readLock.WaitAsync().ConfigureAwait(false);
            try
            {
                while (await ReadFromBodyAsync().ConfigureAwait(false) is { } message)
                {
                    (_readAhead ??= new Queue<TResp>()).Enqueue(message);
                }
            }
            catch (Exception)
            {
                // the final status (or failure) is now recorded in _status
            }
            finally
            {
                _readLock.Release();
            }
        }
        if (_status.Task.IsCompletedSuccessfully)
        {
            return _status.Task.Result
                ?? new InvalidOperationException($"{FullName}: the call has already completed; no more request messages can be sent");
        }
        return Translate(ex);
    }

    // ---- ending ----

    private void CancelByCaller(CancellationToken token)
    {
        Interlocked.CompareExchange(ref _cancelledBy, new StrongBox<CancellationToken>(token), null);
        _abort.Cancel();
    }

    /// <summary>Ends the call locally with <paramref name="error"/> and resets the HTTP/2 stream.</summary>
    public RpcException Abort(RpcException error)
    {
        _abortError ??= error;
        _abort.Cancel();
        Finish(_abortError);
        return _abortError;
    }

    private Exception Fail(Exception ex)
    {
        var error = Translate(ex);
        Finish(error);
        _abort.Cancel();
        return error;
    }

    private void Finish(Exception? status)
    {
        if (Interlocked.Exchange(ref _finished, 1) == 0)
        {
            _status.TrySetResult(status);
            if (status is null)
            {
                _streamingContent?.Complete();
            }
            else
            {
                _streamingContent?.Fail(status);
            }
        }
    }

    private Exception Translate(Exception ex)
    {
        if (_cancelledBy is { } cancelledBy)
        {
            return new OperationCanceledException($"{FullName}: the call was cancelled", ex, cancelledBy.Value);
        }
        if (_deadlineExceeded)
        {
            return new RpcException(StatusCode.DeadlineExceeded, $"{FullName}: deadline of {_options.Timeout} exceeded");
        }
        if (_abortError is { } abortError)
        {
            return abortError;
        }
        if (ex is RpcException)
        {
            return ex;
        }
        if (_disposed)
        {
            return new RpcException(StatusCode.Cancelled, $"{FullName}: the call was disposed");
        }
        if (ex is OperationCanceledException && _streamingContent?.ClosedByTransport == true && !_headers.IsCompletedSuccessfully)
        {
            // SocketsHttpHandler cancels the request body when the stream is reset, e.g. REFUSED_STREAM from a
            // server at its concurrent-stream limit (a fresh connection's first requests can exceed it).
            return new RpcException(StatusCode.Unavailable, $"{FullName}: the server refused or reset the stream before responding");
        }
        return MapTransportFailure(ex, FullName);
    }

    /// <summary>Connection/HTTP-level failure → status: HTTP/2 error codes per the spec, anything else Unavailable.</summary>
    internal static RpcException MapTransportFailure(Exception ex, string what)
    {
        for (var e = ex; e is not null; e = e.InnerException)
        {
            if (e is HttpProtocolException protocol)
            {
                return new RpcException(GrpcWire.FromHttp2ErrorCode(protocol.ErrorCode), $"{what}: {Describe(ex)}");
            }
        }
        if (ex is HttpRequestException or IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            return new RpcException(StatusCode.Unavailable, $"{what}: {Describe(ex)}");
        }
        return new RpcException(StatusCode.Unknown, $"{what}: {Describe(ex)}");
    }

    private static string Describe(Exception ex)
    {
        var text = $"{ex.GetType().Name}: {ex.Message}";
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
        {
            text += $" ---> {inner.GetType().Name}: {inner.Message}";
        }
        return text;
    }

    // ---- status from headers / trailers ----

    private RpcException? ReadStatus(HttpResponseMessage response, bool trailersOnly)
    {
        HttpHeaders source = trailersOnly ? response.Headers : response.TrailingHeaders;
        var statusText = GetHeader(source, "grpc-status");
        if (statusText is null)
        {
            return new RpcException(StatusCode.Internal,
                $"{FullName}: the response ended without a grpc-status trailer", CustomMetadata(response));
        }
        if (!int.TryParse(statusText, NumberStyles.None, CultureInfo.InvariantCulture, out var code))
        {
            return new RpcException(StatusCode.Unknown, $"{FullName}: invalid grpc-status '{statusText}'", CustomMetadata(response));
        }
        if (code == 0)
        {
            return null;
        }
        var message = GetHeader(source, "grpc-message");
        var detail = message is null ? "" : GrpcWire.PercentDecode(message);
        var statusCode = code <= (int)StatusCode.Unauthenticated ? (StatusCode)code : StatusCode.Unknown;
        return new RpcException(statusCode, detail, CustomMetadata(response));
    }

    private static Dictionary<string, string> CustomMetadata(HttpResponseMessage response)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        Collect(response.Headers);
        Collect(response.TrailingHeaders);
        return result;

        void Collect(HttpHeaders headers)
        {
            foreach (var (name, values) in headers.NonValidated)
            {
                if (!GrpcWire.IsReservedHeader(name))
                {
                    result[name.ToLowerInvariant()] = values.ToString();
                }
            }
        }
    }

    private static string? GetHeader(HttpHeaders headers, string name) =>
        headers.NonValidated.TryGetValues(name, out var values) ? values.ToString() : null;

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (Volatile.Read(ref _finished) == 0)
        {
            Finish(new RpcException(StatusCode.Cancelled, $"{FullName}: the call was disposed"));
            _abort.Cancel();
        }
        _callerRegistration.Dispose();
        _deadlineRegistration.Dispose();
        _deadlineTimer?.Dispose();
        _response?.Dispose();
    }
}

/// <summary>Request body holding one pre-framed message (unary and server-streaming calls).</summary>
internal sealed class FramedContent : HttpContent
{
    private readonly byte[] _frame;

    public FramedContent(byte[] frame)
    {
        _frame = frame;
        Headers.ContentType = new MediaTypeHeaderValue(GrpcWire.ContentType);
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
        stream.WriteAsync(_frame, cancellationToken).AsTask();

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}

/// <summary>
/// Request body that hands the HTTP/2 request stream to the call's writer and stays open until the
/// writer completes (half-close) or the call ends.
/// </summary>
internal sealed class StreamingRequestContent : HttpContent
{
    private readonly TaskCompletionSource<Stream> _stream = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _complete = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public StreamingRequestContent()
    {
        Headers.ContentType = new MediaTypeHeaderValue(GrpcWire.ContentType);
    }

    public Task<Stream> StreamTask => _stream.Task;

    /// <summary>The HTTP layer ended the request body (e.g. the server reset it after completing its response).</summary>
    public bool ClosedByTransport { get; private set; }

    public void Complete() => _complete.TrySetResult();

    public void Fail(Exception error)
    {
        if (_stream.TrySetException(error))
        {
            _ = _stream.Task.Exception; // observed: writers that come later see it through StreamTask
        }
        _complete.TrySetResult();
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        // SocketsHttpHandler keeps the HEADERS frame of a request with a body buffered until body data is
        // flushed; flush now so that the server sees the call even before (or without) a first message.
        await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        _stream.TrySetResult(stream);
        try
        {
            await _complete.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            ClosedByTransport = true;
            throw;
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
