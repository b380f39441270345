// PUBLIC CONTRACT of multipart uploads (records and exceptions); the methods are in ChainClient.Multipart.cs.
namespace Chain.Client;

/// <summary>Options of <see cref="ChainClient.InitiateMultipartAsync"/>: what the completed object will carry.</summary>
public sealed record MultipartOptions
{
    public string ContentType { get; init; } = "application/octet-stream";
    public IReadOnlyDictionary<string, string>? UserMetadata { get; init; }
}

/// <summary>One chunk of a part: its id (hex SHA-256) and size.</summary>
public sealed record ChunkInfo(string Sha256Hex, int Size);

/// <summary>
/// One stored part. <see cref="ETag"/> is the hex MD5 of the part (no quotes). <see cref="Chunks"/> is filled by
/// <see cref="ChainClient.UploadPartAsync"/> and empty in <see cref="ChainClient.ListPartsPageAsync"/>.
/// </summary>
public sealed record PartInfo(int PartNumber, long Size, string ETag, string Sha256Hex, DateTimeOffset LastModified, IReadOnlyList<ChunkInfo> Chunks);

/// <summary>A part named in a complete request: its number and the ETag its upload returned (quotes allowed).</summary>
public sealed record CompletedPart(int PartNumber, string ETag);

/// <summary>An upload in progress.</summary>
public sealed record MultipartUploadInfo(string Bucket, string Key, string UploadId, DateTimeOffset Initiated);

/// <summary>Options of <see cref="ChainClient.ListMultipartUploadsPageAsync"/>, after S3's ListMultipartUploads.</summary>
public sealed record MultipartUploadListOptions
{
    /// <summary>Only uploads of keys that start with this (empty: all).</summary>
    public string Prefix { get; init; } = "";

    /// <summary>Keys that contain this after <see cref="Prefix"/> roll up into one common prefix each; null or empty: none.</summary>
    public string? Delimiter { get; init; }

    /// <summary>Only uploads of keys after this one (and, with <see cref="UploadIdMarker"/>, this key's uploads after that id).</summary>
    public string? KeyMarker { get; init; }

    /// <summary>With <see cref="KeyMarker"/>: also the uploads of that key whose ids sort after this one; ignored without it.</summary>
    public string? UploadIdMarker { get; init; }

    /// <summary>At most this many entries (uploads plus common prefixes), 1 to 1000.</summary>
    public int MaxUploads { get; init; } = 1000;
}

/// <summary>
/// One page of uploads in progress, by key then initiation, and common prefixes. When truncated, pass
/// <see cref="NextKeyMarker"/> and <see cref="NextUploadIdMarker"/> (empty after a common prefix) as the next markers.
/// </summary>
public sealed record MultipartUploadPage(
    IReadOnlyList<MultipartUploadInfo> Uploads,
    IReadOnlyList<string> CommonPrefixes,
    bool IsTruncated,
    string? NextKeyMarker,
    string? NextUploadIdMarker);

/// <summary>Options of <see cref="ChainClient.ListPartsPageAsync"/>, after S3's ListParts.</summary>
public sealed record PartListOptions
{
    /// <summary>Only parts with a greater number (0: from the first).</summary>
    public int PartNumberMarker { get; init; }

    /// <summary>At most this many parts, 1 to 1000.</summary>
    public int MaxParts { get; init; } = 1000;
}

/// <summary>One page of parts; when truncated, <see cref="NextPartNumberMarker"/> is the next page's marker.</summary>
public sealed record PartPage(IReadOnlyList<PartInfo> Parts, bool IsTruncated, int NextPartNumberMarker);

/// <summary>
/// The completed object. <see cref="ETag"/> is S3's multipart ETag: hex MD5 of the parts' binary MD5s in order, "-",
/// the number of parts; it is also kept in the object's user metadata under
/// <see cref="ChainClient.MultipartETagMetadata"/>.
/// </summary>
public sealed record CompleteMultipartResult(string Bucket, string Key, string ETag, long Size, string Sha256Hex, ulong Version, int Parts);

/// <summary>Base of the multipart errors; <see cref="S3ErrorCode"/> is the error code S3 answers with.</summary>
public abstract class MultipartException : ChainException
{
    protected MultipartException(string s3ErrorCode, string message) : base(message) { S3ErrorCode = s3ErrorCode; }
    public string S3ErrorCode { get; }
}

/// <summary>The upload id does not exist (never did, completed, or aborted) or belongs to another bucket or key.</summary>
public sealed class NoSuchUploadException(string message) : MultipartException("NoSuchUpload", message);

/// <summary>A part named by a complete request is not stored, or its ETag differs; nothing was changed.</summary>
public sealed class InvalidPartException(string message) : MultipartException("InvalidPart", message);

/// <summary>The parts of a complete request are not in strictly ascending part-number order; nothing was changed.</summary>
public sealed class InvalidPartOrderException(string message) : MultipartException("InvalidPartOrder", message);

/// <summary>A part other than the last is smaller than 5 MiB; nothing was changed.</summary>
public sealed class EntityTooSmallException(string message) : MultipartException("EntityTooSmall", message);

/// <summary>A part's MD5 differs from the one the caller expected (Content-MD5); the part was not stored.</summary>
public sealed class BadDigestException(string message) : MultipartException("BadDigest", message);
