using System.Diagnostics;
using Chain.Client;
using Chain.Harness;

namespace Chain.DistBench;

/// <summary>
/// Plain downloads from the store: a Chain cluster (master and <see cref="_nodes"/> nodes) runs inside the origin's
/// namespace, so every byte any peer reads leaves through the origin's one shaped link; every peer runs its own client
/// process (<c>_fetch</c>) in its namespace. The clients connect first and say READY; the common start is the instant
/// the benchmark tells them all to go (each has read a small object first, so connections and compiled code are warm).
/// </summary>
public sealed class StoreWay : IDistributionWay
{
    private const string Bucket = "distbench";
    private const string WarmupKey = "warmup";
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);
    private readonly int _nodes;
    private LocalCluster? _cluster;
    private string _key = "";

    public StoreWay(int nodes) => _nodes = nodes;

    public string Name => DistBenchOptions.Store;

    public string? Unavailable() => null;

    public async Task PrepareAsync(WayContext context, CancellationToken ct)
    {
        _cluster = await LocalCluster.StartAsync(new LocalClusterOptions
        {
            Nodes = _nodes,
            DataDirectory = Path.Combine(context.WorkDirectory, "cluster"),
            DeleteDataOnDispose = true,
            Network = ClusterNetwork.SharedNamespace,
            SharedNamespace = new SharedNamespacePlacement(context.OriginLauncher, context.OriginAddress),
            MaxObjectBytes = Math.Max(context.SizeBytes, 64L << 20),
        }, ct).ConfigureAwait(false);
        _key = context.ObjectName;
        await using ChainClient client = _cluster.CreateClient();
        await client.CreateBucketAsync(Bucket, ct).ConfigureAwait(false);
        await using var source = new FileStream(context.SourceFile, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true);
        await client.PutAsync(Bucket, _key, source, cancellationToken: ct).ConfigureAwait(false);
        await client.PutAsync(Bucket, WarmupKey, new byte[64 * 1024], cancellationToken: ct).ConfigureAwait(false);
        context.Log($"store: {_nodes}-node cluster in the origin namespace holds {Bucket}/{_key}");
    }

    public async Task<WayRun> RunAsync(WayContext context, CancellationToken ct)
    {
        LocalCluster cluster = _cluster ?? throw new InvalidOperationException("PrepareAsync first");
        var fetchers = new List<NetnsProcess>();
        try
        {
            for (int peer = 1; peer <= context.Peers; peer++)
            {
                fetchers.Add(NetnsProcess.Start($"store fetcher p{peer}", context.PeerLauncher(peer),
                    PeerCommands.Self(PeerCommands.Fetch, "--master", cluster.MasterAddress.ToString(), "--bucket", Bucket, "--key", _key, "--warmup", WarmupKey,
                        "--seconds", context.Timeout.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture),
                        "--out", context.PeerFile(peer)),
                    context.LogPath($"store-p{peer}")));
            }
            foreach (NetnsProcess fetcher in fetchers)
                await fetcher.ExpectAsync("READY", ReadyTimeout, ct).ConfigureAwait(false);

            var cpu = new CpuWindow();
            long start = Stopwatch.GetTimestamp();
            await Task.WhenAll(fetchers.Select(f => f.WriteLineAsync("GO"))).ConfigureAwait(false);
            TimeSpan bound = context.Timeout;
            var done = await Task.WhenAll(fetchers.Select(f => f.ExpectAsync("DONE", bound, ct))).ConfigureAwait(false);
            double idle = cpu.IdlePercent();
            foreach (NetnsProcess fetcher in fetchers)
            {
                if (await fetcher.WaitForExitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false) is not 0)
                    throw new InvalidOperationException($"{fetcher.Name} did not exit cleanly after DONE");
            }
            return new WayRun(done.Select(d => Stopwatch.GetElapsedTime(start, d.Timestamp).TotalSeconds).ToArray(), idle);
        }
        finally
        {
            foreach (NetnsProcess fetcher in fetchers)
                await fetcher.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync().ConfigureAwait(false);
        _cluster = null;
    }
}
