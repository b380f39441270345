using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using Chain.Client;
using Microsoft.AspNetCore.Http;

namespace Chain.Gateway.S3;

public sealed partial class S3Api
{
    private const string DefaultContentType = "binary/octet-stream";

    private async Task PutObjectAsync(HttpContext context, S3Request request, S3Principal principal)
    {
        if (principal.Streaming is null)
            CheckBodyLength(context.Request, options.MaxObjectBytes, "object");
        var metadata = UserMetadataFrom(context.Request.Headers);
        // The ETag (MD5) is known only at the end of the body; the client library builds the object's header after the
        // last byte (inline objects are read whole first, large ones commit a manifest after all chunks), so the entry
        // added here before end of stream is reported is stored with the object.
        using var body = VerifiedBody(context, principal, options.MaxObjectBytes, md5Hex => metadata[EtagMetadataKey] = md5Hex);
        var put = new PutOptions
        {
            ContentType = ContentTypeOf(context.Request.ContentType),
            UserMetadata = metadata,
            IfAbsent = context.Request.Headers.IfNoneMatch.ToString().Trim() == "*",
        };
        try
        {
            await client.PutAsync(request.Bucket, request.Key, body, put, context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception) when (body.Failure is { } failure)
        {
            throw failure;
        }
        if (body.Md5Hex is null)
            throw new S3Exception(500, "InternalError", "the object was stored before its body was verified");
        context.Response.Headers.ETag = "\"" + body.Md5Hex + "\"";
        context.Response.StatusCode = 200;
    }

    /// <summary>411 MissingContentLength without a length or chunked encoding; 400 EntityTooLarge when the announced length is above the limit.</summary>
    private static void CheckBodyLength(HttpRequest request, long maxBytes, string what)
    {
        long? length = request.ContentLength;
        if (length is null && !request.Headers.TransferEncoding.Any(v => v?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true))
            throw new S3Exception(411, "MissingContentLength", "You must provide the Content-Length HTTP header.");
        if (length > maxBytes)
            throw new S3Exception(400, "EntityTooLarge", $"Your proposed upload exceeds the maximum allowed {what} size of {maxBytes} bytes.");
    }

    private async Task GetObjectAsync(HttpContext context, S3Request request, bool withBody)
    {
        CancellationToken ct = context.RequestAborted;
        ObjectInfo info = await client.StatAsync(request.Bucket, request.Key, ct).ConfigureAwait(false);
        string etag = ETagOf(info);
        if (CheckConditions(context.Request, info, etag) is { } status)
        {
            context.Response.StatusCode = status;
            if (status == 304)
            {
                context.Response.Headers.ETag = etag;
                return;
            }
            throw new S3Exception(412, "PreconditionFailed", "At least one of the preconditions you specified did not hold");
        }
        (long offset, long length)? range = ParseRange(context.Request.Headers.Range.ToString(), info.Size);
        HttpResponse response = context.Response;
        response.Headers.ETag = etag;
        response.Headers.LastModified = info.Created.ToString("R", CultureInfo.InvariantCulture);
        response.Headers.AcceptRanges = "bytes";
        response.ContentType = string.IsNullOrEmpty(info.ContentType) ? DefaultContentType : info.ContentType;
        foreach (var (name, value) in info.UserMetadata)
        {
            if (!IsETagEntry(name))
                response.Headers[MetaHeaderPrefix + name] = value;
        }
        if (range is { } r)
        {
            response.StatusCode = 206;
            response.Headers.ContentRange = $"bytes {r.offset}-{r.offset + r.length - 1}/{info.Size}";
            response.ContentLength = r.length;
        }
        else
        {
            response.StatusCode = 200;
            response.ContentLength = info.Size;
        }
        if (!withBody)
            return;
        ObjectInfo served = range is { } part
            ? await client.GetRangeAsync(request.Bucket, request.Key, response.Body, part.offset, part.length, null, ct).ConfigureAwait(false)
            : await client.GetAsync(request.Bucket, request.Key, response.Body, null, ct).ConfigureAwait(false);
        // Overwritten between the stat (whose headers went out) and the read: the bytes may not match them.
        if (served.Version != info.Version)
            context.Abort();
    }

    /// <summary>null when the conditional headers hold; else 304 (not modified) or 412 (precondition failed).</summary>
    private static int? CheckConditions(HttpRequest request, ObjectInfo info, string etag)
    {
        string ifMatch = request.Headers.IfMatch.ToString();
        if (ifMatch.Length > 0 && !EtagListMatches(ifMatch, etag))
            return 412;
        string ifNoneMatch = request.Headers.IfNoneMatch.ToString();
        if (ifNoneMatch.Length > 0 && EtagListMatches(ifNoneMatch, etag))
            return 304;
        DateTimeOffset modified = TruncateToSeconds(info.Created);
        if (ifMatch.Length == 0 && TryParseHttpDate(request.Headers.IfUnmodifiedSince.ToString()) is { } unmodifiedSince && modified > unmodifiedSince)
            return 412;
        if (ifNoneMatch.Length == 0 && TryParseHttpDate(request.Headers.IfModifiedSince.ToString()) is { } modifiedSince && modified <= modifiedSince)
            return 304;
        return null;
    }

    private static bool EtagListMatches(string header, string etag) =>
        header.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Any(tag => tag == "*" || tag == etag || "\"" + tag + "\"" == etag);

    private static DateTimeOffset? TryParseHttpDate(string value) =>
        value.Length > 0 && DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) ? at : null;

