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
/// <item>upload record <c>PREFIX u/KEY\x01\x01ID</c> (KEY with each U+0001 written as U+0001 U+0002, so records sort by
/// object key, then by upload id, which starts with the initiation time; a listing page starts after its markers
/// rather than reading every upload): inline, content = the object key (UTF-8), content type and user metadata of the
/// object to be, created = initiated;</item>
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

    /// <summary>
    /// Longest object key (UTF-8 bytes, each U+0001 counted twice) a multipart upload can have: its upload record's key
    /// holds the object key plus 47 bytes and is a key like any other (at most 1024 bytes).
    /// </summary>
    public const int MultipartKeyBytesMax = Limits.KeyBytesMax - 13 - 2 - UploadIdBytes * 2;

    private const string PartMd5Metadata = "md5";
    private const int UploadIdBytes = 16;
    private const string UploadsPrefix = ReservedPrefix + "u/";
    /// <summary>Ends the escaped object key in an upload record's key: sorts below every byte an escaped key continues with.</summary>
    private const string UploadKeyEnd = "\u0001\u0001";
    /// <summary>Largest inline record read whole into memory (an upload record: one key).</summary>
    private const int RecordBytesMax = 64 * 1024;

    private static readonly byte[] ReservedPrefixBytes = Encoding.UTF8.GetBytes(ReservedPrefix);

    internal static bool IsReservedKey(ReadOnlySpan<byte> key) => key.StartsWith(ReservedPrefixBytes);

    private static string UploadRecordKey(string key, string uploadId) => UploadsPrefix + EscapeKey(key) + UploadKeyEnd + uploadId;

    /// <summary>U+0001 → U+0001 U+0002: order-preserving, and never contains <see cref="UploadKeyEnd"/>.</summary>
    private static string EscapeKey(string key) => key.Replace("\u0001", "\u0001\u0002", StringComparison.Ordinal);

    /// <summary>The object key and upload id of an upload record's key; false for anything else.</summary>
    private static bool TryParseUploadRecord(ReadOnlySpan<byte> recordKey, out string key, out string uploadId)
    {
        key = uploadId = "";
        string text;
        try
        {
            text = Validation.DecodeKey(recordKey);
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
        int idAt = text.Length - UploadIdBytes * 2;
        if (idAt < UploadsPrefix.Length + UploadKeyEnd.Length || !text.StartsWith(UploadsPrefix, StringComparison.Ordinal)
            || !text.AsSpan(idAt - UploadKeyEnd.Length, UploadKeyEnd.Length).SequenceEqual(UploadKeyEnd))
            return false;
        string escaped = text[UploadsPrefix.Length..(idAt - UploadKeyEnd.Length)];
        key = escaped.Replace("\u0001\u0002", "\u0001", StringComparison.Ordinal);
        uploadId = text[idAt..];
        return EscapeKey(key) == escaped && key.Length > 0;
    }

    /// <summary>A listing bound: at most a key's length (a longer bound and its first 1024 bytes split every key alike).</summary>
    private static ByteString Bound(byte[] bytes) =>
        UnsafeByteOperations.UnsafeWrap(bytes.Length > Limits.KeyBytesMax ? bytes[..Limits.KeyBytesMax] : bytes);

    /// <summary>The first bytes of the records of uploads of keys starting with <paramref name="keyPrefix"/> (a key's: and then <see cref="UploadKeyEnd"/>).</summary>
    private static byte[] UploadRecordsPrefix(string keyPrefix) => Encoding.UTF8.GetBytes(UploadsPrefix + EscapeKey(keyPrefix));

    /// <summary>A new upload id: 12 hex digits of the initiation time (Unix ms), then 20 random ones: ids sort by initiation.</summary>
    private static string NewUploadId() =>
        DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString("x12", System.Globalization.CultureInfo.InvariantCulture)
        + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(UploadIdBytes - 6));

    private static string PartsPrefix(string uploadId) => ReservedPrefix + "p/" + uploadId + "/";

    private static string PartKey(string uploadId, int partNumber) => PartsPrefix(uploadId) + partNumber.ToString("D5", System.Globalization.CultureInfo.InvariantCulture);

    // ------------------------------------------------------------------ public API

    /// <summary>Starts a multipart upload of <paramref name="key"/>; returns its upload id (32 hex digits).</summary>
    public async Task<string> InitiateMultipartAsync(string bucket, string key, MultipartOptions? options = null, CancellationToken cancellationToken = default)
    {
        var keyBytes = CheckObjectArgs(bucket, key);
        options ??= new MultipartOptions();
        if (Encoding.UTF8.GetByteCount(EscapeKey(key)) > MultipartKeyBytesMax)
            throw new ChainArgumentException($"key is too long for a multipart upload: {keyBytes.Length} bytes; the maximum is {MultipartKeyBytesMax}");
        string uploadId = NewUploadId();
        string recordKey = UploadRecordKey(key, uploadId);
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
        if (!await UploadExistsAsync(bucket, key, uploadId, cancellationToken).ConfigureAwait(false))
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
    /// <see cref="EntityTooSmallException"/>, <see cref="NoSuchUploadException"/>; <see cref="ObjectTooLargeException"/>
    /// for more than <see cref="PartNumberMax"/> parts or more than <paramref name="maxObjectBytes"/> bytes in all) change
    /// nothing.
    /// </summary>
    public async Task<CompleteMultipartResult> CompleteMultipartAsync(string bucket, string key, string uploadId, IReadOnlyList<CompletedPart> parts,
        long maxObjectBytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(parts);
        var keyBytes = CheckObjectArgs(bucket, key);
        if (parts.Count == 0)
            throw new ChainArgumentException("a complete request must name at least one part");
        if (parts.Count > PartNumberMax)
            throw new ObjectTooLargeException($"a complete request names {parts.Count} parts; the maximum is {PartNumberMax}");
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
        decimal total = parts.Sum(p => (decimal)stored[p.PartNumber].Size);
        if (total > maxObjectBytes)
            throw new ObjectTooLargeException($"the parts of upload {uploadId} add up to {total} bytes; the maximum object size is {maxObjectBytes}");

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

        await RemoveUploadAsync(bucket, key, uploadId, cancellationToken).ConfigureAwait(false);
        return new CompleteMultipartResult(bucket, key, etag, size, result.Sha256Hex, result.Version, parts.Count);
    }

    /// <summary>Completes the upload with no size limit but the store's (see the overload with a maximum size).</summary>
    public Task<CompleteMultipartResult> CompleteMultipartAsync(string bucket, string key, string uploadId, IReadOnlyList<CompletedPart> parts,
        CancellationToken cancellationToken = default) =>
        CompleteMultipartAsync(bucket, key, uploadId, parts, long.MaxValue, cancellationToken);

    /// <summary>Aborts the upload: its parts and record are removed (their chunks become garbage for the next collections).</summary>
    public async Task AbortMultipartAsync(string bucket, string key, string uploadId, CancellationToken cancellationToken = default)
    {
        CheckObjectArgs(bucket, key);
        await ReadUploadAsync(bucket, key, uploadId, cancellationToken).ConfigureAwait(false);
        await RemoveUploadAsync(bucket, key, uploadId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// One page of the uploads in progress in the bucket, like S3's ListMultipartUploads: by key, then by initiation
    /// (upload id); keys that contain the delimiter after the prefix roll up into common prefixes. The page is read from
    /// the upload records that follow the markers: its cost grows with the page, not with the uploads in progress.
    /// </summary>
    public async Task<MultipartUploadPage> ListMultipartUploadsPageAsync(string bucket, MultipartUploadListOptions options,
        CancellationToken cancellationToken = default)
    {
        CheckNotDisposed();
        CheckBucketName(bucket);
        ArgumentNullException.ThrowIfNull(options);
        if (options.MaxUploads is < 1 or > Limits.ListLimitMax)
            throw new ChainArgumentException($"max uploads must be between 1 and {Limits.ListLimitMax}, not {options.MaxUploads}");
        var prefix = EncodeListBound(options.Prefix ?? "", "prefix");
        var delimiter = EncodeDelimiter(options.Delimiter);
        string keyMarker = options.KeyMarker ?? "";
        var marker = EncodeListBound(keyMarker, "key marker");
        byte[] recordPrefix = UploadRecordsPrefix(options.Prefix ?? "");
        if (recordPrefix.Length > Limits.KeyBytesMax)
            return new MultipartUploadPage([], [], false, null, null); // no upload record can be that long

        ByteString after = ByteString.Empty;
        if (keyMarker.Length > 0)
        {
            if (marker.Span.StartsWith(prefix.Span) && CommonPrefixOf(marker, prefix, delimiter.Span) is { } rolled)
                after = PastUploadsOf(rolled); // the marker's common prefix was listed: nothing under it comes back
            else if (!string.IsNullOrEmpty(options.UploadIdMarker))
                after = Bound(Encoding.UTF8.GetBytes(UploadRecordKey(keyMarker, options.UploadIdMarker)));
            else
                after = Bound([.. Encoding.UTF8.GetBytes(UploadsPrefix + EscapeKey(keyMarker) + UploadKeyEnd), 0xFF]);
            if (KeyOrder.Compare(after.Span, recordPrefix) < 0)
                after = ByteString.Empty; // a marker before the prefix: from the prefix's first upload
        }

        var page = await PageRecordsAsync<MultipartUploadInfo>(bucket, UnsafeByteOperations.UnsafeWrap(recordPrefix), after, options.MaxUploads,
            Math.Min(options.MaxUploads + 1, Limits.ListLimitMax), prefix, delimiter,
            meta => TryParseUploadRecord(meta.Key.Span, out string key, out string uploadId)
                ? (ByteString.CopyFromUtf8(key), new MultipartUploadInfo(bucket, key, uploadId, DateTimeOffset.FromUnixTimeMilliseconds(meta.CreatedUnixMs)))
                : null,
            PastUploadsOf, cancellationToken).ConfigureAwait(false);
        return new MultipartUploadPage(page.Entries, page.CommonPrefixes, page.Truncated,
            page.Truncated ? page.LastKey.ToStringUtf8() : null, page.Truncated ? page.LastEntry?.UploadId ?? "" : null);
    }

    /// <summary>The record bound past every upload of every key that starts with <paramref name="keyPrefix"/> (0xFF never occurs in UTF-8).</summary>
    private static ByteString PastUploadsOf(ByteString keyPrefix) => Bound([.. UploadRecordsPrefix(keyPrefix.ToStringUtf8()), 0xFF]);

    /// <summary>Every upload in progress in the bucket whose key starts with <paramref name="prefix"/>, page by page (see <see cref="ListMultipartUploadsPageAsync"/>).</summary>
    public async Task<IReadOnlyList<MultipartUploadInfo>> ListMultipartUploadsAsync(string bucket, string prefix = "", CancellationToken cancellationToken = default)
    {
        var result = new List<MultipartUploadInfo>();
        var options = new MultipartUploadListOptions { Prefix = prefix ?? "" };
        while (true)
        {
            var page = await ListMultipartUploadsPageAsync(bucket, options, cancellationToken).ConfigureAwait(false);
            result.AddRange(page.Uploads);
            if (!page.IsTruncated)
                return result;
            options = options with { KeyMarker = page.NextKeyMarker, UploadIdMarker = page.NextUploadIdMarker };
        }
    }

    /// <summary>
    /// One page of the upload's stored parts in part-number order, like S3's ListParts (<see cref="PartInfo.Chunks"/>
    /// empty): read from the part records after the marker (part records sort by number).
    /// </summary>
    public async Task<PartPage> ListPartsPageAsync(string bucket, string key, string uploadId, PartListOptions options,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        CheckObjectArgs(bucket, key);
        if (options.MaxParts is < 1 or > Limits.ListLimitMax)
            throw new ChainArgumentException($"max parts must be between 1 and {Limits.ListLimitMax}, not {options.MaxParts}");
        if (options.PartNumberMarker < 0)
            throw new ChainArgumentException($"the part number marker must not be negative, not {options.PartNumberMarker}");
        await ReadUploadAsync(bucket, key, uploadId, cancellationToken).ConfigureAwait(false);
        var parts = new List<PartInfo>();
        bool truncated = false;
        if (options.PartNumberMarker < PartNumberMax)
        {
            string prefix = PartsPrefix(uploadId);
            var after = options.PartNumberMarker == 0 ? ByteString.Empty : ByteString.CopyFromUtf8(PartKey(uploadId, options.PartNumberMarker));
            await foreach (var meta in ListRecordsAsync(bucket, ByteString.CopyFromUtf8(prefix), after, cancellationToken,
                               Math.Min(options.MaxParts + 1, Limits.ListLimitMax)).ConfigureAwait(false))
            {
                if (PartNumberOf(meta, prefix) is not { } number)
                    continue;
                if (parts.Count == options.MaxParts)
                {
                    truncated = true;
                    break;
                }
                parts.Add(new PartInfo(number, (long)meta.Size, PartETag(meta), Convert.ToHexStringLower(meta.Sha256.Span),
                    DateTimeOffset.FromUnixTimeMilliseconds(meta.CreatedUnixMs), []));
            }
        }
        return new PartPage(parts, truncated, parts.Count > 0 ? parts[^1].PartNumber : options.PartNumberMarker);
    }

    /// <summary>The upload's stored parts in part-number order, page by page (see <see cref="ListPartsPageAsync"/>).</summary>
    public async Task<IReadOnlyList<PartInfo>> ListPartsAsync(string bucket, string key, string uploadId, CancellationToken cancellationToken = default)
    {
        var result = new List<PartInfo>();
        var options = new PartListOptions();
        while (true)
        {
            var page = await ListPartsPageAsync(bucket, key, uploadId, options, cancellationToken).ConfigureAwait(false);
            result.AddRange(page.Parts);
            if (!page.IsTruncated)
                return result;
            options = options with { PartNumberMarker = page.NextPartNumberMarker };
        }
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
        if (uploadId is null || uploadId.Length != UploadIdBytes * 2 || !uploadId.All(char.IsAsciiHexDigitLower)
            || Encoding.UTF8.GetByteCount(EscapeKey(key)) > MultipartKeyBytesMax)
            throw NoSuchUpload(bucket, key, uploadId ?? "");
        try
        {
            var (meta, data) = await GetRecordAsync(bucket, UploadRecordKey(key, uploadId), cancellationToken).ConfigureAwait(false);
            if (!data.AsSpan().SequenceEqual(Validation.EncodeKey(key)))
                throw NoSuchUpload(bucket, key, uploadId);
            return meta;
        }
        catch (ObjectNotFoundException)
        {
            throw NoSuchUpload(bucket, key, uploadId);
        }
    }

    private async Task<bool> UploadExistsAsync(string bucket, string key, string uploadId, CancellationToken cancellationToken)
    {
        try
        {
            await GetRecordAsync(bucket, UploadRecordKey(key, uploadId), cancellationToken).ConfigureAwait(false);
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
            if (PartNumberOf(meta, prefix) is { } number)
                parts[number] = meta;
        }
        return parts;
    }

    private static int? PartNumberOf(ObjectMeta part, string partsPrefix) =>
        int.TryParse(Validation.DecodeKey(part.Key.Span).AsSpan(partsPrefix.Length), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out int number) ? number : null;

    /// <summary>Deletes the part records first, then the upload record (a failure in between leaves the upload abortable).</summary>
    private async Task RemoveUploadAsync(string bucket, string key, string uploadId, CancellationToken cancellationToken)
    {
        var parts = await StoredPartsAsync(bucket, uploadId, cancellationToken).ConfigureAwait(false);
        await Parallel.ForEachAsync(parts.Keys,
            new ParallelOptions { MaxDegreeOfParallelism = _options.UploadParallelism, CancellationToken = cancellationToken },
            async (number, ct) =>
            {
                string partKey = PartKey(uploadId, number);
                await DeleteCoreAsync(bucket, partKey, Validation.EncodeKey(partKey), ifVersion: null, ct).ConfigureAwait(false);
            }).ConfigureAwait(false);
        string recordKey = UploadRecordKey(key, uploadId);
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
