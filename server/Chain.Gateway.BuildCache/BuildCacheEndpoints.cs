using Chain.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Chain.Gateway.BuildCache;

public static class BuildCacheEndpoints
{
    /// <summary>
    /// Serves ccache (subdirs, flat and bazel layouts), Bazel's HTTP cache (<c>ac/</c>, <c>cas/</c>) and Gradle's
    /// HttpBuildCache under <paramref name="prefix"/> (e.g. "/cache"): every method, every path below it.
    /// The entries are objects of <see cref="BuildCacheOptions.Bucket"/>, named by the path below the prefix.
    /// </summary>
    public static IEndpointConventionBuilder MapBuildCache(this IEndpointRouteBuilder endpoints, string prefix, ChainClient client, BuildCacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var root = NormalizePrefix(prefix);
        var handler = new BuildCacheHandler(root, client, options);
        return endpoints.Map(root.Value + "/{**entry}", handler.HandleAsync);
    }

    /// <summary>"/cache", "cache/" and "/cache/" are the same prefix: one leading slash, none trailing.</summary>
    internal static PathString NormalizePrefix(string prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var trimmed = prefix.Trim('/');
        if (trimmed.Length == 0)
            throw new ArgumentException("the build-cache prefix must name a path, e.g. /cache", nameof(prefix));
        return new PathString("/" + trimmed);
    }
}
