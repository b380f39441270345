using System.Globalization;
using Chain.Gateway.S3;

namespace Chain.GatewayBench;

/// <summary>
/// Signs a request with Signature V4 in the Authorization header (host, x-amz-content-sha256 and x-amz-date signed),
/// using the gateway's own <see cref="SigV4"/> functions. Bodies are sent as UNSIGNED-PAYLOAD: the benchmark
/// measures the transfer, not a second pass over the body to hash it before sending.
/// </summary>
public sealed class S3Signer(string accessKeyId, string secretKey, string region = "us-east-1", TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Adds x-amz-date, x-amz-content-sha256 and Authorization to <paramref name="request"/> (its URI absolute, query-free).</summary>
    public void Sign(HttpRequestMessage request, string payloadHash = SigV4.UnsignedPayload)
    {
        Uri uri = request.RequestUri ?? throw new ArgumentException("the request needs an absolute URI", nameof(request));
        if (uri.Query.Length > 0)
            throw new ArgumentException("the signer signs query-free requests only", nameof(request));
        DateTimeOffset now = _time.GetUtcNow();
        string amzDate = now.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        string date = amzDate[..8];
        string host = uri.IsDefaultPort ? uri.Host : $"{uri.Host}:{uri.Port}";
        request.Headers.Host = host;
        request.Headers.Add("x-amz-date", amzDate);
        request.Headers.Add("x-amz-content-sha256", payloadHash);
        KeyValuePair<string, string>[] headers =
        [
            new("host", host),
            new("x-amz-content-sha256", payloadHash),
            new("x-amz-date", amzDate),
        ];
        string canonical = SigV4.CanonicalRequest(request.Method.Method, SigV4.CanonicalUri(uri.AbsolutePath), "", headers, payloadHash);
        string scope = $"{date}/{region}/s3/aws4_request";
        string signature = SigV4.Signature(SigV4.SigningKey(secretKey, date, region, "s3"), SigV4.StringToSign(amzDate, scope, canonical));
        request.Headers.TryAddWithoutValidation("Authorization",
            $"{SigV4.Algorithm} Credential={accessKeyId}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}");
    }
}
