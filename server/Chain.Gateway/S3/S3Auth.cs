using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Chain.Gateway.S3;

/// <summary>What a verified request may do and what its body must hash to.</summary>
/// <param name="AccessKey">The signer's key id; null for an anonymous request.</param>
/// <param name="PayloadSha256Hex">The signed SHA-256 of the body (lower-case hex); null when the payload is unsigned.</param>
/// <param name="Streaming">How to decode and verify an aws-chunked body (x-amz-content-sha256: STREAMING-*); null for a plain body.</param>
public sealed record S3Principal(string? AccessKey, string? PayloadSha256Hex, StreamingUpload? Streaming = null);

/// <summary>
/// An aws-chunked body: whether each chunk carries a chunk-signature, whether trailing headers follow the last chunk,
/// and what verifies the signatures (null: they are not checked, on a gateway without keys).
/// </summary>
public sealed record StreamingUpload(bool SignedChunks, bool Trailer, ChunkSigning? Signing)
{
    /// <summary>The streaming mode an x-amz-content-sha256 value names; null when it names none; 501 for one not implemented (ECDSA).</summary>
    public static StreamingUpload? Of(string payloadHash, ChunkSigning? signing) => payloadHash switch
    {
        SigV4.StreamingPayload => new StreamingUpload(true, false, signing),
        SigV4.StreamingPayloadTrailer => new StreamingUpload(true, true, signing),
        SigV4.StreamingUnsignedPayloadTrailer => new StreamingUpload(false, true, null),
        _ when payloadHash.StartsWith("STREAMING-", StringComparison.Ordinal) => throw S3Exception.NotImplemented($"streaming payload signing '{payloadHash}'"),
        _ => null,
    };
}

/// <summary>What an aws-chunked body's chunk signatures chain from: the request's signing key, x-amz-date, credential scope and (seed) signature.</summary>
public sealed record ChunkSigning(byte[] SigningKey, string AmzDate, string Scope, string SeedSignature);

/// <summary>Verifies AWS Signature V4 requests: header-signed (Authorization) or presigned (X-Amz-* query parameters).</summary>
public sealed class S3Auth(GatewayOptions options)
{
    private const string AmzDateFormat = "yyyyMMdd'T'HHmmss'Z'";
    private static readonly TimeSpan PresignedExpiresMax = TimeSpan.FromDays(7);

    /// <summary>The principal of the request, or an <see cref="S3Exception"/> (403) when it is not properly signed.</summary>
    public S3Principal Authenticate(HttpContext context, S3Request request)
    {
        if (options.AccessKeys.Count == 0)
        {
            // No keys configured: no authentication (signatures are not checked), but a hex payload hash is still honoured.
            string hash = context.Request.Headers["x-amz-content-sha256"].ToString();
            return new S3Principal(null, IsSha256Hex(hash) ? hash.ToLowerInvariant() : null, StreamingUpload.Of(hash, null));
        }
        string? authorization = context.Request.Headers.Authorization;
        if (!string.IsNullOrEmpty(authorization))
            return VerifyHeader(context, request, authorization);
        if (request.Get("X-Amz-Algorithm") is { } algorithm)
            return VerifyPresigned(context, request, algorithm);
        return new S3Principal(null, null);
    }

    private S3Principal VerifyHeader(HttpContext context, S3Request request, string authorization)
    {
        if (!authorization.StartsWith(SigV4.Algorithm + " ", StringComparison.Ordinal))
            throw S3Exception.InvalidArgument("only AWS Signature Version 4 (AWS4-HMAC-SHA256) is supported");
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string part in authorization[(SigV4.Algorithm.Length + 1)..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=');
            if (eq > 0)
                fields[part[..eq]] = part[(eq + 1)..];
        }
        if (!fields.TryGetValue("Credential", out string? credential) || !fields.TryGetValue("SignedHeaders", out string? signedHeaders)
            || !fields.TryGetValue("Signature", out string? signature))
            throw S3Exception.InvalidArgument("the Authorization header needs Credential, SignedHeaders and Signature");
        string amzDate = context.Request.Headers["x-amz-date"].ToString();
        if (amzDate.Length == 0)
            throw S3Exception.AccessDenied("a signed request needs an x-amz-date header");
        DateTimeOffset signedAt = ParseAmzDate(amzDate);
        CheckSkew(signedAt);
        string payloadHash = context.Request.Headers["x-amz-content-sha256"].ToString();
        if (payloadHash.Length == 0)
            throw new S3Exception(400, "InvalidRequest", "missing required header for this request: x-amz-content-sha256");
        bool streaming = StreamingUpload.Of(payloadHash, null) is not null;
        bool unsigned = payloadHash == SigV4.UnsignedPayload;
        if (!unsigned && !streaming && !IsSha256Hex(payloadHash))
            throw new S3Exception(400, "InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-* or a hex SHA-256");
        var (key, signing) = Verify(context, request, credential, signedHeaders, signature, amzDate, payloadHash, excludeSignatureParameter: false);
        if (streaming)
            return new S3Principal(key, null, StreamingUpload.Of(payloadHash, signing));
        return new S3Principal(key, unsigned ? null : payloadHash.ToLowerInvariant());
    }

