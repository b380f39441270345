using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc.Server;

namespace Chain.Tracker;

/// <summary>
/// The tracker role's RPC surface: the four <see cref="TrackerMethods"/> over one <see cref="TrackerState"/>,
/// each call a short critical section under one lock (the state is in memory; no call waits on I/O inside it).
/// </summary>
public sealed class TrackerService
{
    private readonly TrackerState _state;
    private readonly Lock _gate = new();

    public TrackerService(TrackerOptions options, TimeProvider time)
    {
        _state = new TrackerState(options, time);
    }

    public void Register(RpcServiceRegistry registry)
    {
        registry.AddUnary(TrackerMethods.Announce, (r, c) => Task.FromResult(Locked(() => _state.Announce(r))));
        registry.AddUnary(TrackerMethods.Exchange, (r, c) => Task.FromResult(Locked(() => _state.Exchange(r))));
        registry.AddUnary(TrackerMethods.Leave, (r, c) => Task.FromResult(Locked(() => _state.Leave(r))));
        registry.AddUnary(TrackerMethods.SwarmStatus, (r, c) => Task.FromResult(Locked(() => _state.Status(r))));
    }

    /// <summary>Expires dead peers and stale assignments even while no request arrives (every quarter lease).</summary>
    public async Task RunSweeperAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_state.Options.Lease / 4);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
                Locked(() => { _state.Sweep(); return 0; });
        }
        catch (OperationCanceledException)
        {
        }
    }

    private T Locked<T>(Func<T> call)
    {
        lock (_gate)
            return call();
    }
}
