using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Chain.Client;
using Chain.Gateway.S3;
using Chain.Harness;

namespace Chain.Gateway.Tests;

/// <summary>The test classes that share one cluster and gateway (they run one after the other).</summary>
[CollectionDefinition(Name)]
public sealed class GatewayCollection : ICollectionFixture<GatewayFixture>
{
    public const string Name = "gateway";
}

/// <summary>A three-node cluster of real processes on loopback with a gateway process (`Chain.Server gateway`), shared by the test classes of <see cref="GatewayCollection"/>.</summary>
public sealed class GatewayFixture : IAsyncLifetime
{
    public const string AccessKey = "test-key";
    public const string Secret = "test-secret-0123456789";
    public const string PublicBucket = "public-read";
    /// <summary>The gateway's object size limit: above the largest multipart test object (50 MiB), which must fit in it.</summary>
    public const long MaxObjectBytes = 64L * 1024 * 1024;

    private readonly string _root = Path.Combine(Path.GetTempPath(), "chain-gateway-" + Guid.NewGuid().ToString("N"));
    private LocalCluster? _cluster;

    public LocalCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");
    public Uri Endpoint => Cluster.Gateway!.Address;
    public string EndpointText => Endpoint.ToString().TrimEnd('/');
    /// <summary>A temporary directory for tool configurations and files.</summary>
    public string Work => Path.Combine(_root, "work");
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };

    /// <summary>A new, empty directory under <see cref="Work"/> for one test's files.</summary>
    public string NewWorkDir(string name)
    {
        string path = Path.Combine(Work, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>An s3cmd configuration for this gateway, written into <paramref name="dir"/>; returns its path.</summary>
    public async Task<string> WriteS3cmdConfigAsync(string dir)
    {
        string config = Path.Combine(dir, "s3cfg");
        string host = Endpoint.Authority;
        await File.WriteAllTextAsync(config,
            $"[default]\naccess_key = {AccessKey}\nsecret_key = {Secret}\nhost_base = {host}\nhost_bucket = {host}\n" +
            "use_https = False\nsignature_v2 = False\n");
        return config;
    }

    /// <summary>An rclone configuration with the remote "chain:" for this gateway, written into <paramref name="dir"/>.</summary>
    public async Task<string> WriteRcloneConfigAsync(string dir)
    {
        string config = Path.Combine(dir, "rclone.conf");
        await File.WriteAllTextAsync(config,
            $"[chain]\ntype = s3\nprovider = Other\naccess_key_id = {AccessKey}\nsecret_access_key = {Secret}\n" +
            $"endpoint = {EndpointText}\nforce_path_style = true\n");
        return config;
    }

    /// <summary>
    /// The arguments of `env` that run the aws CLI against this gateway, with its configuration and credentials written into
    /// <paramref name="dir"/>; <paramref name="s3Settings"/> adds indented lines to the `s3 =` section.
    /// </summary>
    public async Task<List<string>> AwsCommandAsync(string dir, string secret = Secret, string s3Settings = "")
    {
        string config = Path.Combine(dir, "aws-config");
        string credentials = Path.Combine(dir, "aws-credentials");
        await File.WriteAllTextAsync(config, "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n" + s3Settings);
        await File.WriteAllTextAsync(credentials, $"[default]\naws_access_key_id = {AccessKey}\naws_secret_access_key = {secret}\n");
        return
        [
            $"AWS_CONFIG_FILE={config}", $"AWS_SHARED_CREDENTIALS_FILE={credentials}", "AWS_EC2_METADATA_DISABLED=true", "HOME=" + dir,
            "/usr/bin/aws", "--endpoint-url", EndpointText, "--no-cli-pager",
        ];
    }

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Work);
        _cluster = await LocalCluster.StartAsync(new LocalClusterOptions
        {
            Nodes = 3,
            Chains = 8,
            DataDirectory = Path.Combine(_root, "cluster"),
            Gateway = new LocalGatewayOptions
            {
                AccessKeys = new Dictionary<string, string> { [AccessKey] = Secret },
                AnonymousReadBuckets = [PublicBucket],
                MaxObjectBytes = MaxObjectBytes,
            },
        });
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        if (_cluster is not null)
            await _cluster.DisposeAsync();
        if (Environment.GetEnvironmentVariable("CHAIN_KEEP_TEST_DATA") != "1")
            LocalCluster.TryDeleteDirectory(_root);
    }

    public ChainClient CreateClient() => Cluster.CreateClient();

    /// <summary>
    /// A request signed with Signature V4 in the Authorization header. <paramref name="signedPayloadHash"/> replaces the
    /// body's real SHA-256 in x-amz-content-sha256 (the signature covers whatever is sent).
    /// </summary>
    public async Task<HttpResponseMessage> SendSignedAsync(HttpMethod method, string pathAndQuery, byte[]? body = null,
        IReadOnlyDictionary<string, string>? headers = null, string? signedPayloadHash = null, string secret = Secret)
    {
        var request = new HttpRequestMessage(method, new Uri(Endpoint, pathAndQuery));
        if (body is not null)
            request.Content = new ByteArrayContent(body);
        Sign(request, signedPayloadHash ?? Convert.ToHexStringLower(SHA256.HashData(body ?? [])), headers, secret);
        return await Http.SendAsync(request);
    }

    /// <summary>
    /// Adds x-amz-date, x-amz-content-sha256 (<paramref name="payloadHash"/>), <paramref name="headers"/> (content-*
    /// ones to the content) and a Signature V4 Authorization header signing them all and host; returns the signature,
    /// x-amz-date and credential scope (what an aws-chunked body's chunk signatures chain from).
    /// </summary>
    public static (string Signature, string AmzDate, string Scope) Sign(HttpRequestMessage request, string payloadHash,
        IReadOnlyDictionary<string, string>? headers = null, string secret = Secret)
    {
        HttpMethod method = request.Method;
        string amzDate = DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var signed = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["host"] = request.RequestUri!.Authority,
            ["x-amz-content-sha256"] = payloadHash,
            ["x-amz-date"] = amzDate,
        };
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
            signed[name.ToLowerInvariant()] = value;
        foreach (var (name, value) in signed)
        {
            if (name == "host")
                continue;
            if (name.StartsWith("content-", StringComparison.Ordinal))
            {
                request.Content ??= new ByteArrayContent([]);
                if (name == "content-md5")
                    request.Content.Headers.ContentMD5 = Convert.FromBase64String(value);
                else
                    request.Content.Headers.TryAddWithoutValidation(name, value);
            }
            else
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        }
        string rawPath = request.RequestUri.AbsolutePath;
        var query = request.RequestUri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries).Select(p =>
        {
            int eq = p.IndexOf('=');
            return eq < 0 ? new KeyValuePair<string, string>(Uri.UnescapeDataString(p), "")
                : new KeyValuePair<string, string>(Uri.UnescapeDataString(p[..eq]), Uri.UnescapeDataString(p[(eq + 1)..]));
        });
        string canonical = SigV4.CanonicalRequest(method.Method, SigV4.CanonicalUri(rawPath), SigV4.CanonicalQuery(query), signed.ToList(), payloadHash);
        string date = amzDate[..8];
        string scope = $"{date}/us-east-1/s3/aws4_request";
        string signature = SigV4.Signature(SigV4.SigningKey(secret, date, "us-east-1", "s3"), SigV4.StringToSign(amzDate, scope, canonical));
        request.Headers.Authorization = new AuthenticationHeaderValue(SigV4.Algorithm,
            $"Credential={AccessKey}/{scope}, SignedHeaders={string.Join(';', signed.Keys)}, Signature={signature}");
        return (signature, amzDate, scope);
    }

    /// <summary>Creates the bucket through the gateway (200 expected); returns its name.</summary>
    public async Task<string> NewBucketAsync(string name)
    {
        var response = await SendSignedAsync(HttpMethod.Put, "/" + name);
        Assert.Equal(200, (int)response.StatusCode);
        return name;
    }

    public static async Task AssertErrorAsync(HttpResponseMessage response, int status, string code)
    {
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal(code, await ErrorCodeAsync(response));
    }

    /// <summary>The S3 error code of an XML error body.</summary>
    public static async Task<string> ErrorCodeAsync(HttpResponseMessage response)
    {
        string body = await response.Content.ReadAsStringAsync();
        int start = body.IndexOf("<Code>", StringComparison.Ordinal);
        int end = body.IndexOf("</Code>", StringComparison.Ordinal);
        return start < 0 || end < start ? "(no code in: " + body + ")" : body[(start + 6)..end];
    }

    public static byte[] Content(int seed, int size)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static string Md5Base64(byte[] data) => Convert.ToBase64String(MD5.HashData(data));

    public static string Text(byte[] data) => Encoding.UTF8.GetString(data);
}
