using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Chain.Rpc.Server;

public sealed record RpcServerOptions
{
    public RpcLimits Limits { get; init; } = new();

    public int MaxConcurrentStreamsPerConnection { get; init; } = 256;

    /// <summary>Where Kestrel and the dispatcher log. Null: nothing is logged.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>Extra HTTP endpoints (health, metrics...) served next to the RPC methods.</summary>
    public Action<IEndpointRouteBuilder>? MapExtraEndpoints { get; init; }
}

/// <summary>
/// A gRPC-wire server on Kestrel: HTTP/2 only over plain TCP (h2c with prior knowledge).
/// </summary>
public sealed class RpcServer : IAsyncDisposable
{
    private static readonly TimeSpan DefaultGrace = TimeSpan.FromSeconds(5);

    private readonly WebApplication _app;
    private readonly object _gate = new();
    private Task? _stopping;
    private int _disposed;

    private RpcServer(WebApplication app, IPEndPoint endpoint)
    {
        _app = app;
        Endpoint = endpoint;
        var host = endpoint.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
            : endpoint.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback
            : endpoint.Address;
        Address = new Uri("http://" + new IPEndPoint(host, endpoint.Port).ToString());
    }

    /// <summary>The endpoint actually bound (the real port when 0 was asked for).</summary>
    public IPEndPoint Endpoint { get; }

    /// <summary>"http://IP:port" for clients; a wildcard bind address is given as the loopback address.</summary>
    public Uri Address { get; }

    public static async Task<RpcServer> StartAsync(IPEndPoint endpoint, RpcServiceRegistry services, RpcServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentNullException.ThrowIfNull(services);
        options ??= new RpcServerOptions();
        if (options.MaxConcurrentStreamsPerConnection <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "MaxConcurrentStreamsPerConnection must be positive");
        }