    private static DateTimeOffset TruncateToSeconds(DateTimeOffset time) => new(time.Ticks - time.Ticks % TimeSpan.TicksPerSecond, time.Offset);

    /// <summary>
    /// The byte range of a "bytes=a-b" / "bytes=a-" / "bytes=-n" header (null: the whole object; several ranges or
    /// another unit are ignored, as S3 does); 416 InvalidRange when it selects nothing.
    /// </summary>
    internal static (long offset, long length)? ParseRange(string header, long size)
    {
        if (header.Length == 0 || !header.StartsWith("bytes=", StringComparison.Ordinal) || header.Contains(','))
            return null;
        string spec = header["bytes=".Length..].Trim();
        int dash = spec.IndexOf('-');
        if (dash < 0)
            return null;
        string first = spec[..dash].Trim();
        string last = spec[(dash + 1)..].Trim();
        long offset, end;
        if (first.Length == 0)
        {
            if (!long.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out long suffix))
                return null;
            if (suffix == 0 || size == 0)
                throw InvalidRange(size);
            offset = Math.Max(0, size - suffix);
            end = size - 1;
        }
        else
        {
            if (!long.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out offset))
                return null;
            end = size - 1;
            if (last.Length > 0)
            {
                if (!long.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out long lastByte) || lastByte < offset)
                    return null;
                end = Math.Min(lastByte, size - 1);
            }
            if (offset >= size)
                throw InvalidRange(size);
        }
        return (offset, end - offset + 1);
    }

    private static S3Exception InvalidRange(long size) => new(416, "InvalidRange", $"The requested range is not satisfiable (object size {size})");

    private async Task DeleteObjectAsync(HttpContext context, S3Request request)
    {
        await client.DeleteAsync(request.Bucket, request.Key, context.RequestAborted).ConfigureAwait(false);
        context.Response.StatusCode = 204;
    }

    private async Task DeleteObjectsAsync(HttpContext context, S3Request request, S3Principal principal)
    {
        const int objectsMax = 1000;
        var root = S3XmlReader.Parse(await ReadXmlBodyAsync(context, principal).ConfigureAwait(false));
        if (root.Name.LocalName != "Delete")
            throw S3Exception.MalformedXml("the root element must be Delete");
        bool quiet = string.Equals(S3XmlReader.ChildValue(root, "Quiet"), "true", StringComparison.OrdinalIgnoreCase);
        var keys = S3XmlReader.Children(root, "Object").Select(o => S3XmlReader.ChildValue(o, "Key")).ToList();
        if (keys.Count is 0 or > objectsMax || keys.Any(k => string.IsNullOrEmpty(k)))
            throw S3Exception.MalformedXml($"Delete needs 1 to {objectsMax} Object elements, each with a Key");
        await RequireBucketAsync(request.Bucket, context.RequestAborted).ConfigureAwait(false);
        var xml = new S3XmlWriter("DeleteResult");
        foreach (string key in keys!)
        {
            try
            {
                CheckKey(key);
                await client.DeleteAsync(request.Bucket, key, context.RequestAborted).ConfigureAwait(false);
                if (!quiet)
                    xml.Start("Deleted").Element("Key", key).End();
            }
            catch (Exception e) when (ToS3Error(e) is { } error)
            {
                xml.Start("Error").Element("Key", key).Element("Code", error.Code).Element("Message", error.Message).End();
            }
        }
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    private async Task CopyObjectAsync(HttpContext context, S3Request request)
    {
        CancellationToken ct = context.RequestAborted;
        (string sourceBucket, string sourceKey) = ParseCopySource(context.Request.Headers["x-amz-copy-source"].ToString());
        ObjectInfo source = await client.StatAsync(sourceBucket, sourceKey, ct).ConfigureAwait(false);
        if (source.Size > options.MaxObjectBytes)
            throw new S3Exception(400, "EntityTooLarge", $"The source object exceeds the maximum allowed object size of {options.MaxObjectBytes} bytes.");
        bool replace = string.Equals(context.Request.Headers["x-amz-metadata-directive"], "REPLACE", StringComparison.OrdinalIgnoreCase);
        Dictionary<string, string> metadata = replace
            ? UserMetadataFrom(context.Request.Headers)
            : source.UserMetadata.Where(kv => !IsETagEntry(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
        string contentType = replace ? ContentTypeOf(context.Request.ContentType) : source.ContentType;

        // Streamed: the source is read into a pipe (bounded by its pause threshold) while the put reads the other end.
        var pipe = new Pipe();
        using var body = new VerifyingStream(pipe.Reader.AsStream(), options.MaxObjectBytes, null, null, md5Hex => metadata[EtagMetadataKey] = md5Hex);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task<ObjectInfo> read = ReadIntoPipeAsync(sourceBucket, sourceKey, source.Version, pipe.Writer, stop.Token);
        try
        {
            await client.PutAsync(request.Bucket, request.Key, body, new PutOptions { ContentType = contentType, UserMetadata = metadata }, ct)
                .ConfigureAwait(false);
        }
        catch
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await pipe.Reader.CompleteAsync().ConfigureAwait(false);
            // The read's own failure (a missing or changed source) says more than the put's.
            if (await Task.WhenAny(read).ConfigureAwait(false) is { IsFaulted: true } failed && failed.Exception?.InnerException is ChainException inner)
                throw inner;
            throw;
        }
        await read.ConfigureAwait(false);
        var xml = new S3XmlWriter("CopyObjectResult");
        xml.Element("LastModified", IsoTime(DateTimeOffset.UtcNow)).Element("ETag", "\"" + body.Md5Hex + "\"");
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    private async Task<ObjectInfo> ReadIntoPipeAsync(string bucket, string key, ulong version, PipeWriter writer, CancellationToken ct)
    {
        try
        {
            ObjectInfo info = await client.GetAsync(bucket, key, writer.AsStream(leaveOpen: true), null, ct).ConfigureAwait(false);
            if (info.Version != version)
                throw new PreconditionFailedException(bucket, key, "the copy source changed while it was copied");
            await writer.CompleteAsync().ConfigureAwait(false);
            return info;
        }
        catch (Exception e)
        {
            await writer.CompleteAsync(e).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>"/bucket/key" or "bucket/key", percent-encoded, optionally with "?versionId=null".</summary>
    private static (string Bucket, string Key) ParseCopySource(string header)
    {
        int q = header.IndexOf('?');
        if (q >= 0)
        {
            string query = header[(q + 1)..];
            if (query != "versionId=null")
                throw S3Exception.InvalidArgument("copy sources with a version other than null are not supported");
            header = header[..q];
        }
        string decoded = Uri.UnescapeDataString(header).TrimStart('/');
        int slash = decoded.IndexOf('/');
        if (slash <= 0 || slash == decoded.Length - 1)
            throw S3Exception.InvalidArgument("x-amz-copy-source must be bucket/key");
        string bucket = decoded[..slash];
        string key = decoded[(slash + 1)..];
        if (Chain.Protocol.Validation.CheckBucket(bucket) is { } problem)
            throw new S3Exception(400, "InvalidBucketName", problem);
        CheckKey(key);
        return (bucket, key);
    }

    private static string ContentTypeOf(string? header) => string.IsNullOrEmpty(header) ? DefaultContentType : header;

    /// <summary>x-amz-meta-NAME headers (NAME lower-cased); 400 MetadataTooLarge beyond S3's 2 KiB.</summary>
    private static Dictionary<string, string> UserMetadataFrom(IHeaderDictionary headers)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in headers)
        {
            if (name.StartsWith(MetaHeaderPrefix, StringComparison.OrdinalIgnoreCase) && name.Length > MetaHeaderPrefix.Length)
                metadata[name[MetaHeaderPrefix.Length..].ToLowerInvariant()] = value.ToString();
        }
        // Room is left for the ETag entry within the store's limit.
        int bytes = metadata.Sum(kv => Encoding.UTF8.GetByteCount(kv.Key) + Encoding.UTF8.GetByteCount(kv.Value));
        if (bytes > Chain.Protocol.Limits.UserMetadataBytesMax - 64)
            throw new S3Exception(400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.");
        return metadata;
    }
}
