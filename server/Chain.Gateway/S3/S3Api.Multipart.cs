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
        const long maxBytes = ChainClient.PartBytesMax; // S3's part limit; MaxObjectBytes bounds single PUTs
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
        var result = await client.CompleteMultipartAsync(request.Bucket, request.Key, request.Get("uploadId")!, parts, context.RequestAborted)
            .ConfigureAwait(false);
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
        string prefix = request.Get("prefix") ?? "";
        var uploads = await client.ListMultipartUploadsAsync(request.Bucket, prefix, context.RequestAborted).ConfigureAwait(false);
        var xml = new S3XmlWriter("ListMultipartUploadsResult");
        xml.Element("Bucket", request.Bucket).Element("KeyMarker", "").Element("UploadIdMarker", "").Element("Prefix", prefix)
            .Element("MaxUploads", "1000").Element("IsTruncated", "false");
        foreach (var upload in uploads)
        {
            xml.Start("Upload").Element("Key", upload.Key).Element("UploadId", upload.UploadId);
            xml.Start("Initiator").Element("ID", "chain").Element("DisplayName", "chain").End();
            WriteOwner(xml);
            xml.Element("StorageClass", "STANDARD").Element("Initiated", IsoTime(upload.Initiated)).End();
        }
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    private async Task ListPartsAsync(HttpContext context, S3Request request)
    {
        string uploadId = request.Get("uploadId")!;
        var parts = await client.ListPartsAsync(request.Bucket, request.Key, uploadId, context.RequestAborted).ConfigureAwait(false);
        int marker = int.TryParse(request.Get("part-number-marker"), NumberStyles.None, CultureInfo.InvariantCulture, out int m) ? m : 0;
        var xml = new S3XmlWriter("ListPartsResult");
        xml.Element("Bucket", request.Bucket).Element("Key", request.Key).Element("UploadId", uploadId)
            .Element("PartNumberMarker", marker.ToString(CultureInfo.InvariantCulture))
            .Element("MaxParts", ChainClient.PartNumberMax.ToString(CultureInfo.InvariantCulture)).Element("IsTruncated", "false")
            .Element("StorageClass", "STANDARD");
        foreach (var part in parts.Where(p => p.PartNumber > marker))
        {
            xml.Start("Part").Element("PartNumber", part.PartNumber.ToString(CultureInfo.InvariantCulture))
                .Element("LastModified", IsoTime(part.LastModified)).Element("ETag", "\"" + part.ETag + "\"")
                .Element("Size", part.Size.ToString(CultureInfo.InvariantCulture)).End();
        }
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }
}
