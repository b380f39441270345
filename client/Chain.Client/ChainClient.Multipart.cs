using System.Security.Cryptography;
using System.Text;
using Chain.Client.Internal;
using Chain.Protocol;
using Chain.Protocol.V1;
using Google.Protobuf;
using ChunkSource = Chain.Client.Internal.ChunkSource;

namespace Chain.Client;

/// <summary>
/// S3 multipart uploads, composed without copying. All state lives in the store, in the upload's bucket under the
/// reserved key prefix <see cref="ReservedPrefix"/> (never listed, refused as a user key), so any client — any
/// stateless gateway — can continue any upload:
/// <list type="bullet">
/// <item>upload record <c>PREFIX u/ID</c>: inline, content = the object key (UTF-8), content type and user metadata
/// of the object to be, created = initiated;</item>
/// <item>part record <c>PREFIX p/ID/NNNNN</c>: a distributed record whose chunks are the part's (PutChunk, like a
/// large object's, even for a small part), user metadata <c>md5</c>. Being a committed record, it holds its chunks
/// against garbage collection until it is deleted (complete or abort).</item>
/// </list>
/// Complete checks the named parts, reads their chunks once to compute the object's SHA-256 (SHA-256 cannot be
/// combined from the parts' digests), and commits one manifest listing every part's chunks in part order: one
/// atomic record switch, so readers see the old object or the whole new one. Then the part and upload records go.
/// </summary>
public sealed partial class ChainClient
{
    /// <summary>Key prefix of multipart upload state (U+0001 first: no S3 tool sends it).</summary>
    internal const string ReservedPrefix = "\u0001chain-mpu/";

    /// <summary>User metadata entry of a completed multipart object holding its S3 ETag.</summary>
    public const string MultipartETagMetadata = "multipart-etag";

    /// <summary>S3's minimum size of every part but the last.</summary>
    public const long PartBytesMin = 5L * 1024 * 1024;

    /// <summary>S3's maximum part size.</summary>
    public const long PartBytesMax = 5L * 1024 * 1024 * 1024;

    public const int PartNumberMax = 10_000;

    private const string PartMd5Metadata = "md5";
    private const int UploadIdBytes = 16;
    /// <summary>Largest inline record read whole into memory (an upload record: one key).</summary>
    private const int RecordBytesMax = 64 * 1024;

    private static readonly byte[] ReservedPrefixBytes = Encoding.UTF8.GetBytes(ReservedPrefix);

    internal static bool IsReservedKey(ReadOnlySpan<byte> key) => key.StartsWith(ReservedPrefixBytes);

    private static string UploadRecordKey(string uploadId) => ReservedPrefix + "u/" + uploadId;

    private static string PartsPrefix(string uploadId) => ReservedPrefix + "p/" + uploadId + "/";

    private static string PartKey(string uploadId, int partNumber) => PartsPrefix(uploadId) + partNumber.ToString("D5", System.Globalization.CultureInfo.InvariantCulture);

    // ------------------------------------------------------------------ public API

