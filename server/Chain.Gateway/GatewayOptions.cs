using System.Net;

namespace Chain.Gateway;

/// <summary>Configuration of one gateway process (stateless: everything it stores goes through the client library).</summary>
public sealed record GatewayOptions
{
    public required IPEndPoint Listen { get; init; }

    /// <summary>The cluster's master, e.g. http://127.0.0.1:7400.</summary>
    public required Uri Master { get; init; }

    /// <summary>Access key id → secret; requests must be signed (AWS Signature V4) with one of them.</summary>
    public IReadOnlyDictionary<string, string> AccessKeys { get; init; } = new Dictionary<string, string>();

    /// <summary>Buckets anyone may read (GET/HEAD of objects, listings) without a signature.</summary>
    public IReadOnlySet<string> AnonymousReadBuckets { get; init; } = new HashSet<string>();

    /// <summary>Largest object a PutObject or CopyObject may store (400 EntityTooLarge beyond).</summary>
    public long MaxObjectBytes { get; init; } = Chain.Protocol.Limits.ObjectBytesMaxDefault;

    /// <summary>Requests served at once; more are answered 503 SlowDown.</summary>
    public int MaxConcurrentRequests { get; init; } = 64;

    /// <summary>Largest request body read into memory (CreateBucket configuration, DeleteObjects list).</summary>
    public int MaxXmlBodyBytes { get; init; } = 2 * 1024 * 1024;

    /// <summary>How far a request's signing time may be from the gateway's clock.</summary>
    public TimeSpan MaxClockSkew { get; init; } = TimeSpan.FromMinutes(15);

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// The build caches (ccache, Bazel, Gradle HTTP protocols) under <see cref="BuildCachePrefix"/>; null: none. They have
    /// their own optional bearer/basic auth (<see cref="BuildCache.BuildCacheOptions"/>), not S3 signatures.
    /// </summary>
    public Chain.Gateway.BuildCache.BuildCacheOptions? BuildCache { get; init; }

    /// <summary>
    /// Where the build caches live: "/_cache" by default — not a valid bucket name, so no S3 path is shadowed
    /// (ccache: remote_storage = http://HOST:PORT/_cache|layout=subdirs; Bazel: --remote_cache=http://HOST:PORT/_cache).
    /// </summary>
    public string BuildCachePrefix { get; init; } = DefaultBuildCachePrefix;

    public const string DefaultBuildCachePrefix = "/_cache";

    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxObjectBytes, 0, nameof(MaxObjectBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConcurrentRequests, 1, nameof(MaxConcurrentRequests));
        if (BuildCache is not null && (BuildCachePrefix.Length < 2 || BuildCachePrefix[0] != '/' || BuildCachePrefix[1] is >= 'a' and <= 'z' or >= '0' and <= '9'))
            throw new ArgumentException($"build cache prefix '{BuildCachePrefix}' must start with '/' and a character no bucket name starts with (e.g. /_cache)");
        foreach (var (id, secret) in AccessKeys)
        {
            if (id.Length == 0 || secret.Length == 0)
                throw new ArgumentException("access keys need a non-empty id and secret");
        }
    }
}
