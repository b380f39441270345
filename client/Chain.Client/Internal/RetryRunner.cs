using System.Diagnostics;
using Polly;
using Polly.Retry;

namespace Chain.Client.Internal;

/// <summary>
/// The overall deadline of one operation including its retries: a token linked to the caller's that fires when the
/// budget runs out. Streaming operations extend the budget once they know how many bytes they move.
/// </summary>
internal sealed class OperationDeadline : IDisposable
{
    private static readonly TimeSpan CancelAfterMax = TimeSpan.FromMilliseconds(int.MaxValue - 1);

    private readonly CancellationTokenSource _cts;
    private readonly long _started = Stopwatch.GetTimestamp();
    private readonly object _gate = new();
    private TimeSpan _budget;
    private bool _disposed;

    public OperationDeadline(TimeSpan budget, CancellationToken callerToken, CancellationToken shutdownToken = default)
    {
        _cts = CancellationTokenSource.CreateLinkedTokenSource(callerToken, shutdownToken);
        _budget = budget;
        _cts.CancelAfter(Clamp(budget));
    }

    public CancellationToken Token => _cts.Token;
    public bool Expired => _cts.IsCancellationRequested;
    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(_started);

    public TimeSpan Budget
    {
        get { lock (_gate) return _budget; }
    }

    public TimeSpan Remaining
    {
        get
        {
            var left = Budget - Elapsed;
            return left > TimeSpan.Zero ? left : TimeSpan.Zero;
        }
    }

    /// <summary>Raises the overall budget (measured from the operation's start) to at least <paramref name="budget"/>.</summary>
    public void ExtendTo(TimeSpan budget)
    {
        lock (_gate)
        {
            if (_disposed || budget <= _budget || _cts.IsCancellationRequested)
                return;
            _budget = budget;
            var left = budget - Elapsed;
            _cts.CancelAfter(left > TimeSpan.Zero ? Clamp(left) : TimeSpan.Zero);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _cts.Dispose();
        }
    }

    private static TimeSpan Clamp(TimeSpan t) => t > CancelAfterMax ? CancelAfterMax : t < TimeSpan.Zero ? TimeSpan.Zero : t;
}

/// <summary>What the attempts of one operation share.</summary>
internal sealed class OperationState(OperationDeadline deadline)
{
    public OperationDeadline Deadline { get; } = deadline;
    /// <summary>1-based number of the attempt running now.</summary>
    public int Attempt { get; internal set; }
    /// <summary>Version of the config the current attempt routed with (to invalidate exactly that one).</summary>
    public ulong? ConfigVersion { get; set; }
    /// <summary>The failure of the previous transient attempt.</summary>
    public Exception? LastError { get; internal set; }
    /// <summary>A member redirected this read to the tail (read-at-tail): the remaining attempts read at the tail.</summary>
    public bool ReadAtTail { get; internal set; }
}

/// <summary>Carries a transient failure through the Polly pipeline (the only exception it retries).</summary>
internal sealed class TransientFailure(Exception inner, bool immediate) : Exception(inner.Message, inner)
{
    /// <summary>Retry without backoff (the first retry after a routing error).</summary>
    public bool Immediate { get; } = immediate;
}

/// <summary>
/// Runs an operation's attempts with Polly retries, bounded by <see cref="ChainClientOptions.MaxAttempts"/> and by the
/// overall deadline. Maps the final failure to the client's exceptions.
/// </summary>
internal sealed class RetryRunner
{
    private readonly ChainClientOptions _options;
    private readonly ResiliencePipeline _pipeline;
    private readonly Action<ulong?>? _invalidateConfig;
    private readonly CancellationToken _shutdown;

    public RetryRunner(ChainClientOptions options, Action<ulong?>? invalidateConfig = null, CancellationToken shutdown = default)
    {
        _options = options;
        _invalidateConfig = invalidateConfig;
        _shutdown = shutdown;
        MaxAttempts = Math.Max(1, options.MaxAttempts);
        _pipeline = BuildPipeline(options, MaxAttempts);
    }

