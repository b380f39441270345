using System.Diagnostics;
using System.Globalization;
using Chain.Client;

namespace Chain.Harness.BellJar;

/// <summary>
/// Client load for a drill: <c>workers</c> loops, each alternating a write of a fresh small key (into the ledger when
/// acknowledged) and a read-back of an acknowledged key, until stopped — bounded by an operation count and a time limit.
/// Counts ok and failed operations per second since the load started.
/// </summary>
public sealed class BoundedLoad
{
    private readonly DrillContext _context;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Dictionary<int, (int Ok, int Failed)> _perSecond = new();
    private int _operations;

    private BoundedLoad(DrillContext context) => _context = context;

    /// <summary>Seconds since the load started (the time base of <see cref="PerSecond"/>).</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>Starts the load; it runs until <paramref name="ct"/> is cancelled, <paramref name="maxOperations"/> or <paramref name="maxTime"/> is reached.</summary>
    public static (BoundedLoad Load, Task Running) Start(DrillContext context, int workers, int maxOperations, TimeSpan maxTime, TimeSpan operationTimeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(context);
        var load = new BoundedLoad(context);
        Task running = load.RunAsync(workers, maxOperations, maxTime, operationTimeout, ct);
        return (load, running);
    }

    /// <summary>(second, ok, failed) rows, by second since the start.</summary>
    public IReadOnlyList<(int Second, int Ok, int Failed)> PerSecond()
    {
        lock (_perSecond)
            return _perSecond.OrderBy(p => p.Key).Select(p => (p.Key, p.Value.Ok, p.Value.Failed)).ToList();
    }

    /// <summary>"s0 12/0, s1 15/0, ..." for the report.</summary>
    public static string Format(IEnumerable<(int Second, int Ok, int Failed)> rows, int offset) =>
        string.Join(", ", rows.Select(r => $"{(r.Second - offset).ToString(CultureInfo.InvariantCulture)}s {r.Ok}/{r.Failed}"));

    private async Task RunAsync(int workers, int maxOperations, TimeSpan maxTime, TimeSpan operationTimeout, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(maxTime);
        await using ChainClient client = _context.Client(operationTimeout);
        var tasks = Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            var random = new Random(_context.Random.Next() + w);
            bool write = true;
            while (!limit.IsCancellationRequested && Interlocked.Increment(ref _operations) <= maxOperations)
            {
                bool ok;
                string? key = write ? _context.Ledger.NextKey("load") : _context.Ledger.AnyKey(random);
                try
                {
                    ok = key is null || (write
                        ? await _context.Ledger.WriteAsync(client, key, chunked: false, limit.Token).ConfigureAwait(false)
                        : await _context.Ledger.ReadBackAsync(client, key, limit.Token).ConfigureAwait(false));
                }
                catch (OperationCanceledException) when (limit.IsCancellationRequested)
                {
                    return;
                }
                write = !write;
                int second = (int)_clock.Elapsed.TotalSeconds;
                lock (_perSecond)
                {
                    _perSecond.TryGetValue(second, out var counts);
                    _perSecond[second] = ok ? (counts.Ok + 1, counts.Failed) : (counts.Ok, counts.Failed + 1);
                }
                if (!ok)
                    await Task.Delay(50, CancellationToken.None).ConfigureAwait(false); // a failing cluster is not hammered
            }
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(tasks).ConfigureAwait(false);
    }
}
