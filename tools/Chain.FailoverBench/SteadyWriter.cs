using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Chain.Client;

namespace Chain.FailoverBench;

/// <summary>One acknowledged put: Stopwatch timestamps of its start and of its acknowledgement, and its size.</summary>
public readonly record struct WriteRecord(long Start, long End, int Bytes);

/// <summary>
/// Starts one put of a fresh random object every interval (open loop, bounded in flight), whatever the state of
/// the earlier ones, so that after a failure there is always a put that started recently: the first put started
/// after a kill to be acknowledged shows when writes work again, give or take the interval and the client's retry
/// back-off. Every acknowledged put is recorded.
/// </summary>
public sealed class SteadyWriter : IAsyncDisposable
{
    public const int MaxInFlight = 256;

    private readonly ChainClient _client;
    private readonly string _bucket;
    private readonly int _bytes;
    private readonly TimeSpan _interval;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _slots = new(MaxInFlight, MaxInFlight);
    private readonly ConcurrentDictionary<long, Task> _inFlight = new();
    private readonly object _gate = new();
    private readonly List<WriteRecord> _done = new();
    private long _launched;
    private long _skipped;
    private long _errors;
    private string? _firstError;
    private Task _loop = Task.CompletedTask;

    private SteadyWriter(ChainClient client, string bucket, int bytes, TimeSpan interval)
    {
        _client = client;
        _bucket = bucket;
        _bytes = bytes;
        _interval = interval;
    }

    public static SteadyWriter Start(ChainClient client, string bucket, int bytes, TimeSpan interval)
    {
        var writer = new SteadyWriter(client, bucket, bytes, interval);
        writer._loop = Task.Run(writer.LoopAsync);
        return writer;
    }

    public long Launched => Interlocked.Read(ref _launched);

    /// <summary>Ticks of the timer that found <see cref="MaxInFlight"/> puts in flight and started nothing.</summary>
    public long Skipped => Interlocked.Read(ref _skipped);

    /// <summary>Puts that failed for good (after the client's retries).</summary>
    public long Errors => Interlocked.Read(ref _errors);

    public string? FirstError => Volatile.Read(ref _firstError);

    public int Acknowledged
    {
        get
        {
            lock (_gate)
                return _done.Count;
        }
    }

    /// <summary>The acknowledgement time of the first put that started at or after <paramref name="since"/>, if any yet.</summary>
    public long? FirstAckStartedAfter(long since)
    {
        long slack = Stopwatch.Frequency; // records are appended in acknowledgement order, give or take scheduling
        long? first = null;
        lock (_gate)
        {
            for (int i = _done.Count - 1; i >= 0; i--)
            {
                WriteRecord r = _done[i];
                if (r.End < since - slack)
                    break;
                if (r.Start >= since && (first is null || r.End < first))
                    first = r.End;
            }
        }
        return first;
    }

    /// <summary>How many puts that started at or after <paramref name="since"/> are acknowledged.</summary>
    public int CountStartedAfter(long since)
    {
        long slack = Stopwatch.Frequency;
        int count = 0;
        lock (_gate)
        {
            for (int i = _done.Count - 1; i >= 0; i--)
            {
                WriteRecord r = _done[i];
                if (r.End < since - slack)
                    break;
                if (r.Start >= since)
                    count++;
            }
        }
        return count;
    }

    /// <summary>
    /// The longest time in [<paramref name="from"/>, <paramref name="to"/>] without any acknowledgement (of any put),
    /// in Stopwatch ticks: the write unavailability whatever the puts' start times.
    /// </summary>
    public long LongestAckGap(long from, long to)
    {
        var ends = new List<long>();
        lock (_gate)
        {
            foreach (WriteRecord r in _done)
            {
                if (r.End > from && r.End < to)
                    ends.Add(r.End);
            }
        }
        ends.Sort();
        long previous = from;
        long longest = 0;
        foreach (long end in ends.Append(to))
        {
            longest = Math.Max(longest, end - previous);
            previous = end;
        }
        return longest;
    }

    /// <summary>Bytes of the puts acknowledged at or before <paramref name="until"/>.</summary>
    public long AckedBytesUntil(long until)
    {
        long bytes = 0;
        lock (_gate)
        {
            foreach (WriteRecord r in _done)
            {
                if (r.End <= until)
                    bytes += r.Bytes;
            }
        }
        return bytes;
    }

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(_interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                if (!_slots.Wait(0))
                {
                    Interlocked.Increment(ref _skipped);
                    continue;
                }
                long sequence = Interlocked.Increment(ref _launched) - 1;
                _inFlight[sequence] = Task.Run(() => PutOneAsync(sequence));
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    private async Task PutOneAsync(long sequence)
    {
        try
        {
            var data = new byte[_bytes];
            Random.Shared.NextBytes(data);
            string key = "w/" + sequence.ToString("D10", CultureInfo.InvariantCulture);
            long start = Stopwatch.GetTimestamp();
            await _client.PutAsync(_bucket, key, data, null, _stop.Token).ConfigureAwait(false);
            long end = Stopwatch.GetTimestamp();
            lock (_gate)
                _done.Add(new WriteRecord(start, end, data.Length));
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _errors);
            Interlocked.CompareExchange(ref _firstError, $"{e.GetType().Name}: {e.Message}", null);
        }
        finally
        {
            _slots.Release();
            _inFlight.TryRemove(sequence, out _);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
            return;
        _stop.Cancel();
        await _loop.ConfigureAwait(false);
        await Task.WhenAll(_inFlight.Values.ToArray()).ConfigureAwait(false);
        _stop.Dispose();
        _slots.Dispose();
    }
}
