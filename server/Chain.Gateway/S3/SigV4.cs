using System.Security.Cryptography;
using System.Text;

namespace Chain.Gateway.S3;

/// <summary>
/// AWS Signature Version 4 for S3: canonical request, string to sign, signing key and signature. Pure functions; the
/// request side (which headers, which payload hash) lives in <see cref="S3Auth"/>.
/// </summary>
public static class SigV4
{
    public const string Algorithm = "AWS4-HMAC-SHA256";
    public const string UnsignedPayload = "UNSIGNED-PAYLOAD";
    public const string StreamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    public const string StreamingPayloadTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
    public const string StreamingUnsignedPayloadTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
    public const string EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// <summary>S3's URI encoding: every byte of the UTF-8 form except A-Z a-z 0-9 - . _ ~ (and '/' when kept) as %XX.</summary>
    public static string UriEncode(string value, bool keepSlash)
    {
        var text = new StringBuilder(value.Length + 16);
        foreach (byte b in Encoding.UTF8.GetBytes(value))
        {
            char c = (char)b;
            if (char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '~' || (keepSlash && c == '/'))
                text.Append(c);
            else
                text.Append('%').Append(Convert.ToHexString([b]));
        }
        return text.ToString();
    }

    /// <summary>The canonical URI of a path as sent (percent-encoded in any way): each segment decoded, then encoded once.</summary>
    public static string CanonicalUri(string rawPath)
    {
        if (rawPath.Length == 0)
            return "/";
        return UriEncode(Uri.UnescapeDataString(rawPath), keepSlash: true);
    }

    /// <summary>The canonical query string: decoded names and values, encoded, sorted by name then value.</summary>
    public static string CanonicalQuery(IEnumerable<KeyValuePair<string, string>> decodedParameters)
    {
        var encoded = decodedParameters
            .Select(p => (Name: UriEncode(p.Key, false), Value: UriEncode(p.Value, false)))
            .OrderBy(p => p.Name, StringComparer.Ordinal)
            .ThenBy(p => p.Value, StringComparer.Ordinal);
        return string.Join('&', encoded.Select(p => p.Name + "=" + p.Value));
    }

    /// <summary>A header value as signed: trimmed, runs of spaces collapsed to one.</summary>
    public static string CanonicalHeaderValue(string value)
    {
        var text = new StringBuilder(value.Length);
        bool space = false;
        foreach (char c in value.Trim())
        {
            if (c == ' ')
            {
                space = true;
                continue;
            }
            if (space)
                text.Append(' ');
            space = false;
            text.Append(c);
        }
        return text.ToString();
    }

    /// <param name="headers">The signed headers: lower-case names in sorted order with canonical values.</param>
    public static string CanonicalRequest(string method, string canonicalUri, string canonicalQuery,
        IReadOnlyList<KeyValuePair<string, string>> headers, string payloadHash)
    {
        var text = new StringBuilder();
        text.Append(method).Append('\n').Append(canonicalUri).Append('\n').Append(canonicalQuery).Append('\n');
        foreach (var (name, value) in headers)
            text.Append(name).Append(':').Append(value).Append('\n');
        text.Append('\n').Append(string.Join(';', headers.Select(h => h.Key))).Append('\n').Append(payloadHash);
        return text.ToString();
    }

    public static string StringToSign(string amzDate, string scope, string canonicalRequest) =>
        $"{Algorithm}\n{amzDate}\n{scope}\n{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest)))}";

    /// <summary>The string to sign of one aws-chunked chunk: chained to the previous chunk's (or the seed) signature.</summary>
    public static string ChunkStringToSign(string amzDate, string scope, string previousSignature, string chunkSha256Hex) =>
        $"{Algorithm}-PAYLOAD\n{amzDate}\n{scope}\n{previousSignature}\n{EmptyPayloadHash}\n{chunkSha256Hex}";

    /// <param name="canonicalTrailers">Each trailing header but the signature as "name:value\n", in the order sent.</param>
    public static string TrailerStringToSign(string amzDate, string scope, string previousSignature, string canonicalTrailers) =>
        $"{Algorithm}-TRAILER\n{amzDate}\n{scope}\n{previousSignature}\n{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalTrailers)))}";

    public static byte[] SigningKey(string secret, string date, string region, string service)
    {
        byte[] key = Hmac(Encoding.UTF8.GetBytes("AWS4" + secret), date);
        key = Hmac(key, region);
        key = Hmac(key, service);
        return Hmac(key, "aws4_request");
    }

    public static string Signature(byte[] signingKey, string stringToSign) => Convert.ToHexStringLower(Hmac(signingKey, stringToSign));

    /// <summary>Whether a received signature (hex, any case) is the expected one (lower-case hex), in constant time.</summary>
    public static bool SignaturesEqual(string expected, string received) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(received.ToLowerInvariant()));

    private static byte[] Hmac(byte[] key, string data) => HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(data));
}
