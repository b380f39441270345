using System.Diagnostics;
using System.Net;
using Chain.Client;
using Chain.Harness;
using Chain.ScaleBench;

namespace Chain.GatewayBench;

/// <summary>
/// One benchmark run: a 3-node cluster with an S3 gateway, then for the small and the large objects PUT and GET through
/// the gateway (SigV4-signed HTTP) and through the client library directly, every GET's bytes checked by SHA-256.
/// </summary>
public static class BenchRun
{
    public const string Bucket = "gwbench";

    public static async Task<BenchResults> RunAsync(GatewayBenchOptions options, string dataDirectory, Action<string> log, CancellationToken ct)
    {
        var results = new BenchResults();
        var clusterOptions = new LocalClusterOptions
        {
            Nodes = GatewayBenchOptions.Nodes,
            Replicas = GatewayBenchOptions.Replicas,
            Chains = options.Chains,
            DataDirectory = dataDirectory,
            DeleteDataOnDispose = !options.Keep,
            Gateway = new LocalGatewayOptions { MaxObjectBytes = Math.Max(options.LargeBytes, options.SmallBytes) },
        };
        log($"starting {GatewayBenchOptions.Nodes} nodes, {options.Chains} chains x {GatewayBenchOptions.Replicas} replicas, and a gateway");
        await using LocalCluster cluster = await LocalCluster.StartAsync(clusterOptions, ct).ConfigureAwait(false);
        await using ChainClient client = cluster.CreateClient();
        await client.CreateBucketAsync(Bucket, ct).ConfigureAwait(false);
        var gatewayUri = new Uri($"http://127.0.0.1:{cluster.Gateway!.Port}/");
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = options.Workers, UseProxy = false })
        {
            BaseAddress = gatewayUri,
            Timeout = Timeout.InfiniteTimeSpan,
        };
        var signer = new S3Signer(LocalGatewayOptions.DevAccessKeyId, LocalGatewayOptions.DevSecretKey);
        var transports = new ITransport[] { new GatewayTransport(http, signer), new DirectTransport(client) };

        // One unmeasured PUT and GET per path first, so neither path's first phase pays for start-up (JIT, connections).
        foreach (ITransport transport in transports)
        {
            var warm = new BenchObject($"warmup/{transport.Path.ToString().ToLowerInvariant()}", 1 << 16, Seed(transport.Path, "warmup", 0));
            await transport.PutAsync(warm, ct).ConfigureAwait(false);
            await transport.GetAsync(warm, Stream.Null, ct).ConfigureAwait(false);
        }

        var sizes = new List<(string Name, long Bytes, int Count, int Workers)> { ("small", options.SmallBytes, options.SmallCount, options.Workers) };
        if (options.LargeCount > 0)
            sizes.Add(("large", options.LargeBytes, options.LargeCount, 1));
        foreach (var (name, bytes, count, workers) in sizes)
        {
            foreach (ITransport transport in transports)
            {
                var objects = Enumerable.Range(0, count)
                    .Select(i => new BenchObject($"{transport.Path.ToString().ToLowerInvariant()}/{name}/{i:D6}", bytes, Seed(transport.Path, name, i)))
                    .ToArray();
                log($"{transport.Path}: hashing {count} x {ByteSize.Format(bytes)} objects to check the reads against");
                foreach (BenchObject o in objects)
                    o.Digest = await DigestOfAsync(o, ct).ConfigureAwait(false);
                foreach (BenchOp op in new[] { BenchOp.Put, BenchOp.Get })
                {
                    log($"{transport.Path} {op}: {count} x {ByteSize.Format(bytes)}, {workers} worker(s)");
                    var eligible = op == BenchOp.Put ? objects : objects.Where(o => o.Stored).ToArray();
                    results.Phases.Add(await RunPhaseAsync(transport, op, eligible, bytes, workers, options.PhaseBound, results.Failures, ct)
                        .ConfigureAwait(false));
                }
            }
        }
        return results;
    }

    private static ulong Seed(BenchPath path, string size, int index) =>
        (ulong)(((long)path + 1) * 1_000_003 + (size == "small" ? 0 : size == "large" ? 500_000_000 : 900_000_000) + index) * 0x9E3779B97F4A7C15UL;

    private static async Task<string> DigestOfAsync(BenchObject o, CancellationToken ct)
    {
        using var digest = new DigestStream();
        await using var source = new PatternStream(o.Bytes, o.Seed);
        await source.CopyToAsync(digest, ct).ConfigureAwait(false);
        return digest.DigestHex();
    }

    private static async Task<PhaseFigures> RunPhaseAsync(ITransport transport, BenchOp op, BenchObject[] objects, long bytes, int workers,
        TimeSpan bound, List<string> failures, CancellationToken ct)
    {
        int next = -1;
        var latencies = new List<TimeSpan>();
        var clock = Stopwatch.StartNew();
        async Task WorkerAsync()
        {
            while (clock.Elapsed < bound)
            {
                int index = Interlocked.Increment(ref next);
                if (index >= objects.Length)
                    return;
                BenchObject o = objects[index];
                long start = Stopwatch.GetTimestamp();
                string? failure;
                try
                {
                    if (op == BenchOp.Put)
                    {
                        await transport.PutAsync(o, ct).ConfigureAwait(false);
                        o.Stored = true;
                        failure = null;
                    }
                    else
                    {
                        using var digest = new DigestStream();
                        await transport.GetAsync(o, digest, ct).ConfigureAwait(false);
                        failure = digest.Length != o.Bytes || digest.DigestHex() != o.Digest
                            ? $"{transport.Path} GET {o.Key}: {digest.Length} bytes with SHA-256 {digest.DigestHex()}, expected {o.Bytes} bytes with {o.Digest}"
                            : null;
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    failure = $"{transport.Path} {op.ToString().ToUpperInvariant()} {o.Key}: {e.GetType().Name}: {e.Message}";
                }
                TimeSpan latency = Stopwatch.GetElapsedTime(start);
                lock (latencies)
                {
                    if (failure is null)
                        latencies.Add(latency);
                    else
                        failures.Add(failure);
                }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(WorkerAsync, ct))).ConfigureAwait(false);
        return new PhaseFigures(transport.Path, op, bytes, workers, clock.Elapsed, latencies);
    }

    private sealed class BenchObject(string key, long bytes, ulong seed)
    {
        public string Key { get; } = key;
        public long Bytes { get; } = bytes;
        public ulong Seed { get; } = seed;
        public string Digest { get; set; } = "";
        public bool Stored { get; set; }
    }

    private interface ITransport
    {
        BenchPath Path { get; }
        Task PutAsync(BenchObject o, CancellationToken ct);
        Task GetAsync(BenchObject o, Stream destination, CancellationToken ct);
    }

    private sealed class DirectTransport(ChainClient client) : ITransport
    {
        public BenchPath Path => BenchPath.Direct;

        public async Task PutAsync(BenchObject o, CancellationToken ct)
        {
            await using var body = new PatternStream(o.Bytes, o.Seed);
            await client.PutAsync(Bucket, o.Key, body, cancellationToken: ct).ConfigureAwait(false);
        }

        public Task GetAsync(BenchObject o, Stream destination, CancellationToken ct) =>
            client.GetAsync(Bucket, o.Key, destination, cancellationToken: ct);
    }

    private sealed class GatewayTransport(HttpClient http, S3Signer signer) : ITransport
    {
        public BenchPath Path => BenchPath.Gateway;

        public async Task PutAsync(BenchObject o, CancellationToken ct)
        {
            using var request = new HttpRequestMessage(HttpMethod.Put, new Uri(http.BaseAddress!, $"{Bucket}/{o.Key}"));
            request.Content = new StreamContent(new PatternStream(o.Bytes, o.Seed), 1 << 20);
            request.Content.Headers.ContentLength = o.Bytes;
            signer.Sign(request);
            using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            await EnsureOkAsync(response, ct).ConfigureAwait(false);
        }

        public async Task GetAsync(BenchObject o, Stream destination, CancellationToken ct)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(http.BaseAddress!, $"{Bucket}/{o.Key}"));
            signer.Sign(request);
            using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            await EnsureOkAsync(response, ct).ConfigureAwait(false);
            await using Stream body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            await body.CopyToAsync(destination, 1 << 20, ct).ConfigureAwait(false);
        }

        private static async Task EnsureOkAsync(HttpResponseMessage response, CancellationToken ct)
        {
            if (response.StatusCode == HttpStatusCode.OK)
                return;
            string text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            throw new HttpRequestException($"{(int)response.StatusCode} {response.ReasonPhrase}: {text[..Math.Min(text.Length, 300)]}");
        }
    }
}
