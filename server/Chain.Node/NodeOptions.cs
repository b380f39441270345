using Chain.Protocol;
using Chain.Rpc;

namespace Chain.Node;

/// <summary>
/// Deliberately broken behaviours, for proving that the consistency harness catches them. Never for production:
/// the executable refuses them unless CHAIN_ALLOW_UNSAFE_TEST_BREAKS=1.
/// </summary>
[Flags]
public enum TestBreaks
{
    None = 0,
    /// <summary>The head answers a client's write once it is durable at the head, without waiting for the tail.</summary>
    AckBeforeTail = 1,
    /// <summary>Every replica answers reads from its local latest state, without the tail, lease and promotion checks.</summary>
    DirtyReads = 2,
}

public sealed record NodeOptions
{
    public required string NodeId { get; init; }
    /// <summary>The address other nodes and clients use, e.g. http://127.0.0.1:7401; null: given to StartAsync.</summary>
    public Uri? AdvertisedAddress { get; init; }
    public required Uri MasterAddress { get; init; }
    /// <summary>Failure domain (rack, room) sent with registration; the master keeps a chain's replicas in distinct zones. Empty: none.</summary>
    public string Zone { get; init; } = "";
    /// <summary>The node's clock (a seam for tests and clock-skew injection); wall time is informational only.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
    /// <summary>
    /// Opens the call channel to a peer node or the master (one per address, cached by the node). Null: an
    /// HTTP/2 <see cref="RpcChannel"/>. A seam for the in-memory transport of the deterministic simulation.
    /// </summary>
    public Func<Uri, IRpcInvoker>? Connect { get; init; }
    /// <summary>
    /// Starts a background loop (apply loop, forwarder, ack reader, heartbeats). Default: the thread pool, as
    /// Task.Run. A seam for the deterministic simulation, which runs everything on one seeded executor.
    /// </summary>
    public Func<Func<Task>, Task> Spawn { get; init; } = static work => Task.Run(work);
    /// <summary>
    /// How waiters on the node's internal completions (acks, durable/ack signals, in-progress writes) resume.
    /// Default: asynchronously, never inline on the thread that signals. The simulation runs them inline on its
    /// executor instead: Task.WaitAsync hands the completion of a RunContinuationsAsynchronously task to the thread
    /// pool, which the simulation cannot schedule deterministically.
    /// </summary>
    public TaskCreationOptions SignalContinuations { get; init; } = TaskCreationOptions.RunContinuationsAsynchronously;
    public long ObjectBytesMax { get; init; } = Limits.ObjectBytesMaxDefault;
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>Most updates one synced engine write carries for one chain.</summary>
    public int ApplyGroupUpdatesMax { get; init; } = 512;
    public long ApplyGroupBytesMax { get; init; } = 16L * 1024 * 1024;
    /// <summary>
    /// Garbage collection spares chunks touched (written, or named by an upload) within this long; a manifest commit
    /// refuses chunks last touched more than half of it ago. An upload must commit within half of it.
    /// </summary>
    public TimeSpan ChunkGcGrace { get; init; } = NodeOptionsDefaults.ChunkGcGrace;
    /// <summary>Deliberate safety violations for harness self-tests; <see cref="TestBreaks.None"/> in any real deployment.</summary>
    public TestBreaks TestBreaks { get; init; }

    public void Validate()
    {
        Limits.Check();
        if (string.IsNullOrWhiteSpace(NodeId) || NodeId.Length > 128)
            throw new ArgumentException("node id must be 1-128 characters");
        if (Validation.CheckZone(Zone) is { } zoneProblem)
            throw new ArgumentException(zoneProblem);
        if (ObjectBytesMax < 0)
            throw new ArgumentException("maximum object size must not be negative");
        if (HeartbeatInterval <= TimeSpan.Zero)
            throw new ArgumentException("heartbeat interval must be positive");
        if (ChunkGcGrace < TimeSpan.FromSeconds(1))
            throw new ArgumentException("chunk GC grace must be at least 1 s");
    }
}

public static class NodeOptionsDefaults
{
    public static readonly TimeSpan ChunkGcGrace = TimeSpan.FromHours(1);
}
