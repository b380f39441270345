using Chain.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Chain.Gateway.BuildCache;

/// <summary>
/// A standalone Kestrel host serving only the build-cache endpoints (tests, and a template for the gateway, which
/// calls <see cref="BuildCacheEndpoints.MapBuildCache"/> itself). Owns its <see cref="ChainClient"/>.
/// </summary>
public sealed class BuildCacheHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ChainClient _client;

    private BuildCacheHost(WebApplication app, ChainClient client, Uri address)
    {
        _app = app;
        _client = client;
        Address = address;
    }

    /// <summary>The bound address, e.g. http://127.0.0.1:41234 (the cache is at Address + prefix).</summary>
    public Uri Address { get; }

    /// <summary>Starts listening on <paramref name="listen"/> (e.g. "http://127.0.0.1:0" for a free port) with the cache under <paramref name="prefix"/>.</summary>
    public static async Task<BuildCacheHost> StartAsync(string listen, Uri master, BuildCacheOptions options, string prefix = "/cache",
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(master);
        ArgumentNullException.ThrowIfNull(options);
        var client = new ChainClient(new ChainClientOptions { Master = master });
        try
        {
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.Services.AddRoutingCore();
            builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
            {
                kestrel.AddServerHeader = false;
                kestrel.Limits.MaxRequestBodySize = null; // each PUT is bounded by BuildCacheOptions.MaxEntryBytes
            });
            builder.WebHost.UseUrls(listen);
            var app = builder.Build();
            app.UseRouting();
            app.MapBuildCache(prefix, client, options);
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new BuildCacheHost(app, client, new Uri(bound));
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        await _client.DisposeAsync().ConfigureAwait(false);
    }
}
