using System.Globalization;

namespace Chain.Harness.Faults;

/// <summary>
/// Clock offset: restarts one process with <c>--clock-offset-ms</c> (its wall clock, <c>TimeProvider.GetUtcNow</c>, runs
/// that far ahead or behind; monotonic time and timers are untouched); heal restarts it without. Injection needs a
/// restart because the offset is a start-up option. Target (mod nodes+1): a node index, or the master for the last
/// value (Target = nodes). Graceful stops (SIGTERM) so that the restart itself is not a crash.
/// </summary>
public sealed class ClockNemesis : INemesis
{
    private readonly LocalCluster _cluster;
    private readonly TimeSpan _offset;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly HashSet<int> _skewed = new();

    /// <param name="offset">The wall-clock offset to inject (negative: behind); default one hour ahead.</param>
    public ClockNemesis(LocalCluster cluster, TimeSpan? offset = null)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        _cluster = cluster;
        _offset = offset ?? TimeSpan.FromHours(1);
    }

    public bool Supports(FaultKind kind) => kind == FaultKind.ClockOffset;

    public async Task<string> InjectAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        if (!Supports(fault.Kind))
            throw new NotSupportedException($"{nameof(ClockNemesis)} does not inject {fault.Kind}");
        int process = ProcessFor(fault);
        string ms = ((long)_offset.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            lock (_skewed)
                _skewed.Add(process);
            await RestartAsync(process, new[] { "--clock-offset-ms", ms }, cancellationToken).ConfigureAwait(false);
            return $"restarted {Name(process)} with its wall clock {ms} ms off";
        }
        finally
        {
            _gate.Release();
        }
    }

    public Task HealAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        return HealProcessAsync(ProcessFor(fault), cancellationToken);
    }

    public async Task HealAllAsync(CancellationToken cancellationToken)
    {
        int[] processes;
        lock (_skewed)
            processes = _skewed.ToArray();
        foreach (int process in processes)
            await HealProcessAsync(process, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync()
    {
        _gate.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task HealProcessAsync(int process, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            lock (_skewed)
            {
                if (!_skewed.Remove(process))
                    return;
            }
            await RestartAsync(process, Array.Empty<string>(), ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>0 = master, i+1 = node i (the cluster's process numbering).</summary>
    private int ProcessFor(Fault fault)
    {
        int count = _cluster.Nodes.Count + 1;
        int choice = ((fault.Target % count) + count) % count;
        return choice == _cluster.Nodes.Count ? 0 : choice + 1;
    }

    private async Task RestartAsync(int process, IReadOnlyList<string> extra, CancellationToken ct)
    {
        if (process == 0)
        {
            await _cluster.StopMasterAsync().ConfigureAwait(false);
            _cluster.Master.ExtraArguments = extra;
            await _cluster.StartMasterAsync(ct).ConfigureAwait(false);
        }
        else
        {
            await _cluster.StopNodeAsync(process - 1).ConfigureAwait(false);
            _cluster.Nodes[process - 1].ExtraArguments = extra;
            await _cluster.StartNodeAsync(process - 1, ct).ConfigureAwait(false);
        }
    }

    private string Name(int process) => process == 0 ? "master" : _cluster.Nodes[process - 1].Id;
}
