using System.Globalization;
using System.Text;
using Chain.Client;
using Chain.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Chain.Gateway.S3;

/// <summary>
/// The S3 API (path-style) over <see cref="ChainClient"/>: parses and authenticates a request, dispatches it to one
/// handler per operation (service and bucket operations here, objects in S3Api.Objects.cs, listings in
/// S3Api.Listing.cs, multipart in S3Api.Multipart.cs) and turns every failure into an S3 XML error.
/// </summary>
public sealed partial class S3Api(ChainClient client, GatewayOptions options, ILogger logger)
{
    /// <summary>The user-metadata entry holding an object's ETag (no x-amz-meta-* header name can contain ':').</summary>
    internal const string EtagMetadataKey = "s3:etag";
    private const string MetaHeaderPrefix = "x-amz-meta-";
    private readonly S3Auth _auth = new(options);

    public async Task HandleAsync(HttpContext context)
    {
        try
        {
            S3Request request = S3Request.Parse(context);
            S3Principal principal = _auth.Authenticate(context, request);
            Authorize(context, request, principal);
            await DispatchAsync(context, request, principal).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            context.Abort();
        }
        catch (Exception e) when (ToS3Error(e) is { } error)
        {
            if (error.Status >= 500)
                logger.LogWarning(e, "{Method} {Path}: {Code}", context.Request.Method, context.Request.Path, error.Code);
            await S3Exception.WriteAsync(context, error.Status, error.Code, error.Message).ConfigureAwait(false);
        }
    }

    private static S3Exception? ToS3Error(Exception e) => e switch
    {
        S3Exception s3 => s3,
        MultipartException m => MultipartError(m),
        BucketNotFoundException b => S3Exception.NoSuchBucket(b.Bucket),
        ObjectNotFoundException o => S3Exception.NoSuchKey(o.Key),
        BucketNotEmptyException => new S3Exception(409, "BucketNotEmpty", "The bucket you tried to delete is not empty"),
        BucketDeletingException => new S3Exception(409, "OperationAborted", "The bucket is being deleted; try again"),
        PreconditionFailedException => new S3Exception(412, "PreconditionFailed", "At least one of the preconditions you specified did not hold"),
        ObjectTooLargeException t => new S3Exception(400, "EntityTooLarge", t.Message),
        ChainArgumentException a => S3Exception.InvalidArgument(a.Message),
        ChainUnavailableException u => new S3Exception(503, "ServiceUnavailable", u.Message),
        ChainException c => new S3Exception(500, "InternalError", c.Message),
        BadHttpRequestException h => new S3Exception(400, "IncompleteBody", h.Message),
        _ => null,
    };