    /// <summary>Starts a multipart upload of <paramref name="key"/>; returns its upload id (32 hex digits).</summary>
    public async Task<string> InitiateMultipartAsync(string bucket, string key, MultipartOptions? options = null, CancellationToken cancellationToken = default)
    {
        var keyBytes = CheckObjectArgs(bucket, key);
        options ??= new MultipartOptions();
        string uploadId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(UploadIdBytes));
        string recordKey = UploadRecordKey(uploadId);
        var recordOptions = new PutOptions { ContentType = options.ContentType, UserMetadata = options.UserMetadata, IfAbsent = true };
        await PutCoreAsync(bucket, recordKey, Validation.EncodeKey(recordKey), ChunkSource.For(keyBytes), recordOptions, cancellationToken).ConfigureAwait(false);
        return uploadId;
    }

    /// <summary>
    /// Stores part <paramref name="partNumber"/> (1..10000) of the upload, streaming (memory: a few chunks at any size);
    /// a part number sent again replaces the earlier part. With <paramref name="expectedMd5"/> (16 bytes, S3's
    /// Content-MD5), a part whose MD5 differs is not stored (<see cref="BadDigestException"/>).
    /// </summary>
    public async Task<PartInfo> UploadPartAsync(string bucket, string key, string uploadId, int partNumber, Stream content, byte[]? expectedMd5 = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        CheckObjectArgs(bucket, key);
        if (partNumber is < 1 or > PartNumberMax)
            throw new ChainArgumentException($"part number {partNumber} is not between 1 and {PartNumberMax}");
        if (expectedMd5 is { Length: not 16 })
            throw new ChainArgumentException("the expected MD5 must be 16 bytes");
        await ReadUploadAsync(bucket, key, uploadId, cancellationToken).ConfigureAwait(false);

        string partKey = PartKey(uploadId, partNumber);
        using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        var upload = await UploadChunksAsync(bucket, partKey, ChunkSource.For(content, _options.ChunkBytes), null, touchFirst: false, cancellationToken, md5)
            .ConfigureAwait(false);
        byte[] digest = md5.GetHashAndReset();
        if (expectedMd5 is not null && !digest.AsSpan().SequenceEqual(expectedMd5))
            throw new BadDigestException($"part {partNumber} of upload {uploadId}: MD5 {Convert.ToHexStringLower(digest)}, expected {Convert.ToHexStringLower(expectedMd5)}");
        if (upload.Size > PartBytesMax)
            throw new ObjectTooLargeException($"part {partNumber} of upload {uploadId} has {upload.Size} bytes; the maximum is {PartBytesMax}");

        string etag = Convert.ToHexStringLower(digest);
        var options = new PutOptions { ContentType = "", UserMetadata = new Dictionary<string, string> { [PartMd5Metadata] = etag } };
        byte[] partKeyBytes = Validation.EncodeKey(partKey);
        var stored = upload.Chunks.Count == 0
            ? await PutCoreAsync(bucket, partKey, partKeyBytes, ChunkSource.For(ReadOnlyMemory<byte>.Empty), options, cancellationToken).ConfigureAwait(false)
            : await CommitHeldChunksAsync(bucket, partKey, partKeyBytes, upload, options, cancellationToken).ConfigureAwait(false);

        // Completed or aborted while this part was on its way: take the part back, its upload is gone.
        if (!await UploadExistsAsync(bucket, uploadId, cancellationToken).ConfigureAwait(false))
        {
            await DeleteCoreAsync(bucket, partKey, partKeyBytes, ifVersion: null, cancellationToken).ConfigureAwait(false);
            throw NoSuchUpload(bucket, key, uploadId);
        }
        var chunks = upload.Chunks.Select(c => new ChunkInfo(Convert.ToHexStringLower(c.Sha256.Span), (int)c.Size)).ToArray();
        return new PartInfo(partNumber, upload.Size, etag, stored.Sha256Hex, DateTimeOffset.UtcNow, chunks);
    }

    /// <summary>
    /// Completes the upload: the object becomes the named parts' bytes in order, composed from their chunks without
    /// copying, in one atomic switch. Errors (<see cref="InvalidPartOrderException"/>, <see cref="InvalidPartException"/>,
    /// <see cref="EntityTooSmallException"/>, <see cref="NoSuchUploadException"/>) change nothing.
    /// </summary>
    public async Task<CompleteMultipartResult> CompleteMultipartAsync(string bucket, string key, string uploadId, IReadOnlyList<CompletedPart> parts,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(parts);
        var keyBytes = CheckObjectArgs(bucket, key);
        if (parts.Count == 0)
            throw new ChainArgumentException("a complete request must name at least one part");
        for (int i = 1; i < parts.Count; i++)
        {
            if (parts[i].PartNumber <= parts[i - 1].PartNumber)
                throw new InvalidPartOrderException($"part {parts[i].PartNumber} follows part {parts[i - 1].PartNumber}: parts must be in ascending order");
        }
        var upload = await ReadUploadAsync(bucket, key, uploadId, cancellationToken).ConfigureAwait(false);
        var stored = await StoredPartsAsync(bucket, uploadId, cancellationToken).ConfigureAwait(false);
        for (int i = 0; i < parts.Count; i++)
        {
            var part = parts[i];
            if (!stored.TryGetValue(part.PartNumber, out var meta) || NormalizeETag(part.ETag) != PartETag(meta))
                throw new InvalidPartException($"part {part.PartNumber} of upload {uploadId} is not stored with ETag {part.ETag}");
            if (i < parts.Count - 1 && (long)meta.Size < PartBytesMin)
                throw new EntityTooSmallException($"part {part.PartNumber} has {meta.Size} bytes; every part but the last needs at least {PartBytesMin}");
        }

        // Each part's chunk list (only a get carries it), a few at a time; a part replaced since the listing is refused.
        var manifests = new ObjectMeta[parts.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, parts.Count),
            new ParallelOptions { MaxDegreeOfParallelism = _options.DownloadParallelism, CancellationToken = cancellationToken },
            async (i, ct) =>
            {
                string partKey = PartKey(uploadId, parts[i].PartNumber);
                var (meta, _) = await GetRecordAsync(bucket, partKey, ct).ConfigureAwait(false);
                if (PartETag(meta) != NormalizeETag(parts[i].ETag))
                    throw new InvalidPartException($"part {parts[i].PartNumber} of upload {uploadId} was replaced while completing");
                if (meta.Chunks.Sum(c => (long)c.Size) != (long)meta.Size)
                    throw new IntegrityException($"part {parts[i].PartNumber} of upload {uploadId}: its chunks do not add up to its {meta.Size} bytes");
                manifests[i] = meta;
            }).ConfigureAwait(false);

        var chunks = new List<ChunkRef>();
        long size = 0;
        using var etagHash = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        foreach (var meta in manifests)
        {
            chunks.AddRange(meta.Chunks);
            size += (long)meta.Size;
            etagHash.AppendData(Convert.FromHexString(PartETag(meta)));
        }
        if (chunks.Count > Limits.ManifestChunksMax)
            throw new ObjectTooLargeException($"'{bucket}/{key}' would have {chunks.Count} chunks; the maximum is {Limits.ManifestChunksMax}");
        string etag = Convert.ToHexStringLower(etagHash.GetHashAndReset()) + "-" + parts.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);

        // The object's SHA-256: read (not copy) the chunks once, each verified against its id.
        byte[] sha256 = (await ReadChunksAsync(bucket, key, chunks, size, Stream.Null, 0, size, null, cancellationToken).ConfigureAwait(false))!;

        var metadata = new Dictionary<string, string>(upload.UserMetadata, StringComparer.Ordinal) { [MultipartETagMetadata] = etag };
        var options = new PutOptions { ContentType = upload.ContentType, UserMetadata = metadata };
        var result = await CommitHeldChunksAsync(bucket, key, keyBytes, new Upload(chunks, size, sha256), options, cancellationToken).ConfigureAwait(false);

        await RemoveUploadAsync(bucket, uploadId, cancellationToken).ConfigureAwait(false);
        return new CompleteMultipartResult(bucket, key, etag, size, result.Sha256Hex, result.Version, parts.Count);
    }

    /// <summary>Aborts the upload: its parts and record are removed (their chunks become garbage for the next collections).</summary>
    public async Task AbortMultipartAsync(string bucket, string key, string uploadId, CancellationToken cancellationToken = default)
    {
        CheckObjectArgs(bucket, key);
        await ReadUploadAsync(bucket, key, uploadId, cancellationToken).ConfigureAwait(false);
        await RemoveUploadAsync(bucket, uploadId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The uploads in progress in the bucket whose keys start with <paramref name="prefix"/>, by key then initiation time.</summary>
    public async Task<IReadOnlyList<MultipartUploadInfo>> ListMultipartUploadsAsync(string bucket, string prefix = "", CancellationToken cancellationToken = default)
    {
        CheckNotDisposed();
        CheckBucketName(bucket);
        var prefixBytes = EncodeKey(prefix ?? "", "prefix");
        string recordsPrefix = ReservedPrefix + "u/";
        var result = new List<(byte[] Key, MultipartUploadInfo Info)>();
        await foreach (var record in ListRecordsAsync(bucket, ByteString.CopyFromUtf8(recordsPrefix), ByteString.Empty, cancellationToken).ConfigureAwait(false))
        {
            string uploadId = Validation.DecodeKey(record.Key.Span)[recordsPrefix.Length..];
            byte[] key;
            try
            {
                (_, key) = await GetRecordAsync(bucket, UploadRecordKey(uploadId), cancellationToken).ConfigureAwait(false);
            }
            catch (ObjectNotFoundException)
            {
                continue; // completed or aborted since the listing
            }
            if (key.AsSpan().StartsWith(prefixBytes))
                result.Add((key, new MultipartUploadInfo(bucket, Validation.DecodeKey(key), uploadId, DateTimeOffset.FromUnixTimeMilliseconds(record.CreatedUnixMs))));
        }
        return result
            .OrderBy(u => u.Key, Comparer<byte[]>.Create((a, b) => a.AsSpan().SequenceCompareTo(b)))
            .ThenBy(u => u.Info.Initiated)
            .Select(u => u.Info)
            .ToArray();
    }

    /// <summary>The upload's stored parts in part-number order (<see cref="PartInfo.Chunks"/> empty).</summary>
    public async Task<IReadOnlyList<PartInfo>> ListPartsAsync(string bucket, string key, string uploadId, CancellationToken cancellationToken = default)
    {
        CheckObjectArgs(bucket, key);
        await ReadUploadAsync(bucket, key, uploadId, cancellationToken).ConfigureAwait(false);
        var stored = await StoredPartsAsync(bucket, uploadId, cancellationToken).ConfigureAwait(false);
        return stored
            .OrderBy(p => p.Key)
            .Select(p => new PartInfo(p.Key, (long)p.Value.Size, PartETag(p.Value), Convert.ToHexStringLower(p.Value.Sha256.Span),
                DateTimeOffset.FromUnixTimeMilliseconds(p.Value.CreatedUnixMs), []))
            .ToArray();
    }

    /// <summary>
    /// Commits a manifest of chunks already stored. A commit refuses chunks touched more than half the GC grace ago
    /// (a part uploaded long before its complete): then every chunk is touched — a part record holds them, so they are
    /// there — and the commit sent again (same request id).
    /// </summary>
    private async Task<PutResult> CommitHeldChunksAsync(string bucket, string key, byte[] keyBytes, Upload upload, PutOptions options,
        CancellationToken cancellationToken)
    {
        var requestId = NewRequestId();
        try
        {
            return await CommitManifestAsync(bucket, key, keyBytes, requestId, upload, options, cancellationToken).ConfigureAwait(false);
        }
        catch (MissingChunkException)
        {
            await Parallel.ForEachAsync(upload.Chunks.DistinctBy(c => c.Sha256),
                new ParallelOptions { MaxDegreeOfParallelism = _options.UploadParallelism, CancellationToken = cancellationToken },
                async (c, ct) => await PutChunkAsync(bucket, key, c.Sha256.ToByteArray(), null, touchFirst: true, ct).ConfigureAwait(false)).ConfigureAwait(false);
            return await CommitManifestAsync(bucket, key, keyBytes, requestId, upload, options, cancellationToken).ConfigureAwait(false);
        }
    }

    // ------------------------------------------------------------------ state records

    /// <summary>The upload record, checked to belong to this key; <see cref="NoSuchUploadException"/> otherwise.</summary>
    private async Task<ObjectMeta> ReadUploadAsync(string bucket, string key, string uploadId, CancellationToken cancellationToken)
    {
        if (uploadId is null || uploadId.Length != UploadIdBytes * 2 || !uploadId.All(char.IsAsciiHexDigitLower))
            throw NoSuchUpload(bucket, key, uploadId ?? "");
        try
        {
            var (meta, data) = await GetRecordAsync(bucket, UploadRecordKey(uploadId), cancellationToken).ConfigureAwait(false);
            if (!data.AsSpan().SequenceEqual(Validation.EncodeKey(key)))
                throw NoSuchUpload(bucket, key, uploadId);
            return meta;
        }
        catch (ObjectNotFoundException)
        {
            throw NoSuchUpload(bucket, key, uploadId);
        }
    }

    private async Task<bool> UploadExistsAsync(string bucket, string uploadId, CancellationToken cancellationToken)
    {
        try
        {
            await GetRecordAsync(bucket, UploadRecordKey(uploadId), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ObjectNotFoundException)
        {
            return false;
        }
    }

    private static NoSuchUploadException NoSuchUpload(string bucket, string key, string uploadId) =>
        new($"no multipart upload '{uploadId}' of '{bucket}/{key}' (it never existed, or was completed or aborted)");

    /// <summary>The upload's part records by part number (without chunk lists: listings leave them out).</summary>
    private async Task<Dictionary<int, ObjectMeta>> StoredPartsAsync(string bucket, string uploadId, CancellationToken cancellationToken)
    {
        string prefix = PartsPrefix(uploadId);
        var parts = new Dictionary<int, ObjectMeta>();
        await foreach (var meta in ListRecordsAsync(bucket, ByteString.CopyFromUtf8(prefix), ByteString.Empty, cancellationToken).ConfigureAwait(false))
        {
            if (int.TryParse(Validation.DecodeKey(meta.Key.Span).AsSpan(prefix.Length), System.Globalization.NumberStyles.None,
                    System.Globalization.CultureInfo.InvariantCulture, out int number))
                parts[number] = meta;
        }
        return parts;
    }

    /// <summary>Deletes the part records first, then the upload record (a failure in between leaves the upload abortable).</summary>
    private async Task RemoveUploadAsync(string bucket, string uploadId, CancellationToken cancellationToken)
    {
        var parts = await StoredPartsAsync(bucket, uploadId, cancellationToken).ConfigureAwait(false);
        await Parallel.ForEachAsync(parts.Keys,
            new ParallelOptions { MaxDegreeOfParallelism = _options.UploadParallelism, CancellationToken = cancellationToken },
            async (number, ct) =>
            {
                string partKey = PartKey(uploadId, number);
                await DeleteCoreAsync(bucket, partKey, Validation.EncodeKey(partKey), ifVersion: null, ct).ConfigureAwait(false);
            }).ConfigureAwait(false);
        string recordKey = UploadRecordKey(uploadId);
        await DeleteCoreAsync(bucket, recordKey, Validation.EncodeKey(recordKey), ifVersion: null, cancellationToken).ConfigureAwait(false);
    }

    private static string PartETag(ObjectMeta part) => part.UserMetadata.TryGetValue(PartMd5Metadata, out var md5) ? md5 : "";

    private static string NormalizeETag(string etag) => (etag ?? "").Trim().Trim('"').ToLowerInvariant();

    /// <summary>
    /// One record of the store: its metadata (with the chunk list, for a distributed one) and, for an inline one, its
    /// bytes (at most <see cref="RecordBytesMax"/>, verified). A distributed record's chunks are not fetched.
    /// </summary>
    private Task<(ObjectMeta Meta, byte[] Data)> GetRecordAsync(string bucket, string key, CancellationToken cancellationToken)
    {
        var keyBytes = Validation.EncodeKey(key);
        var keyString = UnsafeByteOperations.UnsafeWrap(keyBytes);
        return _retry.RunAsync("get", async (state, ct) =>
        {
            var route = await RouteAsync(state, bucket, keyBytes, write: false, ct).ConfigureAwait(false);
            var request = new GetRequest { Routing = Routing(route), Bucket = bucket, Key = keyString };
            ObjectMeta? meta = null;
            using var data = new MemoryStream();
            await foreach (var message in _transport.For(route.Address).ServerStreamingAsync(StoreMethods.Get, request, UnaryOptions(ct))
                               .WithCancellation(ct).ConfigureAwait(false))
            {
                if (message.PartCase == GetResponse.PartOneofCase.Meta)
                {
                    meta = message.Meta;
                    if (meta.Distributed)
                        break;
                }
                else if (message.PartCase == GetResponse.PartOneofCase.Data)
                {
                    if (meta is null || data.Length + message.Data.Length > Math.Min((long)meta.Size, RecordBytesMax))
                        throw new ChainException($"protocol error: node '{route.NodeId}' sent unexpected data for '{bucket}/{key}'");
                    message.Data.WriteTo(data);
                }
            }
            if (meta is null)
                throw new ChainException($"protocol error: node '{route.NodeId}' ended the get of '{bucket}/{key}' without metadata");
            byte[] bytes = data.ToArray();
            if (!meta.Distributed && (bytes.Length != (long)meta.Size || !SHA256.HashData(bytes).AsSpan().SequenceEqual(meta.Sha256.Span)))
                throw new IntegrityException($"'{bucket}/{key}': the record's data does not match its size and SHA-256");
            return (meta, bytes);
        }, cancellationToken, bucket, key);
    }
}
