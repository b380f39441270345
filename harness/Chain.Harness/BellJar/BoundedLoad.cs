using System.Diagnostics;
using System.Globalization;
using Chain.Client;

namespace Chain.Harness.BellJar;

/// <summary>What a <see cref="BoundedLoad"/> worker does.</summary>
public enum LoadKind
{
    /// <summary>Writes of fresh small keys (into the ledger when acknowledged).</summary>
    Write,

    /// <summary>Read-backs of acknowledged keys, compared with the ledger.</summary>
    Read,
}

/// <summary>
/// Client load for a drill: <c>writers</c> loops writing fresh small keys (into the ledger when acknowledged) and
/// <c>readers</c> loops reading back acknowledged keys, until stopped — bounded by an operation count and a time limit.
/// Writers and readers are separate loops, so a read path that stops (e.g. no read lease) does not hold writes up,
/// and each kind's ok and failed operations are counted per second since the load started.
/// </summary>
public sealed class BoundedLoad
{
    private readonly DrillContext _context;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Dictionary<(LoadKind Kind, int Second), (int Ok, int Failed)> _perSecond = new();
    private int _operations;

    private BoundedLoad(DrillContext context) => _context = context;

    /// <summary>Seconds since the load started (the time base of <see cref="PerSecond"/>).</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>Starts the load; it runs until <paramref name="ct"/> is cancelled, <paramref name="maxOperations"/> or <paramref name="maxTime"/> is reached.</summary>
    public static (BoundedLoad Load, Task Running) Start(DrillContext context, int writers, int readers, int maxOperations, TimeSpan maxTime,
        TimeSpan operationTimeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfNegative(writers);
        ArgumentOutOfRangeException.ThrowIfNegative(readers);
        ArgumentOutOfRangeException.ThrowIfZero(writers + readers);
        var load = new BoundedLoad(context);
        Task running = load.RunAsync(writers, readers, maxOperations, maxTime, operationTimeout, ct);
        return (load, running);
    }

    /// <summary>(second, ok, failed) rows of one kind, by second since the start; seconds without an operation are absent.</summary>
    public IReadOnlyList<(int Second, int Ok, int Failed)> PerSecond(LoadKind kind)
    {
        lock (_perSecond)
            return _perSecond.Where(p => p.Key.Kind == kind).OrderBy(p => p.Key.Second).Select(p => (p.Key.Second, p.Value.Ok, p.Value.Failed)).ToList();
    }

    /// <summary>"0s 12/0, 1s 15/0, ..." for the report (seconds relative to <paramref name="offset"/>).</summary>
    public static string Format(IEnumerable<(int Second, int Ok, int Failed)> rows, int offset) =>
        string.Join(", ", rows.Select(r => $"{(r.Second - offset).ToString(CultureInfo.InvariantCulture)}s {r.Ok}/{r.Failed}"));

    private async Task RunAsync(int writers, int readers, int maxOperations, TimeSpan maxTime, TimeSpan operationTimeout, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(maxTime);
        await using ChainClient client = _context.Client(operationTimeout);
        var kinds = Enumerable.Repeat(LoadKind.Write, writers).Concat(Enumerable.Repeat(LoadKind.Read, readers)).ToList();
        var tasks = kinds.Select((kind, w) => Task.Run(async () =>
        {
            var random = new Random(_context.Random.Next() + w);
            while (!limit.IsCancellationRequested && Interlocked.Increment(ref _operations) <= maxOperations)
            {
                string? key = kind == LoadKind.Write ? _context.Ledger.NextKey("load") : _context.Ledger.AnyKey(random);
                if (key is null)
                    throw new InvalidOperationException("a read-back load needs acknowledged writes in the ledger first");
                bool ok;
                try
                {
                    ok = kind == LoadKind.Write
                        ? await _context.Ledger.WriteAsync(client, key, chunked: false, limit.Token).ConfigureAwait(false)
                        : await _context.Ledger.ReadBackAsync(client, key, limit.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (limit.IsCancellationRequested)
                {
                    return;
                }
                int second = (int)_clock.Elapsed.TotalSeconds;
                lock (_perSecond)
                {
                    _perSecond.TryGetValue((kind, second), out var counts);
                    _perSecond[(kind, second)] = ok ? (counts.Ok + 1, counts.Failed) : (counts.Ok, counts.Failed + 1);
                }
                if (!ok)
                    await Task.Delay(50, CancellationToken.None).ConfigureAwait(false); // a failing cluster is not hammered
            }
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(tasks).ConfigureAwait(false);
    }
}
