namespace Chain.Node;

/// <summary>
/// A pulse that wakes every waiter. To avoid lost wake-ups take <see cref="Next"/> before checking the
/// condition, then await it only if the condition does not hold yet.
/// </summary>
internal sealed class AsyncSignal
{
    private readonly TaskCreationOptions _options;
    private TaskCompletionSource _next;

    /// <param name="options">How waiters resume (see <see cref="NodeOptions.SignalContinuations"/>).</param>
    public AsyncSignal(TaskCreationOptions options = TaskCreationOptions.RunContinuationsAsynchronously)
    {
        _options = options;
        _next = new TaskCompletionSource(options);
    }

    public Task Next => Volatile.Read(ref _next).Task;

    public void Set()
    {
        var fresh = new TaskCompletionSource(_options);
        Interlocked.Exchange(ref _next, fresh).TrySetResult();
    }
}
