using System.Globalization;
using System.Text;
using Chain.Client;
using Microsoft.AspNetCore.Http;

namespace Chain.Gateway.S3;

public sealed partial class S3Api
{
    private sealed record ListQuery(string Prefix, string? Delimiter, int MaxKeys, bool UrlEncoded);

    private async Task ListObjectsV2Async(HttpContext context, S3Request request)
    {
        ListQuery query = ListQueryOf(request);
        string? token = request.Get("continuation-token");
        string? startAfter = request.Get("start-after");
        ListPage page = await ListAsync(request.Bucket, query, token, startAfter, context.RequestAborted).ConfigureAwait(false);
        var xml = new S3XmlWriter("ListBucketResult");
        xml.Element("Name", request.Bucket).Element("Prefix", Encode(query, query.Prefix));
        if (startAfter is not null)
            xml.Element("StartAfter", Encode(query, startAfter));
        if (token is not null)
            xml.Element("ContinuationToken", token);
        xml.Element("KeyCount", (page.Objects.Count + page.CommonPrefixes.Count).ToString(CultureInfo.InvariantCulture));
        WriteListTail(xml, query, page);
        if (page.NextContinuationToken is { } next)
            xml.Element("NextContinuationToken", next);
        WriteEntries(xml, query, page);
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    private async Task ListObjectsV1Async(HttpContext context, S3Request request)
    {
        ListQuery query = ListQueryOf(request);
        string marker = request.Get("marker") ?? "";
        ListPage page = await ListAsync(request.Bucket, query, null, marker, context.RequestAborted).ConfigureAwait(false);
        var xml = new S3XmlWriter("ListBucketResult");
        xml.Element("Name", request.Bucket).Element("Prefix", Encode(query, query.Prefix)).Element("Marker", Encode(query, marker));
        WriteListTail(xml, query, page);
        if (page.IsTruncated && LastEntry(page) is { } last)
            xml.Element("NextMarker", Encode(query, last));
        WriteEntries(xml, query, page);
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    /// <summary>GET ?versions of an unversioned bucket: every object once, as its only ("null") version.</summary>
    private async Task ListVersionsAsync(HttpContext context, S3Request request)
    {
        ListQuery query = ListQueryOf(request);
        string keyMarker = request.Get("key-marker") ?? "";
        ListPage page = await ListAsync(request.Bucket, query, null, keyMarker, context.RequestAborted).ConfigureAwait(false);
        var xml = new S3XmlWriter("ListVersionsResult");
        xml.Element("Name", request.Bucket).Element("Prefix", Encode(query, query.Prefix)).Element("KeyMarker", Encode(query, keyMarker))
            .Element("VersionIdMarker", "");
        WriteListTail(xml, query, page);
        if (page.IsTruncated && LastEntry(page) is { } last)
            xml.Element("NextKeyMarker", Encode(query, last)).Element("NextVersionIdMarker", "null");
        foreach (ObjectInfo info in page.Objects)
        {
            xml.Start("Version").Element("Key", Encode(query, info.Key)).Element("VersionId", "null").Element("IsLatest", "true")
                .Element("LastModified", IsoTime(info.Created)).Element("ETag", ETagOf(info))
                .Element("Size", info.Size.ToString(CultureInfo.InvariantCulture)).Element("StorageClass", "STANDARD");
            WriteOwner(xml);
            xml.End();
        }
        WriteCommonPrefixes(xml, query, page.CommonPrefixes);
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }

    /// <summary>The prefix, delimiter, encoding and page size (<paramref name="maxName"/>: at most 1000, the default) of a listing.</summary>
    private static ListQuery ListQueryOf(S3Request request, string maxName = "max-keys")
    {
        int maxKeys = NonNegativeParameter(request, maxName, 1000);
        string? encoding = request.Get("encoding-type");
        if (encoding is not null && encoding != "url")
            throw S3Exception.InvalidArgument("Invalid Encoding Method specified in Request");
        string? delimiter = request.Get("delimiter");
        return new ListQuery(request.Get("prefix") ?? "", string.IsNullOrEmpty(delimiter) ? null : delimiter, Math.Min(maxKeys, 1000), encoding == "url");
    }

    private async Task<ListPage> ListAsync(string bucket, ListQuery query, string? token, string? startAfter, CancellationToken ct)
    {
        if (query.MaxKeys == 0)
        {
            await RequireBucketAsync(bucket, ct).ConfigureAwait(false);
            return new ListPage([], [], false, null);
        }
        return await client.ListPageAsync(bucket, new ListRequestOptions
        {
            Prefix = query.Prefix,
            Delimiter = query.Delimiter,
            ContinuationToken = token,
            StartAfter = string.IsNullOrEmpty(startAfter) ? null : startAfter,
            MaxKeys = query.MaxKeys,
        }, ct).ConfigureAwait(false);
    }

    private static void WriteListTail(S3XmlWriter xml, ListQuery query, ListPage page)
    {
        xml.Element("MaxKeys", query.MaxKeys.ToString(CultureInfo.InvariantCulture));
        if (query.Delimiter is not null)
            xml.Element("Delimiter", Encode(query, query.Delimiter));
        if (query.UrlEncoded)
            xml.Element("EncodingType", "url");
        xml.Element("IsTruncated", page.IsTruncated ? "true" : "false");
    }

    private static void WriteEntries(S3XmlWriter xml, ListQuery query, ListPage page)
    {
        foreach (ObjectInfo info in page.Objects)
        {
            xml.Start("Contents").Element("Key", Encode(query, info.Key)).Element("LastModified", IsoTime(info.Created))
                .Element("ETag", ETagOf(info)).Element("Size", info.Size.ToString(CultureInfo.InvariantCulture))
                .Element("StorageClass", "STANDARD").End();
        }
        WriteCommonPrefixes(xml, query, page.CommonPrefixes);
    }

    private static void WriteCommonPrefixes(S3XmlWriter xml, ListQuery query, IReadOnlyList<string> commonPrefixes)
    {
        foreach (string prefix in commonPrefixes)
            xml.Start("CommonPrefixes").Element("Prefix", Encode(query, prefix)).End();
    }

    /// <summary>The page's last entry in key order (unsigned UTF-8 bytes), object or common prefix.</summary>
    private static string? LastEntry(ListPage page)
    {
        string? last = page.Objects.Count > 0 ? page.Objects[^1].Key : null;
        if (page.CommonPrefixes.Count > 0 && (last is null || CompareUtf8(page.CommonPrefixes[^1], last) > 0))
            last = page.CommonPrefixes[^1];
        return last;
    }

    private static int CompareUtf8(string a, string b) => Encoding.UTF8.GetBytes(a).AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(b));

    private static string Encode(ListQuery query, string value) => query.UrlEncoded ? SigV4.UriEncode(value, keepSlash: true) : value;
}
