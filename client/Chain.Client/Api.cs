// PUBLIC CONTRACT of the client library (records and exceptions). ChainClient's methods are listed in ChainClient.cs.
namespace Chain.Client;

public sealed record ChainClientOptions
{
    /// <summary>The master's address, e.g. http://127.0.0.1:7400.</summary>
    public required Uri Master { get; init; }
    /// <summary>Overall deadline of one operation including retries.</summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Deadline of one attempt of a unary call.</summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Upper bound on attempts of one operation.</summary>
    public int MaxAttempts { get; init; } = 16;
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(50);
    /// <summary>
    /// Where reads (get, stat, list) go; both are linearizable. <see cref="ReadTarget.AnyReplica"/> spreads them over
    /// the chain's members (CRAQ): a member serves an object it holds clean, and redirects the read to the tail
    /// (read-at-tail, retried there at once) while a write of it is in flight. <see cref="ReadTarget.Tail"/> sends
    /// every read to the tail.
    /// </summary>
    public ReadTarget ReadFrom { get; init; } = ReadTarget.AnyReplica;
    /// <summary>
    /// Objects up to this size are stored inline on their key's chain (one update); larger ones are cut into chunks of
    /// this size, each stored on the chain its SHA-256 picks, then committed with a manifest. Default 4 MiB
    /// (allowed: 256 KiB to 8 MiB).
    /// </summary>
    public int ChunkBytes { get; init; } = Chain.Protocol.Limits.ChunkBytes;
    /// <summary>Chunk uploads of one large put in flight at once (memory: about this many chunks).</summary>
    public int UploadParallelism { get; init; } = 4;
    /// <summary>Chunks of one large get fetched ahead at once.</summary>
    public int DownloadParallelism { get; init; } = 4;
}

public sealed record ObjectInfo(string Bucket, string Key, long Size, string Sha256Hex, ulong Version, DateTimeOffset Created, string ContentType)
{
    /// <summary>The metadata given with <see cref="PutOptions.UserMetadata"/> (empty when none).</summary>
    public IReadOnlyDictionary<string, string> UserMetadata { get; init; } = EmptyMetadata;

    private static readonly IReadOnlyDictionary<string, string> EmptyMetadata = new Dictionary<string, string>();

    // Equality by value, metadata entries included (a record would compare the dictionary's reference).
    public bool Equals(ObjectInfo? other) =>
        other is not null && Bucket == other.Bucket && Key == other.Key && Size == other.Size && Sha256Hex == other.Sha256Hex
        && Version == other.Version && Created == other.Created && ContentType == other.ContentType
        && UserMetadata.Count == other.UserMetadata.Count
        && UserMetadata.All(kv => other.UserMetadata.TryGetValue(kv.Key, out string? value) && value == kv.Value);

    public override int GetHashCode() => HashCode.Combine(Bucket, Key, Size, Sha256Hex, Version, Created, ContentType, UserMetadata.Count);
}

public sealed record PutResult(string Bucket, string Key, long Size, string Sha256Hex, ulong Version, bool Deduplicated);

public enum ReadTarget
{
    /// <summary>Every read at the chain's tail.</summary>
    Tail,
    /// <summary>Each read at a random member of the chain (CRAQ; never a syncing node), redirected to the tail when needed.</summary>
    AnyReplica,
}

public sealed record PutOptions
{
    /// <summary>Write only if the object exists with exactly this version (compare-and-set); else <see cref="PreconditionFailedException"/>.</summary>
    public ulong? IfVersion { get; init; }
    /// <summary>Write only if the object does not exist (create-only); else <see cref="PreconditionFailedException"/>.</summary>
    public bool IfAbsent { get; init; }
    public string ContentType { get; init; } = "application/octet-stream";
    public IReadOnlyDictionary<string, string>? UserMetadata { get; init; }
    /// <summary>Called with the number of bytes sent so far (for progress bars).</summary>
    public IProgress<long>? Progress { get; init; }
}

public sealed record BucketInfo(string Name, DateTimeOffset Created);

public sealed record ChainView(uint ChainId, ulong Epoch, IReadOnlyList<string> NodeIds);

