using System.Globalization;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;

namespace Chain.DistBench;

/// <summary>
/// Chain's distribution tier: the store and a tracker in the origin's namespace (behind its one shaped link), and one
/// peer agent per peer namespace (<c>_p2p</c>: library mode, fresh cache each run). The tracker names, per chunk, the
/// peer or the store each agent downloads from; agents verify every chunk and keep serving until the last peer is done.
/// The object is stored in chunks of <see cref="ChunkBytes"/> (the tier's unit of transfer and verification).
/// </summary>
public sealed class ChainP2PWay : IDistributionWay
{
    /// <summary>
    /// Chunk size of the benchmark's object. A peer passes a chunk on only once it is whole and verified, so each hop
    /// costs a chunk's transfer time: at 16 peers on 20 Mbit/s links 1 MiB chunks finished 23.8 s, 512 KiB 21.6 s,
    /// 256 KiB 22.2 s (more per-chunk work on a CPU-bound machine).
    /// </summary>
    public const int ChunkBytes = 512 * 1024;

    private const int AgentPort = 7700;
    private static readonly TimeSpan SwarmDrainTimeout = TimeSpan.FromSeconds(30);
    private readonly int _nodes;
    private OriginStore? _origin;
    private int _run;

    public ChainP2PWay(int nodes) => _nodes = nodes;

    public string Name => DistBenchOptions.ChainP2P;

    public string? Unavailable() => null;

    public async Task PrepareAsync(WayContext context, CancellationToken ct)
    {
        _origin = await OriginStore.StartAsync(context, _nodes, tracker: true, ChunkBytes, ct).ConfigureAwait(false);
        context.Log($"chain-p2p: {_nodes}-node cluster and tracker {_origin.Cluster.TrackerAddress} in the origin namespace; " +
            $"{OriginStore.Bucket}/{_origin.Key} in {ChunkBytes / 1024} KiB chunks");
    }

    public async Task<WayRun> RunAsync(WayContext context, CancellationToken ct)
    {
        OriginStore origin = _origin ?? throw new InvalidOperationException("PrepareAsync first");
        Uri tracker = origin.Cluster.TrackerAddress ?? throw new InvalidOperationException("the origin has no tracker");
        // The last run's agents have left: wait until the tracker has dropped them, so none is named as a source.
        await WaitForEmptySwarmsAsync(tracker, ct).ConfigureAwait(false);
        int run = ++_run;
        return await TimedPeers.RunAsync(context, "chain-p2p", peer => PeerCommands.Self(PeerCommands.P2P,
            "--listen", $"{context.Network.AddressOf(peer)}:{AgentPort}",
            "--master", origin.Cluster.MasterAddress.ToString(),
            "--tracker", tracker.ToString(),
            "--cache", Path.Combine(context.PeerDirectory(peer), $"agent-cache-{run}"),
            "--cache-bytes", (context.SizeBytes * 2 + (64L << 20)).ToString(CultureInfo.InvariantCulture),
            "--bucket", OriginStore.Bucket, "--key", origin.Key, "--warmup", OriginStore.WarmupKey,
            "--seconds", context.Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture),
            "--out", context.PeerFile(peer)), stopAfterAll: true, ct).ConfigureAwait(false);
    }

    private static async Task WaitForEmptySwarmsAsync(Uri tracker, CancellationToken ct)
    {
        using var channel = new RpcChannel(tracker);
        var deadline = DateTime.UtcNow + SwarmDrainTimeout;
        for (int attempt = 0; ; attempt++)
        {
            var status = await channel.UnaryAsync(TrackerMethods.SwarmStatus, new SwarmStatusRequest(),
                new CallOptions { Timeout = TimeSpan.FromSeconds(5), CancellationToken = ct }).ConfigureAwait(false);
            if (status.Swarms.All(s => s.Peers.Count == 0))
                return;
            if (DateTime.UtcNow > deadline || attempt >= 300)
                throw new TimeoutException($"the tracker still lists peers of an earlier run after {SwarmDrainTimeout.TotalSeconds} s");
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_origin is not null)
            await _origin.DisposeAsync().ConfigureAwait(false);
        _origin = null;
    }
}