        // An empty builder: no configuration sources (environment, appsettings, command line), no logging
        // providers, no console lifetime, so the embedding process keeps control of all of these.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(RpcServer).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.Services.AddLogging();
        if (options.LoggerFactory is { } loggerFactory)
        {
            builder.Services.AddSingleton(loggerFactory);
        }
        builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
        builder.Services.AddRoutingCore();
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            var limits = kestrel.Limits;
            limits.MaxRequestBodySize = null;       // streams are unbounded; messages are limited one by one
            limits.MinRequestBodyDataRate = null;   // streams may idle
            limits.MinResponseDataRate = null;
            limits.Http2.MaxStreamsPerConnection = options.MaxConcurrentStreamsPerConnection;
            limits.Http2.InitialConnectionWindowSize = 4 * 1024 * 1024;
            limits.Http2.InitialStreamWindowSize = 2 * 1024 * 1024;
            limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(30);
            limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);
            kestrel.Listen(endpoint, listen => listen.Protocols = HttpProtocols.Http2);
        });

        var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Chain.Rpc.Server");
        var dispatcher = new RpcDispatcher(services, options.Limits, logger);
        app.Use(next => http => dispatcher.InvokeAsync(http, next));
        app.UseRouting();
        options.MapExtraEndpoints?.Invoke(app);

        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        var port = endpoint.Port;
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
        if (addresses is not null)
        {
            foreach (var address in addresses)
            {
                if (Uri.TryCreate(address, UriKind.Absolute, out var uri))
                {
                    port = uri.Port;
                    break;
                }
            }
        }
        return new RpcServer(app, new IPEndPoint(endpoint.Address, port));
    }

    /// <summary>
    /// Stops accepting connections and lets calls in flight finish for up to <paramref name="grace"/>
    /// (default 5 s); then the remaining calls are aborted (their handlers' tokens fire). Idempotent.
    /// </summary>
    public Task StopAsync(TimeSpan? grace = null)
    {
        lock (_gate)
        {
            return _stopping ??= StopCoreAsync(grace ?? DefaultGrace);
        }
    }

    private async Task StopCoreAsync(TimeSpan grace)
    {
        using var timeout = new CancellationTokenSource(grace < TimeSpan.Zero ? TimeSpan.Zero : grace);
        try
        {
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // grace period over: Kestrel has aborted what was left
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await StopAsync(TimeSpan.Zero).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Keeps the host from hooking Ctrl+C / SIGTERM: the embedding process decides when to stop.</summary>
    private sealed class EmbeddedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

/// <summary>Routes gRPC requests to handlers and turns their outcome into a gRPC status.</summary>
internal sealed class RpcDispatcher(RpcServiceRegistry registry, RpcLimits limits, ILogger logger)
{
    public Task InvokeAsync(HttpContext http, RequestDelegate next)
    {
        var request = http.Request;
        var path = request.Path.Value ?? "";
        var method = registry.Find(path);
        var contentType = request.ContentType;
        if (!GrpcWire.IsGrpcContentType(contentType))
        {
            if (method is not null || (contentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) ?? false))
            {
                http.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
                return Task.CompletedTask;
            }
            return next(http);
        }
        if (!HttpMethods.IsPost(request.Method))
        {
            http.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return Task.CompletedTask;
        }
        http.Response.StatusCode = StatusCodes.Status200OK;
        http.Response.ContentType = GrpcWire.ContentType;
        if (method is null)
        {
            WriteStatus(http, StatusCode.Unimplemented, $"unknown method {path}", null);
            return Task.CompletedTask;
        }
        return RunAsync(http, path, method);
    }

    private async Task RunAsync(HttpContext http, string path, ServerMethod method)
    {
        var request = http.Request;
        using var call = new CallLifetime(http.RequestAborted);

        DateTimeOffset? deadline = null;
        var timeoutHeader = request.Headers["grpc-timeout"];
        if (timeoutHeader.Count > 0)
        {
            if (GrpcWire.TryParseTimeout(timeoutHeader.ToString(), out var timeout))
            {
                var now = DateTimeOffset.UtcNow;
                deadline = DateTimeOffset.MaxValue - now > timeout ? now + timeout : DateTimeOffset.MaxValue;
                call.StartDeadline(timeout);
            }
            else
            {
                logger.LogDebug("{Method}: ignoring malformed grpc-timeout '{Timeout}'", path, timeoutHeader.ToString());
            }
        }

        // Compression is not negotiated: a compressed message is Unimplemented when the client named an
        // encoding we lack, and Internal (protocol violation) when it named none.
        var encoding = request.Headers["grpc-encoding"].ToString();
        var compressedStatus = encoding.Length > 0 && !encoding.Equals("identity", StringComparison.OrdinalIgnoreCase)
            ? StatusCode.Unimplemented
            : StatusCode.Internal;

        var context = new ServerCallContext(path, call.Token, deadline, FormatPeer(http.Connection), SnapshotHeaders(request.Headers));
        var io = new HttpServerCallIo(http, limits.MaxMessageBytes, compressedStatus, call.Token);

        StatusCode status;
        string detail = "";
        IReadOnlyDictionary<string, string>? trailers = null;
        try
        {
            await method.InvokeAsync(io, context).ConfigureAwait(false);
            status = StatusCode.OK;
            if (call.DeadlineExpired)
            {
                status = StatusCode.DeadlineExceeded;
                detail = "deadline exceeded";
            }
        }
        catch (RpcException ex)
        {
            status = ex.Status;
            detail = ex.Detail;
            trailers = ex.Trailers;
        }
        catch (Exception) when (call.DeadlineExpired)
        {
            status = StatusCode.DeadlineExceeded;
            detail = "deadline exceeded";
        }
        catch (Exception ex) when (http.RequestAborted.IsCancellationRequested)
        {
            logger.LogDebug(ex, "{Method}: the client went away", path);
            return;
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "{Method}: handler failed", path);
            status = StatusCode.Internal;
            detail = $"internal error: {ex.GetType().FullName}: {ex.Message}";
        }

        if (http.RequestAborted.IsCancellationRequested)
        {
            return; // the stream is gone; nothing can be sent
        }
        try
        {
            WriteStatus(http, status, detail, trailers);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or OperationCanceledException)
        {
            logger.LogDebug(ex, "{Method}: could not send the status {Status}", path, status);
        }
    }

    /// <summary>
    /// grpc-status, grpc-message and custom trailers: as HTTP/2 trailers after the messages, or in the
    /// headers (Trailers-Only) when no message was written.
    /// </summary>
    private void WriteStatus(HttpContext http, StatusCode status, string detail, IReadOnlyDictionary<string, string>? trailers)
    {
        var response = http.Response;
        var trailersOnly = !response.HasStarted;
        void Put(string name, string value)
        {
            if (trailersOnly)
            {
                response.Headers[name] = value;
            }
            else
            {
                response.AppendTrailer(name, value);
            }
        }

        Put("grpc-status", ((int)status).ToString(CultureInfo.InvariantCulture));
        if (detail.Length > 0)
        {
            Put("grpc-message", GrpcWire.PercentEncode(GrpcWire.TrimDetail(detail)));
        }
        if (trailers is not null)
        {
            foreach (var (rawName, value) in trailers)
            {
                var name = rawName.ToLowerInvariant();
                if (GrpcWire.IsValidCustomMetadata(name, value ?? ""))
                {
                    Put(name, value ?? "");
                }
                else
                {
                    logger.LogWarning("{Method}: dropping invalid or reserved trailer '{Name}'", http.Request.Path.Value, rawName);
                }
            }
        }
    }

    private static string FormatPeer(ConnectionInfo connection)
    {
        var ip = connection.RemoteIpAddress;
        if (ip is null)
        {
            return "unknown";
        }
        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }
        return ip.AddressFamily == AddressFamily.InterNetworkV6
            ? $"ipv6:[{ip}]:{connection.RemotePort}"
            : $"ipv4:{ip}:{connection.RemotePort}";
    }

    private static Dictionary<string, string> SnapshotHeaders(IHeaderDictionary headers)
    {
        var copy = new Dictionary<string, string>(headers.Count, StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in headers)
        {
            copy[name] = values.ToString();
        }
        return copy;
    }

    /// <summary>The call's token: client abort, or the grpc-timeout deadline (remembered, to report DeadlineExceeded).</summary>
    private sealed class CallLifetime : IDisposable
    {
        private readonly CancellationTokenSource _cts;
        private CancellationTokenSource? _deadline;
        private CancellationTokenRegistration _deadlineRegistration;
        private volatile bool _deadlineExpired;

        public CallLifetime(CancellationToken requestAborted) =>
            _cts = CancellationTokenSource.CreateLinkedTokenSource(requestAborted);

        public CancellationToken Token => _cts.Token;

        public bool DeadlineExpired => _deadlineExpired;

        public void StartDeadline(TimeSpan timeout)
        {
            if (timeout <= TimeSpan.Zero)
            {
                _deadlineExpired = true;
                _cts.Cancel();
                return;
            }
            if (timeout.TotalMilliseconds >= uint.MaxValue - 1)
            {
                return; // beyond what a timer can hold (~49 days): effectively none
            }
            _deadline = new CancellationTokenSource(timeout);
            _deadlineRegistration = _deadline.Token.UnsafeRegister(static s =>
            {
                var self = (CallLifetime)s!;
                self._deadlineExpired = true;
                self._cts.Cancel();
            }, this);
        }

        /// <summary>The call is over: work still tied to its token is cancelled.</summary>
        public void Dispose()
        {
            _deadlineRegistration.Dispose();
            _deadline?.Dispose();
            try
            {
                _cts.Cancel();
            }
            catch (AggregateException)
            {
                // a callback registered by a handler threw; the call is over anyway
            }
            _cts.Dispose();
        }
    }
}
