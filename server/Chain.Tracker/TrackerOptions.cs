namespace Chain.Tracker;

/// <summary>The tracker's knobs and bounds. Every bound keeps the soft state's memory and per-call work finite.</summary>
public sealed record TrackerOptions
{
    /// <summary>A peer silent (no Announce, no Exchange) for longer than this is dead.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Concurrent store fetches per swarm (S): the store's upload is spent on distinct chunks only.</summary>
    public int MaxStoreFetchesPerSwarm { get; init; } = 4;

    /// <summary>An assignment with no outcome after this is dropped (its slots freed, the chunk assignable again).</summary>
    public TimeSpan AssignmentTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>What a peer that gets nothing is told to wait before asking again.</summary>
    public int RetryAfterMs { get; init; } = 100;

    /// <summary>Concurrent uploads of a peer that announces max_uploads 0.</summary>
    public int DefaultMaxUploads { get; init; } = 4;

    /// <summary>SOURCE_FAILED outcomes in a row that put a source peer into back-off.</summary>
    public int SourceFailuresBeforeBackoff { get; init; } = 3;

    /// <summary>How long a source in back-off is not named.</summary>
    public TimeSpan SourceBackoff { get; init; } = TimeSpan.FromSeconds(1);

    public int MaxSwarms { get; init; } = 1024;
    public int MaxPeersPerSwarm { get; init; } = 4096;
    public int MaxChunksPerSwarm { get; init; } = 65536;
    /// <summary>Swarms one peer may be in at once.</summary>
    public int MaxSwarmsPerPeer { get; init; } = 64;
    /// <summary>Assignments one Exchange answer carries at most (the contract's 64).</summary>
    public int MaxAssignmentsPerExchange { get; init; } = 64;
    /// <summary>Avoided peer ids remembered (oldest forgotten first beyond this).</summary>
    public int MaxAvoidedPeers { get; init; } = 65536;

    /// <summary>Seed of the tie-breaking random choices (tests fix it; the server uses a random one).</summary>
    public int Seed { get; init; } = Environment.TickCount;

    public void Validate()
    {
        if (Lease < TimeSpan.FromMilliseconds(100) || Lease > TimeSpan.FromMinutes(10))
            throw new ArgumentException("lease must be between 100 ms and 10 minutes");
        if (MaxStoreFetchesPerSwarm < 1)
            throw new ArgumentException("max store fetches per swarm must be at least 1");
        if (AssignmentTimeout <= TimeSpan.Zero || RetryAfterMs < 1 || DefaultMaxUploads < 1 || SourceFailuresBeforeBackoff < 1
            || SourceBackoff < TimeSpan.Zero)
            throw new ArgumentException("assignment timeout, retry-after, default max uploads and source failures must be positive");
        if (MaxSwarms < 1 || MaxPeersPerSwarm < 1 || MaxChunksPerSwarm < 1 || MaxSwarmsPerPeer < 1 || MaxAvoidedPeers < 1)
            throw new ArgumentException("tracker bounds must be positive");
        if (MaxAssignmentsPerExchange is < 1 or > 64)
            throw new ArgumentException("assignments per exchange must be 1-64");
    }
}
