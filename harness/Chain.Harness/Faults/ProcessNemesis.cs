using System.Globalization;

namespace Chain.Harness.Faults;

/// <summary>
/// Process faults on a <see cref="LocalCluster"/>: SIGKILL of a storage node (restarted from its disk at heal),
/// SIGSTOP of a storage node (SIGCONT at heal; the schedule makes the pause longer than a read lease, which is half
/// the failure timeout) and SIGKILL of the master (restarted at heal). A fault's <see cref="Fault.Target"/> picks
/// the node: index <c>Target mod Nodes</c>. A victim that is already down or paused is not hit twice: the inject
/// says so in its description and the heal does nothing.
/// </summary>
public sealed class ProcessNemesis : INemesis
{
    private readonly LocalCluster _cluster;
    private readonly object _gate = new();
    private readonly HashSet<int> _killed = new();
    private readonly HashSet<int> _paused = new();
    private bool _masterKilled;

    public ProcessNemesis(LocalCluster cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        _cluster = cluster;
    }

    public bool Supports(FaultKind kind) => kind is FaultKind.KillNode or FaultKind.PauseNode or FaultKind.KillMaster;

    /// <summary>The node index a fault with this target hits (0-based).</summary>
    public int NodeIndex(int target) => (int)((uint)target % (uint)_cluster.Nodes.Count);

    public async Task<string> InjectAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        cancellationToken.ThrowIfCancellationRequested();
        switch (fault.Kind)
        {
            case FaultKind.KillNode:
            {
                int index = NodeIndex(fault.Target);
                string id = LocalCluster.NodeId(index);
                lock (_gate)
                {
                    if (_killed.Contains(index) || _paused.Contains(index))
                        return $"skipped: {id} is already down";
                    _killed.Add(index);
                }
                int pid = _cluster.Nodes[index].Pid;
                await _cluster.KillNodeAsync(index).ConfigureAwait(false);
                return string.Create(CultureInfo.InvariantCulture, $"SIGKILL {id} (pid {pid})");
            }
            case FaultKind.PauseNode:
            {
                int index = NodeIndex(fault.Target);
                string id = LocalCluster.NodeId(index);
                lock (_gate)
                {
                    if (_killed.Contains(index) || _paused.Contains(index))
                        return $"skipped: {id} is already down";
                    _paused.Add(index);
                }
                int pid = _cluster.Nodes[index].Pid;
                try
                {
                    _cluster.SuspendNode(index);
                }
                catch
                {
                    lock (_gate)
                        _paused.Remove(index);
                    throw;
                }
                return string.Create(CultureInfo.InvariantCulture, $"SIGSTOP {id} (pid {pid})");
            }
            case FaultKind.KillMaster:
            {
                lock (_gate)
                {
                    if (_masterKilled)
                        return "skipped: the master is already down";
                    _masterKilled = true;
                }
                int pid = _cluster.Master.Pid;
                await _cluster.KillMasterAsync().ConfigureAwait(false);
                return string.Create(CultureInfo.InvariantCulture, $"SIGKILL master (pid {pid})");
            }
            default:
                throw new NotSupportedException($"{nameof(ProcessNemesis)} does not inject {fault.Kind}");
        }
    }

    public async Task HealAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        switch (fault.Kind)
        {
            case FaultKind.KillNode:
                await RestartNodeAsync(NodeIndex(fault.Target), cancellationToken).ConfigureAwait(false);
                break;
            case FaultKind.PauseNode:
                ResumeNode(NodeIndex(fault.Target));
                break;
            case FaultKind.KillMaster:
                await RestartMasterAsync(cancellationToken).ConfigureAwait(false);
                break;
            default:
                throw new NotSupportedException($"{nameof(ProcessNemesis)} does not heal {fault.Kind}");
        }
    }

    /// <summary>
    /// Resumes every paused node, restarts the master if it is down, then every killed node; each step is tried even
    /// when an earlier one failed, and the failures are rethrown together at the end.
    /// </summary>
    public async Task HealAllAsync(CancellationToken cancellationToken)
    {
        int[] paused;
        int[] killed;
        lock (_gate)
        {
            paused = _paused.ToArray();
            killed = _killed.ToArray();
        }
        var steps = new List<Func<Task>>();
        steps.AddRange(paused.Select(index => (Func<Task>)(() =>
        {
            ResumeNode(index);
            return Task.CompletedTask;
        })));
        steps.Add(() => RestartMasterAsync(cancellationToken));
        steps.AddRange(killed.Select(index => (Func<Task>)(() => RestartNodeAsync(index, cancellationToken))));
        var errors = new List<Exception>();
        foreach (Func<Task> step in steps)
        {
            try
            {
                await step().ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                errors.Add(e);
            }
        }
        if (errors.Count == 1)
            throw errors[0];
        if (errors.Count > 1)
            throw new AggregateException("healing process faults failed more than once", errors);
    }

    public ValueTask DisposeAsync()
    {
        // Never leave a process frozen behind: a SIGSTOPped child would not even see its stdin close.
        int[] paused;
        lock (_gate)
            paused = _paused.ToArray();
        foreach (int index in paused)
        {
            try
            {
                ResumeNode(index);
            }
            catch (InvalidOperationException)
            {
                // The process is gone already.
            }
        }
        return ValueTask.CompletedTask;
    }

    private void ResumeNode(int index)
    {
        lock (_gate)
        {
            if (!_paused.Remove(index))
                return;
        }
        _cluster.ResumeNode(index);
    }

    private async Task RestartNodeAsync(int index, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_killed.Contains(index))
                return;
        }
        await _cluster.StartNodeAsync(index, cancellationToken).ConfigureAwait(false);
        lock (_gate)
            _killed.Remove(index);
    }

    private async Task RestartMasterAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_masterKilled)
                return;
        }
        await _cluster.StartMasterAsync(cancellationToken).ConfigureAwait(false);
        lock (_gate)
            _masterKilled = false;
    }
}
