using System.Globalization;

namespace Chain.DistBench;

/// <summary>
/// Plain downloads from the store: a Chain cluster (master and <see cref="_nodes"/> nodes) runs inside the origin's
/// namespace, so every byte any peer reads leaves through the origin's one shaped link; every peer runs its own client
/// process (<c>_fetch</c>) in its namespace. The clients connect first and say READY; the common start is the instant
/// the benchmark tells them all to go (each has read a small object first, so connections and compiled code are warm).
/// </summary>
public sealed class StoreWay : IDistributionWay
{
    private readonly int _nodes;
    private OriginStore? _origin;

    public StoreWay(int nodes) => _nodes = nodes;

    public string Name => DistBenchOptions.Store;

    public string? Unavailable() => null;

    public async Task PrepareAsync(WayContext context, CancellationToken ct)
    {
        _origin = await OriginStore.StartAsync(context, _nodes, tracker: false, chunkBytes: null, ct).ConfigureAwait(false);
        context.Log($"store: {_nodes}-node cluster in the origin namespace holds {OriginStore.Bucket}/{_origin.Key}");
    }

    public Task<WayRun> RunAsync(WayContext context, CancellationToken ct)
    {
        OriginStore origin = _origin ?? throw new InvalidOperationException("PrepareAsync first");
        return TimedPeers.RunAsync(context, "store", peer =>
            PeerCommands.Self(PeerCommands.Fetch, "--master", origin.Cluster.MasterAddress.ToString(), "--bucket", OriginStore.Bucket, "--key", origin.Key,
                "--warmup", OriginStore.WarmupKey,
                "--seconds", context.Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture),
                "--out", context.PeerFile(peer)), stopAfterAll: false, ct);
    }

    public async ValueTask DisposeAsync()
    {
        if (_origin is not null)
            await _origin.DisposeAsync().ConfigureAwait(false);
        _origin = null;
    }
}
