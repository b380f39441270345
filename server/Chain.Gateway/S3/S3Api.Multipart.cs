using System.Globalization;
using Chain.Client;
using Microsoft.AspNetCore.Http;

namespace Chain.Gateway.S3;

public sealed partial class S3Api
{
    /// <summary>
    /// Multipart uploads over the client library's multipart API: initiate (POST ?uploads), upload part
    /// (PUT ?partNumber&amp;uploadId, streamed through <see cref="VerifyingStream"/> as PutObject is), complete
    /// (POST ?uploadId), abort (DELETE ?uploadId), list uploads (GET bucket?uploads), list parts (GET ?uploadId).
    /// </summary>
    private Task HandleMultipartAsync(HttpContext context, S3Request request, S3Principal principal)
    {
        string method = context.Request.Method;
        if (request.Key.Length == 0)
        {
            return method == "GET" && request.Has("uploads")
                ? ListUploadsAsync(context, request)
                : throw S3Exception.NotImplemented($"{method} on a bucket with multipart parameters");
        }
        CheckKey(request.Key);
        bool hasUpload = request.Get("uploadId") is { Length: > 0 };
        return method switch
        {
            "POST" when request.Has("uploads") => InitiateUploadAsync(context, request),
            "PUT" when hasUpload && request.Has("partNumber") && !context.Request.Headers.ContainsKey("x-amz-copy-source")
                => UploadPartAsync(context, request, principal),
            "POST" when hasUpload => CompleteUploadAsync(context, request, principal),
            "DELETE" when hasUpload => AbortUploadAsync(context, request),
            "GET" when hasUpload => ListPartsAsync(context, request),
            _ => throw S3Exception.NotImplemented($"{method} of an object with these multipart parameters"),
        };
    }

    /// <summary>S3's status for a multipart error code (NoSuchUpload 404, the rest 400).</summary>
    private static S3Exception MultipartError(MultipartException e) =>
        new(e.S3ErrorCode == "NoSuchUpload" ? 404 : 400, e.S3ErrorCode, e.Message);

