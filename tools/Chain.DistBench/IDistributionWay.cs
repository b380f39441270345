using System.Net;
using Chain.Bench;
using Chain.Harness;

namespace Chain.DistBench;

/// <summary>
/// One way of getting the origin's object to every peer (the store, BitTorrent, Chain's distribution tier). The
/// benchmark prepares each way once before shaping the links, then times <see cref="RunAsync"/> once per run; after it
/// returns, every peer's copy must be at <see cref="WayContext.PeerFile"/> (the benchmark checks its SHA-256 and
/// removes it before the next run).
/// </summary>
public interface IDistributionWay : IAsyncDisposable
{
    /// <summary>The name on the command line and in the table (store, bittorrent, chain-p2p).</summary>
    string Name { get; }

    /// <summary>Null when this way can run on this machine; otherwise why not (printed; the other ways go on).</summary>
    string? Unavailable();

    /// <summary>Once, before the links are shaped: start services, load the object at the origin.</summary>
    Task PrepareAsync(WayContext context, CancellationToken ct);

    /// <summary>
    /// One timed distribution: every peer starts at a common instant; each peer's completion time is measured from it.
    /// Throws <see cref="TimeoutException"/> when the peers are not done within <see cref="WayContext.Timeout"/>.
    /// </summary>
    Task<WayRun> RunAsync(WayContext context, CancellationToken ct);
}

/// <summary>One timed run of a way: seconds from the common start to each peer's completion (peer order), CPU idle during it.</summary>
public sealed record WayRun(IReadOnlyList<double> PeerSeconds, double CpuIdlePercent);

/// <summary>What a way works with: the network (process 0 = origin, 1..N = the peers), the object, directories, the time bound.</summary>
public sealed class WayContext
{
    public required NamespaceNetwork Network { get; init; }
    public required int Peers { get; init; }
    public required string SourceFile { get; init; }
    public required long SizeBytes { get; init; }
    public required string WorkDirectory { get; init; }
    public required TimeSpan Timeout { get; init; }
    public Action<string> Log { get; init; } = _ => { };

    /// <summary>The object's file name (the same at the origin and at every peer).</summary>
    public string ObjectName => Path.GetFileName(SourceFile);

    public IPAddress OriginAddress => Network.AddressOf(0);

    public IReadOnlyList<string> OriginLauncher => Network.LauncherFor(0);

    /// <summary>The launcher of peer <paramref name="peer"/> (1..N).</summary>
    public IReadOnlyList<string> PeerLauncher(int peer) => Network.LauncherFor(CheckPeer(peer));

    public string PeerDirectory(int peer) => Path.Combine(WorkDirectory, "peers", "p" + CheckPeer(peer).ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Where peer <paramref name="peer"/>'s copy must be when a run ends.</summary>
    public string PeerFile(int peer) => Path.Combine(PeerDirectory(peer), ObjectName);

    public string LogPath(string name) => Path.Combine(WorkDirectory, "logs", name + ".log");

    private int CheckPeer(int peer)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(peer, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(peer, Peers);
        return peer;
    }
}

/// <summary>CPU idle over a window: started at the common start of a run, read at its end.</summary>
internal sealed class CpuWindow
{
    private readonly CpuSample? _start = CpuSample.Read();

    public double IdlePercent() => CpuSample.IdlePercent(_start, CpuSample.Read());
}