public sealed record NodeView(string NodeId, string Address, bool Alive, DateTimeOffset? LastHeartbeat)
{
    /// <summary>The node's zone (failure domain); empty when it has none.</summary>
    public string Zone { get; init; } = "";
}

public sealed record ClusterStatus(ulong ConfigVersion, int Replicas, IReadOnlyList<ChainView> Chains, IReadOnlyList<NodeView> Nodes, IReadOnlyList<BucketInfo> Buckets);

/// <summary>Base of every error the client throws for a failed operation.</summary>
public class ChainException : Exception
{
    public ChainException(string message, Exception? inner = null) : base(message, inner) { }
}

public sealed class ObjectNotFoundException : ChainException
{
    public ObjectNotFoundException(string bucket, string key) : base($"object '{bucket}/{key}' not found") { Bucket = bucket; Key = key; }
    public string Bucket { get; }
    public string Key { get; }
}

public sealed class BucketNotFoundException : ChainException
{
    public BucketNotFoundException(string bucket) : base($"bucket '{bucket}' does not exist") { Bucket = bucket; }
    public string Bucket { get; }
}

/// <summary>DeleteBucket refused: the bucket still holds objects (nothing was changed).</summary>
public sealed class BucketNotEmptyException : ChainException
{
    public BucketNotEmptyException(string bucket, string detail, Exception? inner = null) : base(detail, inner) { Bucket = bucket; }
    public string Bucket { get; }
}

/// <summary>The bucket is being deleted: it takes no new objects and cannot be created again until that ends.</summary>
public sealed class BucketDeletingException : ChainException
{
    public BucketDeletingException(string bucket, string detail, Exception? inner = null) : base(detail, inner) { Bucket = bucket; }
    public string Bucket { get; }
}

/// <summary>The request itself is wrong (bad key, bad bucket name, ...); retrying cannot help.</summary>
public sealed class ChainArgumentException : ChainException
{
    public ChainArgumentException(string message, Exception? inner = null) : base(message, inner) { }
}

public sealed class ObjectTooLargeException : ChainException
{
    public ObjectTooLargeException(string message) : base(message) { }
}

/// <summary>Data failed verification (digest mismatch on write or read).</summary>
public sealed class IntegrityException : ChainException
{
    public IntegrityException(string message) : base(message) { }
}

/// <summary>A conditional write's condition did not hold when the head sequenced it; nothing was written.</summary>
public sealed class PreconditionFailedException : ChainException
{
    public PreconditionFailedException(string bucket, string key, string detail)
        : base($"precondition failed for '{bucket}/{key}': {detail}") { Bucket = bucket; Key = key; }
    public string Bucket { get; }
    public string Key { get; }
}

/// <summary>The cluster could not complete the operation within its deadline and retries.</summary>
public sealed class ChainUnavailableException : ChainException
{
    public ChainUnavailableException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>Options of <see cref="ChainClient.ListPageAsync"/>, after S3's ListObjectsV2.</summary>
public sealed record ListRequestOptions
{
    /// <summary>Only keys that start with this (empty: all keys).</summary>
    public string Prefix { get; init; } = "";

    /// <summary>
    /// Keys that contain this after <see cref="Prefix"/> roll up into one common prefix each (the prefix plus the part of
    /// the key up to and including the delimiter's first occurrence); null or empty: no roll-up.
    /// </summary>
    public string? Delimiter { get; init; }

    /// <summary>Only entries that sort after this key; ignored when <see cref="ContinuationToken"/> is set.</summary>
    public string? StartAfter { get; init; }

    /// <summary>The <see cref="ListPage.NextContinuationToken"/> of the previous page, with the same prefix and delimiter.</summary>
    public string? ContinuationToken { get; init; }

    /// <summary>At most this many entries (objects plus common prefixes) per page, 1 to 1000.</summary>
    public int MaxKeys { get; init; } = 1000;
}

/// <summary>One page of a listing: objects and common prefixes, each in key order (unsigned bytes of the UTF-8 key).</summary>
public sealed record ListPage(
    IReadOnlyList<ObjectInfo> Objects,
    IReadOnlyList<string> CommonPrefixes,
    bool IsTruncated,
    string? NextContinuationToken);
