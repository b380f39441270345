using Chain.Client;
using Chain.Harness;

namespace Chain.DistBench;

/// <summary>
/// The Chain cluster at the origin: master and nodes (and the tracker, when asked for) inside the origin's namespace, so
/// every byte a peer reads from the store leaves through the origin's one shaped link. Holds the benchmark's object
/// (stored in chunks of <c>chunkBytes</c>) and a small warm-up object.
/// </summary>
internal sealed class OriginStore : IAsyncDisposable
{
    public const string Bucket = "distbench";
    public const string WarmupKey = "warmup";

    /// <summary>Chunks of the warm-up object: enough that the tier's peers fetch some from each other while warming up.</summary>
    private const int WarmupChunks = 4;
    private const int DefaultWarmupChunkBytes = 64 * 1024;

    /// <summary>The first port of the tier's cluster (master, nodes, then the tracker), clear of the store way's 7400+.</summary>
    private const int P2PBasePort = 7450;

    private OriginStore(LocalCluster cluster, string key)
    {
        Cluster = cluster;
        Key = key;
    }

    public LocalCluster Cluster { get; }

    public string Key { get; }

    public static async Task<OriginStore> StartAsync(WayContext context, int nodes, bool tracker, int? chunkBytes, CancellationToken ct)
    {
        var cluster = await LocalCluster.StartAsync(new LocalClusterOptions
        {
            Nodes = nodes,
            DataDirectory = Path.Combine(context.WorkDirectory, tracker ? "cluster-p2p" : "cluster"),
            DeleteDataOnDispose = true,
            Network = ClusterNetwork.SharedNamespace,
            SharedNamespace = new SharedNamespacePlacement(context.OriginLauncher, context.OriginAddress),
            MaxObjectBytes = Math.Max(context.SizeBytes, 64L << 20),
            Tracker = tracker ? new LocalTrackerOptions() : null,
            // Every way's cluster runs in the origin's namespace at once: each on its own ports.
            BasePort = tracker ? P2PBasePort : LocalCluster.NamespacePort,
        }, ct).ConfigureAwait(false);
        try
        {
            string key = context.ObjectName;
            var clientOptions = new ChainClientOptions { Master = cluster.MasterAddress };
            if (chunkBytes is { } chunk)
                clientOptions = clientOptions with { ChunkBytes = chunk };
            await using var client = new ChainClient(clientOptions);
            await client.CreateBucketAsync(Bucket, ct).ConfigureAwait(false);
            await using (var source = new FileStream(context.SourceFile, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true))
            {
                await client.PutAsync(Bucket, key, source, cancellationToken: ct).ConfigureAwait(false);
            }
            // Distinct chunks (identical ones would be stored, and fetched, once).
            var warmup = new byte[WarmupChunks * (chunkBytes ?? DefaultWarmupChunkBytes)];
            new Random(7).NextBytes(warmup);
            await client.PutAsync(Bucket, WarmupKey, warmup, cancellationToken: ct).ConfigureAwait(false);
            return new OriginStore(cluster, key);
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public ValueTask DisposeAsync() => Cluster.DisposeAsync();
}
