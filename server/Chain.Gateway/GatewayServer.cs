using Chain.Client;
using Chain.Gateway.BuildCache;
using Chain.Gateway.S3;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Chain.Gateway;

/// <summary>
/// The HTTP gateway: Kestrel (HTTP/1.1, keep-alive) in front of one <see cref="ChainClient"/>. Endpoint groups that own
/// a path prefix (e.g. a build cache) are mapped in <see cref="MapEndpointGroups"/>; every other path is S3 (path-style).
/// At most <see cref="GatewayOptions.MaxConcurrentRequests"/> requests run at once; beyond that: 503 SlowDown.
/// </summary>
public sealed class GatewayServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ChainClient _client;

    private GatewayServer(WebApplication app, ChainClient client, Uri address)
    {
        _app = app;
        _client = client;
        Address = address;
    }

    /// <summary>The address it listens on (the bound port when the options asked for port 0).</summary>
    public Uri Address { get; }

    /// <param name="mapGroups">Extra endpoint groups, each under its own path prefix (mapped before S3 takes the rest).</param>
    public static async Task<GatewayServer> StartAsync(GatewayOptions options, ILoggerFactory loggers, Action<IEndpointRouteBuilder>? mapGroups = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggers);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(options.Listen, listen => listen.Protocols = HttpProtocols.Http1);
            // Bodies are streamed and their size checked by the handlers (EntityTooLarge), not by Kestrel.
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Limits.MinRequestBodyDataRate = null;
            kestrel.AddServerHeader = false;
        });
        var client = new ChainClient(new ChainClientOptions { Master = options.Master });
        WebApplication app = builder.Build();
        var s3 = new S3Api(client, options, loggers.CreateLogger("Chain.Gateway.S3"));
        int inFlight = 0;
        app.Use(async (context, next) =>
        {
            if (Interlocked.Increment(ref inFlight) > options.MaxConcurrentRequests)
            {
                Interlocked.Decrement(ref inFlight);
                await S3Exception.WriteAsync(context, 503, "SlowDown", "Please reduce your request rate.").ConfigureAwait(false);
                return;
            }
            try
            {
                await next(context).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref inFlight);
            }
        });
        app.UseRouting();
        if (options.BuildCache is { } buildCache)
            app.MapBuildCache(options.BuildCachePrefix, client, buildCache);
        MapEndpointGroups(app, mapGroups);
        app.UseEndpoints(_ => { });
        app.Run(s3.HandleAsync);
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            client.Dispose();
            throw;
        }
        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new GatewayServer(app, client, new Uri(bound.Replace("[::]", "127.0.0.1", StringComparison.Ordinal)));
    }

    /// <summary>The one place where endpoint groups other than S3 are mapped; S3 answers every path none of them claims.</summary>
    private static void MapEndpointGroups(IEndpointRouteBuilder endpoints, Action<IEndpointRouteBuilder>? mapGroups) => mapGroups?.Invoke(endpoints);

    public async Task StopAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync().ConfigureAwait(false);
        await _client.DisposeAsync().ConfigureAwait(false);
    }
}
