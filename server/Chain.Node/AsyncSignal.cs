namespace Chain.Node;

/// <summary>
/// A pulse that wakes every waiter. To avoid lost wake-ups take <see cref="Next"/> before checking the
/// condition, then await it only if the condition does not hold yet.
/// </summary>
internal sealed class AsyncSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Next => Volatile.Read(ref _next).Task;

    public void Set()
    {
        var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Exchange(ref _next, fresh).TrySetResult();
    }
}