    private S3Principal VerifyPresigned(HttpContext context, S3Request request, string algorithm)
    {
        if (algorithm != SigV4.Algorithm)
            throw S3Exception.InvalidArgument("only X-Amz-Algorithm=AWS4-HMAC-SHA256 is supported");
        string credential = request.Get("X-Amz-Credential") ?? throw S3Exception.AccessDenied("presigned request without X-Amz-Credential");
        string signedHeaders = request.Get("X-Amz-SignedHeaders") ?? throw S3Exception.AccessDenied("presigned request without X-Amz-SignedHeaders");
        string signature = request.Get("X-Amz-Signature") ?? throw S3Exception.AccessDenied("presigned request without X-Amz-Signature");
        string amzDate = request.Get("X-Amz-Date") ?? throw S3Exception.AccessDenied("presigned request without X-Amz-Date");
        if (!int.TryParse(request.Get("X-Amz-Expires"), NumberStyles.None, CultureInfo.InvariantCulture, out int expiresSeconds)
            || TimeSpan.FromSeconds(expiresSeconds) > PresignedExpiresMax)
            throw S3Exception.AuthorizationQueryError("X-Amz-Expires must be a number of seconds up to 604800");
        DateTimeOffset signedAt = ParseAmzDate(amzDate);
        DateTimeOffset now = options.Time.GetUtcNow();
        if (signedAt - now > options.MaxClockSkew)
            throw new S3Exception(403, "RequestTimeTooSkewed", "the presigned request's date is in the future");
        if (now > signedAt.AddSeconds(expiresSeconds))
            throw S3Exception.AccessDenied("Request has expired");
        var (key, _) = Verify(context, request, credential, signedHeaders, signature, amzDate, SigV4.UnsignedPayload, excludeSignatureParameter: true);
        return new S3Principal(key, null);
    }

    /// <summary>Recomputes the signature; returns the access key id and what chunk signatures chain from when it matches.</summary>
    private (string AccessKey, ChunkSigning Signing) Verify(HttpContext context, S3Request request, string credential, string signedHeaders, string signature, string amzDate,
        string payloadHash, bool excludeSignatureParameter)
    {
        // Credential = KEY/DATE/REGION/SERVICE/aws4_request (the key id itself contains no '/').
        string[] scope = credential.Split('/');
        if (scope.Length != 5 || scope[4] != "aws4_request" || scope[3] != "s3")
            throw new S3Exception(400, "AuthorizationHeaderMalformed", $"malformed credential scope '{credential}'");
        string accessKey = scope[0];
        if (!options.AccessKeys.TryGetValue(accessKey, out string? secret))
            throw new S3Exception(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
        if (!amzDate.StartsWith(scope[1], StringComparison.Ordinal))
            throw new S3Exception(400, "AuthorizationHeaderMalformed", "the credential date does not match the request date");

        string[] names = signedHeaders.Split(';');
        if (!names.Contains("host"))
            throw S3Exception.AccessDenied("the host header must be signed");
        var headers = new List<KeyValuePair<string, string>>(names.Length);
        foreach (string name in names)
        {
            if (name.Length == 0 || name != name.ToLowerInvariant())
                throw new S3Exception(400, "AuthorizationHeaderMalformed", $"signed header names must be lower case: '{name}'");
            string value = string.Join(',', context.Request.Headers[name].Select(v => SigV4.CanonicalHeaderValue(v ?? "")));
            headers.Add(new(name, value));
        }
        headers.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        var parameters = excludeSignatureParameter ? request.Query.Where(p => p.Key != "X-Amz-Signature") : request.Query;
        string canonical = SigV4.CanonicalRequest(context.Request.Method, SigV4.CanonicalUri(request.RawPath), SigV4.CanonicalQuery(parameters),
            headers, payloadHash);
        string scopeText = string.Join('/', scope[1..]);
        byte[] signingKey = SigV4.SigningKey(secret, scope[1], scope[2], scope[3]);
        string expected = SigV4.Signature(signingKey, SigV4.StringToSign(amzDate, scopeText, canonical));
        if (!SigV4.SignaturesEqual(expected, signature))
            throw S3Exception.SignatureDoesNotMatch("check your key and signing method");
        return (accessKey, new ChunkSigning(signingKey, amzDate, scopeText, expected));
    }

    private void CheckSkew(DateTimeOffset signedAt)
    {
        if ((signedAt - options.Time.GetUtcNow()).Duration() > options.MaxClockSkew)
            throw new S3Exception(403, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.");
    }

    private static DateTimeOffset ParseAmzDate(string value)
    {
        if (!DateTimeOffset.TryParseExact(value, AmzDateFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal,
                out DateTimeOffset at))
            throw S3Exception.AccessDenied($"malformed x-amz-date '{value}'");
        return at;
    }

    internal static bool IsSha256Hex(string value) => value.Length == 64 && value.All(char.IsAsciiHexDigit);
}
