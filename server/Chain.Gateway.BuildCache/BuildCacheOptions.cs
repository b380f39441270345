namespace Chain.Gateway.BuildCache;

/// <summary>Settings of the build-cache endpoints (ccache, Bazel, Gradle) mapped by <see cref="BuildCacheEndpoints.MapBuildCache"/>.</summary>
public sealed record BuildCacheOptions
{
    /// <summary>The bucket holding the entries; created on first use.</summary>
    public string Bucket { get; init; } = "build-cache";

    /// <summary>Prepended to every entry's object key (e.g. "ccache/"), so several caches can share one bucket.</summary>
    public string KeyPrefix { get; init; } = "";

    /// <summary>Largest entry accepted; a larger PUT is answered 413 and nothing is stored.</summary>
    public long MaxEntryBytes { get; init; } = 256L * 1024 * 1024;

    /// <summary>When set, requests must carry <c>Authorization: Bearer</c> with this token (or the basic credentials below).</summary>
    public string? BearerToken { get; init; }

    /// <summary>When set (with <see cref="BasicPassword"/>), requests may authenticate with HTTP basic auth.</summary>
    public string? BasicUser { get; init; }

    public string? BasicPassword { get; init; }

    /// <summary>Requests served at once; the rest wait up to <see cref="QueueTimeout"/>, then get 503 SlowDown.</summary>
    public int MaxConcurrentRequests { get; init; } = 32;

    public TimeSpan QueueTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>True when any credential is configured: requests without a matching one get 401.</summary>
    public bool RequiresAuth => BearerToken is not null || BasicUser is not null;

    internal void Validate()
    {
        if (Chain.Protocol.Validation.CheckBucket(Bucket) is { } problem)
            throw new ArgumentException($"BuildCacheOptions.Bucket: {problem}");
        ArgumentNullException.ThrowIfNull(KeyPrefix, nameof(KeyPrefix));
        // The longest entry path below the prefix must still make a valid object key.
        var longest = System.Text.Encoding.UTF8.GetBytes(KeyPrefix + new string('x', EntryPath.MaxPathLength));
        if (Chain.Protocol.Validation.CheckKey(longest) is { } keyProblem)
            throw new ArgumentException($"BuildCacheOptions.KeyPrefix: with the longest entry path, {keyProblem}");
        ArgumentOutOfRangeException.ThrowIfNegative(MaxEntryBytes, nameof(MaxEntryBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxConcurrentRequests, 1, nameof(MaxConcurrentRequests));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(QueueTimeout, TimeSpan.Zero, nameof(QueueTimeout));
        if ((BasicUser is null) != (BasicPassword is null))
            throw new ArgumentException("BuildCacheOptions: BasicUser and BasicPassword go together");
        if (BearerToken is "")
            throw new ArgumentException("BuildCacheOptions.BearerToken must not be empty");
    }
}
