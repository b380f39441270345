using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Chain.Gateway.S3;

/// <summary>A path-style S3 request as sent: bucket, key and query parameters decoded from the raw request target.</summary>
public sealed class S3Request
{
    private S3Request(string rawPath, string bucket, string key, IReadOnlyList<KeyValuePair<string, string>> query)
    {
        RawPath = rawPath;
        Bucket = bucket;
        Key = key;
        Query = query;
    }

    /// <summary>The path exactly as the client sent it (still percent-encoded).</summary>
    public string RawPath { get; }
    /// <summary>Empty for the service (ListBuckets).</summary>
    public string Bucket { get; }
    /// <summary>Empty for bucket requests.</summary>
    public string Key { get; }
    /// <summary>Decoded query parameters in the order sent (a parameter without '=' has an empty value).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Query { get; }

    public bool Has(string name) => Query.Any(p => p.Key == name);

    public string? Get(string name)
    {
        foreach (var (n, v) in Query)
        {
            if (n == name)
                return v;
        }
        return null;
    }

    public static S3Request Parse(HttpContext context)
    {
        string target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? (context.Request.PathBase + context.Request.Path + context.Request.QueryString);
        int q = target.IndexOf('?');
        string rawPath = q < 0 ? target : target[..q];
        string rawQuery = q < 0 ? "" : target[(q + 1)..];
        if (!rawPath.StartsWith('/'))
            throw S3Exception.InvalidArgument("the request target must be an absolute path");
        string decodedPath;
        try
        {
            decodedPath = Uri.UnescapeDataString(rawPath);
        }
        catch (UriFormatException)
        {
            throw S3Exception.InvalidArgument("the path is not valid percent-encoding");
        }
        string rest = decodedPath[1..];
        int slash = rest.IndexOf('/');
        string bucket = slash < 0 ? rest : rest[..slash];
        string key = slash < 0 ? "" : rest[(slash + 1)..];
        var query = new List<KeyValuePair<string, string>>();
        foreach (string part in rawQuery.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=');
            string name = eq < 0 ? part : part[..eq];
            string value = eq < 0 ? "" : part[(eq + 1)..];
            query.Add(new(Decode(name), Decode(value)));
        }
        return new S3Request(rawPath, bucket, key, query);
    }

    private static string Decode(string component) => Uri.UnescapeDataString(component.Replace('+', ' '));
}