    private void Authorize(HttpContext context, S3Request request, S3Principal principal)
    {
        if (principal.AccessKey is not null || options.AccessKeys.Count == 0)
            return; // signed by a known key, or an open gateway (no keys configured)
        bool read = HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method);
        if (read && request.Bucket.Length > 0 && options.AnonymousReadBuckets.Contains(request.Bucket))
            return;
        throw S3Exception.AccessDenied("Access Denied");
    }

    private Task DispatchAsync(HttpContext context, S3Request request, S3Principal principal)
    {
        string method = context.Request.Method;
        if (request.Bucket.Length == 0)
        {
            return HttpMethods.IsGet(method)
                ? ListBucketsAsync(context)
                : throw new S3Exception(405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
        }
        if (Validation.CheckBucket(request.Bucket) is { } bucketProblem)
            throw new S3Exception(400, "InvalidBucketName", bucketProblem);
        if (request.Has("uploads") || request.Has("uploadId") || request.Has("partNumber"))
            return HandleMultipartAsync(context, request, principal);
        if (request.Key.Length == 0)
        {
            return method switch
            {
                "GET" when request.Has("location") => GetBucketLocationAsync(context),
                "GET" when request.Has("versions") => ListVersionsAsync(context, request),
                "GET" when request.Get("list-type") == "2" => ListObjectsV2Async(context, request),
                "GET" when !HasUnsupportedSubresource(request) => ListObjectsV1Async(context, request),
                "HEAD" => HeadBucketAsync(context, request),
                "PUT" when !HasUnsupportedSubresource(request) => CreateBucketAsync(context, request, principal),
                "DELETE" when !HasUnsupportedSubresource(request) => DeleteBucketAsync(context, request),
                "POST" when request.Has("delete") => DeleteObjectsAsync(context, request, principal),
                _ => throw S3Exception.NotImplemented($"{method} on a bucket with these parameters"),
            };
        }
        if (HasUnsupportedSubresource(request))
            throw S3Exception.NotImplemented($"{method} of an object sub-resource");
        CheckKey(request.Key);
        return method switch
        {
            "GET" => GetObjectAsync(context, request, withBody: true),
            "HEAD" => GetObjectAsync(context, request, withBody: false),
            "PUT" when context.Request.Headers.ContainsKey("x-amz-copy-source") => CopyObjectAsync(context, request),
            "PUT" => PutObjectAsync(context, request, principal),
            "DELETE" => DeleteObjectAsync(context, request),
            _ => throw new S3Exception(405, "MethodNotAllowed", "The specified method is not allowed against this resource."),
        };
    }

    /// <summary>Sub-resources of S3 that the gateway does not implement (ACLs, policies, tagging, ...).</summary>
    private static bool HasUnsupportedSubresource(S3Request request) =>
        request.Query.Any(p => p.Key is "acl" or "policy" or "tagging" or "cors" or "lifecycle" or "versioning" or "website" or "logging"
            or "notification" or "replication" or "encryption" or "object-lock" or "retention" or "legal-hold" or "torrent" or "restore"
            or "select" or "accelerate" or "requestPayment" or "analytics" or "inventory" or "metrics" or "ownershipControls" or "attributes");

    internal static void CheckKey(string key)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(key);
        if (bytes.Length > Limits.KeyBytesMax)
            throw new S3Exception(400, "KeyTooLongError", $"Your key is too long: {bytes.Length} bytes, the maximum is {Limits.KeyBytesMax}");
        if (Validation.CheckKey(bytes) is { } problem)
            throw S3Exception.InvalidArgument(problem);
    }

    // ------------------------------------------------------------------ service and buckets

    private async Task ListBucketsAsync(HttpContext context)
    {
        var buckets = await client.ListBucketsAsync(context.RequestAborted).ConfigureAwait(false);
        var xml = new S3XmlWriter("ListAllMyBucketsResult");
        WriteOwner(xml);
        xml.Start("Buckets");
        foreach (BucketInfo bucket in buckets.OrderBy(b => b.Name, StringComparer.Ordinal))
            xml.Start("Bucket").Element("Name", bucket.Name).Element("CreationDate", IsoTime(bucket.Created)).End();
        xml.End();
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    private static async Task GetBucketLocationAsync(HttpContext context)
    {
        // The bucket's existence is checked by the caller's next request; the region is whatever the client signs with.
        var xml = new S3XmlWriter("LocationConstraint");
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    private async Task HeadBucketAsync(HttpContext context, S3Request request)
    {
        await RequireBucketAsync(request.Bucket, context.RequestAborted).ConfigureAwait(false);
        context.Response.StatusCode = 200;
    }

    private async Task RequireBucketAsync(string bucket, CancellationToken ct)
    {
        var buckets = await client.ListBucketsAsync(ct).ConfigureAwait(false);
        if (!buckets.Any(b => b.Name == bucket))
            throw S3Exception.NoSuchBucket(bucket);
    }

    private async Task CreateBucketAsync(HttpContext context, S3Request request, S3Principal principal)
    {
        // The optional body is a CreateBucketConfiguration (a location constraint): checked for well-formedness, ignored.
        byte[] body = await ReadXmlBodyAsync(context, principal).ConfigureAwait(false);
        if (body.Length > 0)
            S3XmlReader.Parse(body);
        if (!await client.CreateBucketAsync(request.Bucket, context.RequestAborted).ConfigureAwait(false))
            throw new S3Exception(409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.");
        context.Response.Headers.Location = "/" + request.Bucket;
        context.Response.StatusCode = 200;
    }

    private async Task DeleteBucketAsync(HttpContext context, S3Request request)
    {
        if (!await client.DeleteBucketAsync(request.Bucket, context.RequestAborted).ConfigureAwait(false))
            throw S3Exception.NoSuchBucket(request.Bucket);
        context.Response.StatusCode = 204;
    }

    /// <summary>A small request body (XML), read whole and verified against Content-MD5 and the signed payload hash.</summary>
    private async Task<byte[]> ReadXmlBodyAsync(HttpContext context, S3Principal principal)
    {
        if (context.Request.ContentLength > options.MaxXmlBodyBytes)
            throw S3Exception.MalformedXml($"the body is larger than {options.MaxXmlBodyBytes} bytes");
        using var body = VerifiedBody(context, principal, options.MaxXmlBodyBytes);
        try
        {
            return await body.ReadAllAsync(context.RequestAborted).ConfigureAwait(false);
        }
        catch (S3Exception e) when (e.Code == "EntityTooLarge")
        {
            throw S3Exception.MalformedXml($"the body is larger than {options.MaxXmlBodyBytes} bytes");
        }
    }

    /// <summary>
    /// The request body, verified while it is read by a <see cref="VerifyingStream"/> (size limit, Content-MD5, the signed
    /// SHA-256); an aws-chunked body (x-amz-content-sha256: STREAMING-*) is decoded and verified by an
    /// <see cref="AwsChunkedStream"/> under it, so the limit, Content-MD5 and the MD5 (ETag) apply to the decoded bytes.
    /// </summary>
    private static VerifyingStream VerifiedBody(HttpContext context, S3Principal principal, long maxBytes, Action<string>? onVerified = null)
    {
        byte[]? md5 = ContentMd5(context);
        if (principal.Streaming is not { } streaming)
            return new VerifyingStream(context.Request.Body, maxBytes, md5, principal.PayloadSha256Hex, onVerified);
        var chunked = new AwsChunkedStream(context.Request.Body, streaming, DecodedContentLength(context.Request, maxBytes),
            context.Request.Headers["x-amz-trailer"].ToString());
        return new VerifyingStream(chunked, maxBytes, md5, null, onVerified, disposeInner: true);
    }

    /// <summary>x-amz-decoded-content-length: 411 MissingContentLength without it, 400 EntityTooLarge above <paramref name="maxBytes"/>.</summary>
    private static long DecodedContentLength(HttpRequest request, long maxBytes)
    {
        string value = request.Headers["x-amz-decoded-content-length"].ToString();
        if (value.Length == 0)
            throw new S3Exception(411, "MissingContentLength", "An aws-chunked body needs the x-amz-decoded-content-length header.");
        if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long length))
            throw S3Exception.InvalidArgument($"x-amz-decoded-content-length '{value}' is not a number of bytes");
        if (length > maxBytes)
            throw new S3Exception(400, "EntityTooLarge", $"Your proposed upload exceeds the maximum allowed size of {maxBytes} bytes.");
        return length;
    }

    /// <summary>The Content-MD5 header's digest (null when absent); 400 InvalidDigest when it is not a base64 MD5.</summary>
    private static byte[]? ContentMd5(HttpContext context)
    {
        string? value = context.Request.Headers["Content-MD5"];
        if (string.IsNullOrEmpty(value))
            return null;
        var digest = new byte[16];
        if (!Convert.TryFromBase64String(value, digest, out int written) || written != 16)
            throw new S3Exception(400, "InvalidDigest", "The Content-MD5 you specified was invalid.");
        return digest;
    }

    private static void WriteOwner(S3XmlWriter xml) =>
        xml.Start("Owner").Element("ID", "chain").Element("DisplayName", "chain").End();

    internal static string IsoTime(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    /// <summary>The quoted ETag of an object: the MD5 the gateway stored, else (written by another client) a stand-in from its SHA-256.</summary>
    internal static string ETagOf(ObjectInfo info) =>
        "\"" + (info.UserMetadata.TryGetValue(EtagMetadataKey, out string? md5) ? md5
            : info.UserMetadata.TryGetValue(ChainClient.MultipartETagMetadata, out string? multipart) ? multipart
            : info.Sha256Hex[..32]) + "\"";

    /// <summary>User-metadata entries that are ETags kept by the gateway or the client library, not x-amz-meta-* headers.</summary>
    internal static bool IsETagEntry(string name) => name is EtagMetadataKey or ChainClient.MultipartETagMetadata;
}
