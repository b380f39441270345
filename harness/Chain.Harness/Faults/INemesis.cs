namespace Chain.Harness.Faults;

/// <summary>The faults the consistency harness can inject into a <see cref="LocalCluster"/>.</summary>
public enum FaultKind
{
    /// <summary>SIGKILL one storage node, then restart it from its disk at heal time (or after <see cref="Fault.Duration"/>).</summary>
    KillNode,
    /// <summary>SIGSTOP one storage node for longer than a lease, then SIGCONT.</summary>
    PauseNode,
    /// <summary>SIGKILL the master, restart it at heal time.</summary>
    KillMaster,
    /// <summary>Split the processes (nodes and master) into two halves that cannot reach each other.</summary>
    PartitionHalves,
    /// <summary>Cut one storage node off from every other process.</summary>
    IsolateNode,
    /// <summary>Cut the head of a chain off from every other process.</summary>
    IsolateHead,
    /// <summary>Cut the tail of a chain off from every other process.</summary>
    IsolateTail,
    /// <summary>Cut the master off from every storage node.</summary>
    IsolateMaster,
    /// <summary>Two halves joined only through one bridge node that sees both.</summary>
    Bridge,
    /// <summary>Drop traffic in one direction only between two processes.</summary>
    OneWay,
    /// <summary>Fill a node's size-limited data filesystem.</summary>
    DiskFull,
    /// <summary>Stop a node, flip bytes in its data files, restart it.</summary>
    Corrupt,
    /// <summary>Offset a node's (or the master's) wall clock through its time provider.</summary>
    ClockOffset,
}

/// <summary>
/// One scheduled fault. <paramref name="Target"/> picks the victim (a node index, a chain id or a seed for a
/// random choice, depending on the kind); <paramref name="Duration"/> is how long it lasts before it is healed.
/// </summary>
public sealed record Fault(FaultKind Kind, int Target, TimeSpan Duration)
{
    public override string ToString() => $"{Kind}({Target}, {Duration.TotalMilliseconds:0} ms)";
}

/// <summary>What an injected fault actually did, for the history and the report.</summary>
public sealed record FaultEvent(Fault Fault, string Description, long StartTicks, long EndTicks);

/// <summary>
/// Injects faults into a running cluster and heals them. Implementations are not required to support every
/// <see cref="FaultKind"/>; <see cref="Supports"/> says which they do.
/// </summary>
public interface INemesis : IAsyncDisposable
{
    bool Supports(FaultKind kind);

    /// <summary>Injects the fault and returns a description of what was done (victims, rules).</summary>
    Task<string> InjectAsync(Fault fault, CancellationToken cancellationToken);

    /// <summary>Undoes the fault injected by <see cref="InjectAsync"/> (restart, resume, remove rules).</summary>
    Task HealAsync(Fault fault, CancellationToken cancellationToken);

    /// <summary>Undoes every fault still in effect; called at the end of a run before the final checks.</summary>
    Task HealAllAsync(CancellationToken cancellationToken);
}
