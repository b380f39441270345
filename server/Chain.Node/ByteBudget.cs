namespace Chain.Node;

/// <summary>
/// An asynchronous budget of bytes with first-come, first-served waiters: bounds the chunk data a head keeps in
/// flight. A request larger than the whole budget is clamped to it (it then waits for everything to drain).
/// </summary>
internal sealed class ByteBudget
{
    private readonly object _lock = new();
    private readonly LinkedList<Waiter> _waiters = new();
    private readonly TaskCreationOptions _continuations;
    private long _available;

    public ByteBudget(long capacity, TaskCreationOptions continuations = TaskCreationOptions.RunContinuationsAsynchronously)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _available = capacity;
        _continuations = continuations;
    }

    public long Capacity { get; }

    public long Available { get { lock (_lock) return _available; } }

    /// <summary>The amount actually taken for a request of <paramref name="bytes"/>: release exactly this.</summary>
    public long Clamp(long bytes) => Math.Clamp(bytes, 0, Capacity);

    public Task AcquireAsync(long bytes, CancellationToken cancellationToken)
    {
        bytes = Clamp(bytes);
        if (bytes == 0)
            return Task.CompletedTask;
        Waiter waiter;
        lock (_lock)
        {
            if (_waiters.Count == 0 && _available >= bytes)
            {
                _available -= bytes;
                return Task.CompletedTask;
            }
            cancellationToken.ThrowIfCancellationRequested();
            waiter = new Waiter(bytes, new TaskCompletionSource(_continuations));
            waiter.Node = _waiters.AddLast(waiter);
        }
        if (cancellationToken.CanBeCanceled)
        {
            waiter.Registration = cancellationToken.Register(() =>
            {
                bool removed;
                lock (_lock)
                {
                    removed = waiter.Node?.List is not null;
                    if (removed)
                        _waiters.Remove(waiter.Node!);
                }
                if (removed)
                {
                    waiter.Completion.TrySetCanceled(cancellationToken);
                    // A smaller waiter behind this one may fit now.
                    Release(0);
                }
            });
        }
        return waiter.Completion.Task;
    }

    public void Release(long bytes)
    {
        List<Waiter>? granted = null;
        lock (_lock)
        {
            _available = Math.Min(Capacity, _available + bytes);
            while (_waiters.First is { } first && first.Value.Bytes <= _available)
            {
                _available -= first.Value.Bytes;
                _waiters.RemoveFirst();
                (granted ??= new()).Add(first.Value);
            }
        }
        if (granted is null)
            return;
        foreach (Waiter w in granted)
        {
            w.Registration.Dispose();
            w.Completion.TrySetResult();
        }
    }

    private sealed class Waiter(long bytes, TaskCompletionSource completion)
    {
        public long Bytes { get; } = bytes;
        public TaskCompletionSource Completion { get; } = completion;
        public LinkedListNode<Waiter>? Node { get; set; }
        public CancellationTokenRegistration Registration { get; set; }
    }
}
