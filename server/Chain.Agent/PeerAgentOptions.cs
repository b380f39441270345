using System.Net;

namespace Chain.Agent;

/// <summary>Options of a <see cref="PeerAgent"/> (`Chain.Server agent …` maps its flags onto these).</summary>
public sealed record PeerAgentOptions
{
    /// <summary>Where the Peer and Agent services listen (port 0: any free port).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 0);
    /// <summary>
    /// The data port (raw TCP chunk transfers to other peers, on the listen address): 0 any free port, -1 none (peers
    /// then fetch over Peer.GetChunk).
    /// </summary>
    public int DataPort { get; init; }
    /// <summary>The address other peers reach this one at; null: the listen address (loopback for a wildcard bind).</summary>
    public Uri? AdvertiseAddress { get; init; }
    /// <summary>The store's master (layouts and store reads).</summary>
    public required Uri Master { get; init; }
    /// <summary>The tracker; null: no tracker, every chunk comes from the store.</summary>
    public Uri? Tracker { get; init; }
    /// <summary>The chunk cache's directory (also keeps the peer id).</summary>
    public required string CacheDirectory { get; init; }
    public long CacheBytes { get; init; } = 1L << 30;
    /// <summary>Upload cap in bytes per second over all uploads (0: unlimited).</summary>
    public long UploadBytesPerSecond { get; init; }
    /// <summary>Download cap in bytes per second over all downloads (0: unlimited).</summary>
    public long DownloadBytesPerSecond { get; init; }
    /// <summary>
    /// Chunk uploads served at once; more get RESOURCE_EXHAUSTED (busy on the data port). Few and fast beats many and
    /// slow: a chunk can be passed on only once it is whole, so an upload shared eight ways delays every next hop
    /// (measured on DistBench at 16 peers: 4 at once finished 20 % sooner than 8).
    /// </summary>
    public int MaxUploads { get; init; } = 4;
    public string Zone { get; init; } = "";
    /// <summary>Chunk downloads of one object in flight at once.</summary>
    public int DownloadParallelism { get; init; } = 4;
    /// <summary>Deadline of one chunk's transfer from one source.</summary>
    public TimeSpan ChunkTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Failed attempts of one chunk (any sources) before its download fails.</summary>
    public int ChunkAttemptsMax { get; init; } = 16;
    /// <summary>Deadline of one call to the tracker; a tracker that fails it is given up for the download (store fallback).</summary>
    public TimeSpan TrackerTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>How often seeded swarms are re-announced and evictions reported (at most; the tracker's lease may ask for more often).</summary>
    public TimeSpan SeedInterval { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Bytes per Peer.GetChunk frame (at most 256 KiB; the caps act per frame).</summary>
    public int FrameBytes { get; init; } = 64 * 1024;
    /// <summary>TEST ONLY (CHAIN_ALLOW_UNSAFE_TEST_BREAKS=1): flip a byte of every chunk served to peers.</summary>
    public bool UnsafeTestCorruptUploads { get; init; }
    public TimeProvider Time { get; init; } = TimeProvider.System;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(CacheBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(UploadBytesPerSecond);
        ArgumentOutOfRangeException.ThrowIfNegative(DownloadBytesPerSecond);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxUploads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(DownloadParallelism);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ChunkAttemptsMax);
        if (DataPort is < -1 or > 65535)
            throw new ArgumentOutOfRangeException(nameof(DataPort), "a port, 0 (any free port) or -1 (no data port)");
        if (FrameBytes is < 1024 or > 256 * 1024)
            throw new ArgumentOutOfRangeException(nameof(FrameBytes), "frames are 1 KiB to 256 KiB");
        if (UnsafeTestCorruptUploads && Environment.GetEnvironmentVariable("CHAIN_ALLOW_UNSAFE_TEST_BREAKS") != "1")
            throw new InvalidOperationException("corrupting uploads is a test break: set CHAIN_ALLOW_UNSAFE_TEST_BREAKS=1 to allow it");
    }
}