    public int MaxAttempts { get; }

    private static ResiliencePipeline BuildPipeline(ChainClientOptions options, int maxAttempts)
    {
        if (maxAttempts <= 1)
            return ResiliencePipeline.Empty;
        var baseDelay = options.RetryBaseDelay > TimeSpan.Zero ? options.RetryBaseDelay : TimeSpan.FromMilliseconds(1);
        var maxDelay = TimeSpan.FromSeconds(1) > baseDelay ? TimeSpan.FromSeconds(1) : baseDelay;
        return new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is TransientFailure),
                MaxRetryAttempts = maxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = baseDelay,
                MaxDelay = maxDelay,
                DelayGenerator = static args => ValueTask.FromResult<TimeSpan?>(
                    args.Outcome.Exception is TransientFailure { Immediate: true } ? TimeSpan.Zero : null),
            })
            .Build();
    }

    /// <summary>
    /// Runs <paramref name="attempt"/> until it succeeds, fails permanently, runs out of attempts, or the overall
    /// deadline (<paramref name="budget"/>, default OperationTimeout) passes.
    /// </summary>
    public async Task<T> RunAsync<T>(
        string operation,
        Func<OperationState, CancellationToken, Task<T>> attempt,
        CancellationToken cancellationToken,
        string? bucket = null,
        string? key = null,
        TimeSpan? budget = null)
    {
        using var deadline = new OperationDeadline(budget ?? _options.OperationTimeout, cancellationToken, _shutdown);
        var state = new OperationState(deadline);
        bool previousWasRouting = false;
        try
        {
            return await _pipeline.ExecuteAsync(async ct =>
            {
                state.Attempt++;
                state.ConfigVersion = null;
                try
                {
                    return await attempt(state, ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (!ct.IsCancellationRequested)
                {
                    // A cancellation that is not ours (the transport gave up on its own) is treated as transient.
                    var decision = ex is OperationCanceledException
                        ? new Decision(FailureAction.Retry, null)
                        : ErrorClassifier.Classify(ex, bucket, key);
                    if (!decision.IsTransient)
                    {
                        if (ReferenceEquals(decision.Error, ex))
                            throw;
                        throw decision.Error!;
                    }
                    state.LastError = ex;
                    FailureAction action = decision.Action;
                    if (action == FailureAction.RetryAtTail)
                    {
                        if (!state.ReadAtTail)
                        {
                            // CRAQ redirect: the same read at the tail, now, with the same table.
                            state.ReadAtTail = true;
                            previousWasRouting = false;
                            throw new TransientFailure(ex, immediate: true);
                        }
                        // Redirected again although it went to the tail: the table is stale.
                        action = FailureAction.RefreshAndRetryFast;
                    }
                    if (decision.RefreshConfig || action == FailureAction.RefreshAndRetryFast)
                        _invalidateConfig?.Invoke(state.ConfigVersion);
                    bool routing = action == FailureAction.RefreshAndRetryFast;
                    bool immediate = routing && !previousWasRouting;
                    previousWasRouting = routing;
                    throw new TransientFailure(ex, immediate);
                }
            }, deadline.Token).ConfigureAwait(false);
        }
        catch (TransientFailure failure)
        {
            var last = failure.InnerException!;
            throw new ChainUnavailableException(
                $"{operation} failed after {state.Attempt} attempt(s): {last.Message}", last);
        }
        catch (Exception ex) when (ex is not ChainException && deadline.Expired)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_shutdown.IsCancellationRequested, typeof(ChainClient));
            var last = state.LastError ?? (ex is OperationCanceledException ? null : ex);
            string detail = last is null ? "" : $"; last error: {last.Message}";
            throw new ChainUnavailableException(
                $"{operation} did not complete within {FormatSpan(deadline.Budget)} ({state.Attempt} attempt(s)){detail}", last);
        }
    }

    private static string FormatSpan(TimeSpan t) =>
        t.TotalSeconds >= 1 ? $"{t.TotalSeconds:0.#} s" : $"{t.TotalMilliseconds:0} ms";
}