    private async Task InitiateUploadAsync(HttpContext context, S3Request request)
    {
        var multipart = new MultipartOptions
        {
            ContentType = ContentTypeOf(context.Request.ContentType),
            UserMetadata = UserMetadataFrom(context.Request.Headers),
        };
        string uploadId = await client.InitiateMultipartAsync(request.Bucket, request.Key, multipart, context.RequestAborted).ConfigureAwait(false);
        var xml = new S3XmlWriter("InitiateMultipartUploadResult");
        xml.Element("Bucket", request.Bucket).Element("Key", request.Key).Element("UploadId", uploadId);
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    private async Task UploadPartAsync(HttpContext context, S3Request request, S3Principal principal)
    {
        if (!int.TryParse(request.Get("partNumber"), NumberStyles.None, CultureInfo.InvariantCulture, out int partNumber)
            || partNumber is < 1 or > ChainClient.PartNumberMax)
            throw S3Exception.InvalidArgument($"Part number must be an integer between 1 and {ChainClient.PartNumberMax}, inclusive");
        long maxBytes = Math.Min(ChainClient.PartBytesMax, options.MaxObjectBytes); // S3's part limit, and no part above an object's
        if (principal.Streaming is null)
            CheckBodyLength(context.Request, maxBytes, "part");
        // The same verification as PutObject: size, Content-MD5 and the signed payload hash (or aws-chunked), all before end of stream.
        using var body = VerifiedBody(context, principal, maxBytes);
        PartInfo part;
        try
        {
            part = await client.UploadPartAsync(request.Bucket, request.Key, request.Get("uploadId")!, partNumber, body, null, context.RequestAborted)
                .ConfigureAwait(false);
        }
        catch (Exception) when (body.Failure is { } failure)
        {
            throw failure;
        }
        context.Response.Headers.ETag = "\"" + part.ETag + "\"";
        context.Response.StatusCode = 200;
    }

    private async Task CompleteUploadAsync(HttpContext context, S3Request request, S3Principal principal)
    {
        var root = S3XmlReader.Parse(await ReadXmlBodyAsync(context, principal).ConfigureAwait(false));
        if (root.Name.LocalName != "CompleteMultipartUpload")
            throw S3Exception.MalformedXml("the root element must be CompleteMultipartUpload");
        var parts = new List<CompletedPart>();
        foreach (var part in S3XmlReader.Children(root, "Part"))
        {
            string? etag = S3XmlReader.ChildValue(part, "ETag");
            if (!int.TryParse(S3XmlReader.ChildValue(part, "PartNumber"), NumberStyles.None, CultureInfo.InvariantCulture, out int number)
                || string.IsNullOrEmpty(etag))
                throw S3Exception.MalformedXml("every Part needs a PartNumber and an ETag");
            parts.Add(new CompletedPart(number, etag));
        }
        if (parts.Count == 0)
            throw S3Exception.MalformedXml("CompleteMultipartUpload names no Part");
        // More than 10000 parts, or more than MaxObjectBytes in all: EntityTooLarge (ObjectTooLargeException), nothing written.
        var result = await client.CompleteMultipartAsync(request.Bucket, request.Key, request.Get("uploadId")!, parts, options.MaxObjectBytes,
            context.RequestAborted).ConfigureAwait(false);
        var xml = new S3XmlWriter("CompleteMultipartUploadResult");
        xml.Element("Location", $"/{request.Bucket}/{request.Key}").Element("Bucket", request.Bucket).Element("Key", request.Key)
            .Element("ETag", "\"" + result.ETag + "\"");
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    private async Task AbortUploadAsync(HttpContext context, S3Request request)
    {
        await client.AbortMultipartAsync(request.Bucket, request.Key, request.Get("uploadId")!, context.RequestAborted).ConfigureAwait(false);
        context.Response.StatusCode = 204;
    }

    private async Task ListUploadsAsync(HttpContext context, S3Request request)
    {
        ListQuery query = ListQueryOf(request, "max-uploads");
        string keyMarker = request.Get("key-marker") ?? "";
        string uploadIdMarker = keyMarker.Length > 0 ? request.Get("upload-id-marker") ?? "" : ""; // S3 ignores it without a key marker
        // max-uploads=0: an empty page, truncated when an upload follows the markers.
        var page = await client.ListMultipartUploadsPageAsync(request.Bucket, new MultipartUploadListOptions
        {
            Prefix = query.Prefix,
            Delimiter = query.Delimiter,
            KeyMarker = keyMarker,
            UploadIdMarker = uploadIdMarker,
            MaxUploads = Math.Max(query.MaxKeys, 1),
        }, context.RequestAborted).ConfigureAwait(false);
        if (query.MaxKeys == 0)
            page = new MultipartUploadPage([], [], page.Uploads.Count + page.CommonPrefixes.Count > 0, keyMarker, uploadIdMarker);

        var xml = new S3XmlWriter("ListMultipartUploadsResult");
        xml.Element("Bucket", request.Bucket).Element("KeyMarker", Encode(query, keyMarker)).Element("UploadIdMarker", uploadIdMarker);
        if (page.IsTruncated)
            xml.Element("NextKeyMarker", Encode(query, page.NextKeyMarker ?? "")).Element("NextUploadIdMarker", page.NextUploadIdMarker ?? "");
        xml.Element("Prefix", Encode(query, query.Prefix));
        if (query.Delimiter is not null)
            xml.Element("Delimiter", Encode(query, query.Delimiter));
        if (query.UrlEncoded)
            xml.Element("EncodingType", "url");
        xml.Element("MaxUploads", query.MaxKeys.ToString(CultureInfo.InvariantCulture)).Element("IsTruncated", page.IsTruncated ? "true" : "false");
        foreach (var upload in page.Uploads)
        {
            xml.Start("Upload").Element("Key", Encode(query, upload.Key)).Element("UploadId", upload.UploadId);
            xml.Start("Initiator").Element("ID", "chain").Element("DisplayName", "chain").End();
            WriteOwner(xml);
            xml.Element("StorageClass", "STANDARD").Element("Initiated", IsoTime(upload.Initiated)).End();
        }
        WriteCommonPrefixes(xml, query, page.CommonPrefixes);
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    private async Task ListPartsAsync(HttpContext context, S3Request request)
    {
        string uploadId = request.Get("uploadId")!;
        int maxParts = Math.Min(NonNegativeParameter(request, "max-parts", 1000), 1000);
        int marker = NonNegativeParameter(request, "part-number-marker", 0);
        // max-parts=0: an empty page, truncated when a part follows the marker.
        var page = await client.ListPartsPageAsync(request.Bucket, request.Key, uploadId,
            new PartListOptions { PartNumberMarker = marker, MaxParts = Math.Max(maxParts, 1) }, context.RequestAborted).ConfigureAwait(false);
        if (maxParts == 0)
            page = new PartPage([], page.Parts.Count > 0, marker);
        var xml = new S3XmlWriter("ListPartsResult");
        xml.Element("Bucket", request.Bucket).Element("Key", request.Key).Element("UploadId", uploadId)
            .Element("PartNumberMarker", marker.ToString(CultureInfo.InvariantCulture))
            .Element("NextPartNumberMarker", page.NextPartNumberMarker.ToString(CultureInfo.InvariantCulture))
            .Element("MaxParts", maxParts.ToString(CultureInfo.InvariantCulture)).Element("IsTruncated", page.IsTruncated ? "true" : "false")
            .Element("StorageClass", "STANDARD");
        xml.Start("Initiator").Element("ID", "chain").Element("DisplayName", "chain").End();
        WriteOwner(xml);
        foreach (var part in page.Parts)
        {
            xml.Start("Part").Element("PartNumber", part.PartNumber.ToString(CultureInfo.InvariantCulture))
                .Element("LastModified", IsoTime(part.LastModified)).Element("ETag", "\"" + part.ETag + "\"")
                .Element("Size", part.Size.ToString(CultureInfo.InvariantCulture)).End();
        }
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    /// <summary>A non-negative integer query parameter (<paramref name="absent"/> when missing); 400 InvalidArgument otherwise.</summary>
    private static int NonNegativeParameter(S3Request request, string name, int absent)
    {
        string? text = request.Get(name);
        if (text is null)
            return absent;
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw S3Exception.InvalidArgument($"{name} must be a non-negative integer");
    }
}
