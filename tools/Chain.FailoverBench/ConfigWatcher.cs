using System.Diagnostics;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;

namespace Chain.FailoverBench;

/// <summary>A configuration of the master, first seen at a Stopwatch timestamp (when its answer arrived).</summary>
public sealed record ConfigObservation(long Timestamp, ClusterConfig Config)
{
    public ChainInfo? Chain => Config.Chains.Count > 0 ? Config.Chains[0] : null;

    public string Describe()
    {
        ChainInfo? chain = Chain;
        return chain is null
            ? $"config v{Config.Version}: no chains"
            : $"config v{Config.Version}, chain {chain.ChainId} epoch {chain.Epoch}: nodes [{string.Join(", ", chain.Nodes)}], " +
              $"syncing [{string.Join(", ", chain.Syncing)}], former [{string.Join(", ", chain.Former)}]";
    }
}

/// <summary>
/// Polls the master's GetConfig every few milliseconds in the background and keeps a timeline of every version
/// it saw, each with the time it was first seen. Waits look conditions up in the timeline, so the times they
/// return do not depend on when the wait was called.
/// </summary>
public sealed class ConfigWatcher : IAsyncDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(2);

    private readonly RpcChannel _channel;
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();
    private readonly List<ConfigObservation> _timeline = new();
    private long _polls;
    private long _pollErrors;
    private string? _lastError;
    private Task _loop = Task.CompletedTask;

    private ConfigWatcher(Uri master) => _channel = new RpcChannel(master);

    public static ConfigWatcher Start(Uri master)
    {
        var watcher = new ConfigWatcher(master);
        watcher._loop = Task.Run(watcher.LoopAsync);
        return watcher;
    }

    public long Polls => Interlocked.Read(ref _polls);

    public long PollErrors => Interlocked.Read(ref _pollErrors);

    public ConfigObservation? Latest
    {
        get
        {
            lock (_gate)
                return _timeline.Count > 0 ? _timeline[^1] : null;
        }
    }

    /// <summary>
    /// The first observation at or after <paramref name="since"/> whose chain 0 satisfies <paramref name="condition"/>;
    /// the configuration current at <paramref name="since"/> counts as seen at <paramref name="since"/>. Throws
    /// <see cref="TimeoutException"/> after <paramref name="timeout"/>, or what <paramref name="abortReason"/> names.
    /// </summary>
    public async Task<ConfigObservation> WaitAsync(Func<ChainInfo, bool> condition, long since, TimeSpan timeout, string what,
        Func<string?> abortReason, CancellationToken ct)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            ConfigObservation? found = Find(condition, since, long.MaxValue);
            if (found is not null)
                return found.Timestamp >= since ? found : found with { Timestamp = since };
            if (abortReason() is { } reason)
                throw new BenchFailure($"{reason} (while waiting for {what})");
            if (Stopwatch.GetTimestamp() > deadline)
            {
                string last = Latest?.Describe() ?? "no config yet";
                string errors = _lastError is null ? "" : $"; {PollErrors} config polls failed, last: {_lastError}";
                throw new BenchFailure($"timed out after {timeout.TotalSeconds:0} s waiting for {what}; last seen {last}{errors}");
            }
            await Task.Delay(PollInterval, ct).ConfigureAwait(false);
        }
    }

    /// <summary>First observation in [from, to] (the one current at <paramref name="from"/> included) satisfying the condition.</summary>
    public ConfigObservation? Find(Func<ChainInfo, bool> condition, long from, long to)
    {
        lock (_gate)
        {
            int start = 0;
            for (int i = _timeline.Count - 1; i >= 0; i--)
            {
                if (_timeline[i].Timestamp <= from)
                {
                    start = i;
                    break;
                }
            }
            for (int i = start; i < _timeline.Count && _timeline[i].Timestamp <= to; i++)
            {
                if (_timeline[i].Chain is { } chain && condition(chain))
                    return _timeline[i];
            }
        }
        return null;
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                ClusterConfig config = await _channel.UnaryAsync(MasterMethods.GetConfig, new GetConfigRequest(),
                    new CallOptions { Timeout = CallTimeout, CancellationToken = _stop.Token }).ConfigureAwait(false);
                long now = Stopwatch.GetTimestamp();
                Interlocked.Increment(ref _polls);
                lock (_gate)
                {
                    // Heartbeat times change with every answer: a new entry only when the chains or the version change.
                    if (_timeline.Count == 0 || _timeline[^1].Config.Version != config.Version || !_timeline[^1].Config.Chains.Equals(config.Chains))
                        _timeline.Add(new ConfigObservation(now, config));
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref _pollErrors);
                _lastError = $"{e.GetType().Name}: {e.Message}";
            }
            try
            {
                await Task.Delay(PollInterval, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
            return;
        _stop.Cancel();
        await _loop.ConfigureAwait(false);
        _channel.Dispose();
        _stop.Dispose();
    }
}

/// <summary>The cluster did not do what a round needs (the benchmark exits non-zero).</summary>
public sealed class BenchFailure : Exception
{
    public BenchFailure(string message) : base(message) { }
}
