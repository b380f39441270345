using System.Runtime.CompilerServices;

namespace Chain.Simulation.Runtime;

/// <summary>How a <see cref="SimExecutor.Run"/> ended.</summary>
public enum RunOutcome
{
    /// <summary>The condition held (checked whenever nothing was runnable at the current instant).</summary>
    Done,
    /// <summary>Nothing runnable and no timer left: the system is idle for ever.</summary>
    Idle,
    /// <summary>Virtual time reached the limit.</summary>
    TimeLimit,
    /// <summary>The step budget ran out (a livelock, or a run far larger than intended).</summary>
    StepLimit,
}

/// <summary>
/// A single-threaded deterministic executor with a virtual clock. Work items (continuations posted to a
/// process's synchronization context, timer callbacks, message deliveries) wait in one ready set; the next one is
/// chosen by the seeded <see cref="Random"/>, so the seed alone decides the interleaving. Time advances only when
/// nothing is runnable: to the next timer, instantly. Nothing runs on another thread; a post from another thread
/// (an escape to the thread pool, which would break determinism) is counted and reported.
/// </summary>
public sealed class SimExecutor
{
    /// <summary>Virtual wall time at tick 0.</summary>
    public static readonly DateTimeOffset Epoch = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly object _lock = new();
    private readonly List<WorkItem> _ready = new();
    private readonly PriorityQueue<Scheduled, (long Due, long Seq)> _timers = new();
    private readonly List<SimProcess> _processes = new();
    private long _timerSeq;
    private Thread? _thread;
    private ulong _trace = 14695981039346656037UL;

    public SimExecutor(int seed)
    {
        Random = new Random(seed);
        _thread = Thread.CurrentThread;
    }

    /// <summary>The only source of randomness of a simulation run.</summary>
    public Random Random { get; }

    /// <summary>Virtual time in ticks (100 ns) since <see cref="Epoch"/>.</summary>
    public long Now { get; private set; }

    public TimeSpan Elapsed => TimeSpan.FromTicks(Now);

    /// <summary>Work items executed so far.</summary>
    public long Steps { get; private set; }

    /// <summary>A hash of every executed step (which process, at what virtual time): equal runs have equal traces.</summary>
    public ulong Trace => _trace;

    /// <summary>Posts that came from another thread: each one is a determinism bug (an escape to the thread pool).</summary>
    public int Escapes { get; private set; }

    public string? FirstEscape { get; private set; }

    /// <summary>Exceptions thrown by work items themselves (not by tasks): bugs in the simulation or the code under test.</summary>
    public List<string> Crashes { get; } = new();

    /// <summary>The process whose work item is running; null between work items.</summary>
    public SimProcess? CurrentProcess { get; private set; }

    public SimProcess NewProcess(string name)
    {
        var process = new SimProcess(this, _processes.Count + 1, name);
        _processes.Add(process);
        return process;
    }

    /// <summary>Mixes a harness event into the trace.</summary>
    public void Mix(ulong value)
    {
        _trace = (_trace ^ value) * 1099511628211UL;
    }

    internal void Post(SimProcess process, SendOrPostCallback callback, object? state)
    {
        lock (_lock)
        {
            if (Thread.CurrentThread != _thread)
            {
                Escapes++;
                FirstEscape ??= $"post to {process.Name} from thread {Environment.CurrentManagedThreadId}: {Environment.StackTrace}";
            }
            if (process.IsDead)
                return;
            _ready.Add(new WorkItem(process, callback, state));
        }
    }

    /// <summary>Runs <paramref name="action"/> in <paramref name="process"/> at virtual time <paramref name="due"/> (ticks); dropped if the process is dead by then.</summary>
    internal Scheduled At(long due, SimProcess process, Action action)
    {
        var entry = new Scheduled(process, action);
        lock (_lock)
            _timers.Enqueue(entry, (Math.Max(due, Now), _timerSeq++));
        return entry;
    }

    internal void Release(List<WorkItem> held)
    {
        lock (_lock)
            _ready.AddRange(held);
        held.Clear();
    }

    /// <summary>
    /// Runs work until <paramref name="done"/> holds (checked when nothing is runnable at the current instant),
    /// virtual time reaches <paramref name="until"/>, nothing is left, or <paramref name="maxSteps"/> more steps ran.
    /// </summary>
    public RunOutcome Run(Func<bool> done, TimeSpan until, long maxSteps)
    {
        _thread = Thread.CurrentThread;
        SynchronizationContext? outer = SynchronizationContext.Current;
        long stepLimit = Steps + maxSteps;
        try
        {
            while (true)
            {
                WorkItem item;
                lock (_lock)
                {
                    if (_ready.Count == 0)
                        goto idle;
                    int index = Random.Next(_ready.Count);
                    item = _ready[index];
                    _ready[index] = _ready[^1];
                    _ready.RemoveAt(_ready.Count - 1);
                }
                if (item.Process.IsDead)
                    continue;
                if (item.Process.IsPaused)
                {
                    item.Process.Held.Add(item);
                    continue;
                }
                if (Steps >= stepLimit)
                {
                    lock (_lock)
                        _ready.Add(item);
                    return RunOutcome.StepLimit;
                }
                Execute(item);
                continue;

            idle:
                if (done())
                    return RunOutcome.Done;
                lock (_lock)
                {
                    if (_ready.Count > 0)
                        continue;
                    if (_timers.Count == 0)
                        return RunOutcome.Idle;
                    _timers.TryPeek(out _, out var first);
                    if (first.Due > until.Ticks)
                    {
                        Now = Math.Max(Now, until.Ticks);
                        return RunOutcome.TimeLimit;
                    }
                    Now = first.Due;
                    while (_timers.TryPeek(out Scheduled? entry, out var key) && key.Due == Now)
                    {
                        _timers.Dequeue();
                        if (!entry.Cancelled && !entry.Process.IsDead)
                            _ready.Add(new WorkItem(entry.Process, static s => ((Scheduled)s!).Fire(), entry));
                    }
                }
            }
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(outer);
        }
    }

    private void Execute(WorkItem item)
    {
        Steps++;
        _trace = (_trace ^ (ulong)item.Process.Id) * 1099511628211UL;
        _trace = (_trace ^ (ulong)Now) * 1099511628211UL;
        SynchronizationContext.SetSynchronizationContext(item.Process.Context);
        CurrentProcess = item.Process;
        try
        {
            item.Callback(item.State);
        }
        catch (Exception e)
        {
            if (Crashes.Count < 20)
                Crashes.Add($"{item.Process.Name} at {Elapsed}: {e}");
        }
        finally
        {
            CurrentProcess = null;
        }
    }

    internal readonly record struct WorkItem(SimProcess Process, SendOrPostCallback Callback, object? State);

    /// <summary>A timer entry; cancel it by setting <see cref="Cancelled"/>.</summary>
    internal sealed class Scheduled(SimProcess process, Action action)
    {
        public SimProcess Process { get; } = process;
        public bool Cancelled { get; set; }

        public void Fire()
        {
            if (!Cancelled)
                action();
        }
    }
}

/// <summary>
/// One simulated OS process: its own synchronization context (every continuation of its code is a work item of
/// this process), clock view and timers. Killing it drops everything queued for it, for ever; pausing it holds
/// its work (SIGSTOP) while time goes on.
/// </summary>
public sealed class SimProcess
{
    private readonly SimExecutor _executor;

    internal SimProcess(SimExecutor executor, int id, string name)
    {
        _executor = executor;
        Id = id;
        Name = name;
        Context = new SimContext(this);
        Time = new SimTime(executor, this);
    }

    public int Id { get; }
    public string Name { get; }
    public bool IsDead { get; private set; }
    public bool IsPaused { get; private set; }
    public TimeProvider Time { get; }
    internal SimExecutor Executor => _executor;
    internal SynchronizationContext Context { get; }
    internal List<SimExecutor.WorkItem> Held { get; } = new();

    public void Kill()
    {
        IsDead = true;
        Held.Clear();
    }

    public void Pause() => IsPaused = true;

    public void Resume()
    {
        IsPaused = false;
        _executor.Release(Held);
    }

    /// <summary>Starts <paramref name="work"/> as a new work item of this process (the simulation's Task.Run).</summary>
    public Task Spawn(Func<Task> work) => SpawnCore(work);

    /// <summary>Queues <paramref name="action"/> as a work item of this process.</summary>
    public void Post(Action action) => _executor.Post(this, static s => ((Action)s!)(), action);

    private async Task SpawnCore(Func<Task> work)
    {
        await new Hop(this);
        await work();
    }

    public override string ToString() => Name;

    /// <summary>Awaiting it continues as a fresh work item of the process.</summary>
    private readonly struct Hop(SimProcess process) : ICriticalNotifyCompletion
    {
        public Hop GetAwaiter() => this;
        public bool IsCompleted => false;
        public void GetResult()
        {
        }
        public void OnCompleted(Action continuation) => process._executor.Post(process, static s => ((Action)s!)(), continuation);
        public void UnsafeOnCompleted(Action continuation) => OnCompleted(continuation);
    }

    private sealed class SimContext(SimProcess process) : SynchronizationContext
    {
        public override void Post(SendOrPostCallback d, object? state) => process._executor.Post(process, d, state);

        public override void Send(SendOrPostCallback d, object? state) =>
            throw new NotSupportedException("synchronous Send is not supported in the simulation");

        public override SynchronizationContext CreateCopy() => this;
    }
}

/// <summary>The virtual clock as one process sees it; its timers are work items of that process.</summary>
internal sealed class SimTime(SimExecutor executor, SimProcess process) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => SimExecutor.Epoch + TimeSpan.FromTicks(executor.Now);
    public override long GetTimestamp() => executor.Now;
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new SimTimer(executor, process, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    private sealed class SimTimer(SimExecutor executor, SimProcess process, TimerCallback callback, object? state) : ITimer
    {
        private SimExecutor.Scheduled? _next;
        private TimeSpan _period = Timeout.InfiniteTimeSpan;
        private bool _disposed;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            if (_disposed)
                return false;
            if (_next is not null)
                _next.Cancelled = true;
            _next = null;
            _period = period;
            if (dueTime != Timeout.InfiniteTimeSpan)
                Arm(dueTime);
            return true;
        }

        private void Arm(TimeSpan due)
        {
            long ticks = Math.Max(0, due.Ticks);
            _next = executor.At(executor.Now + ticks, process, Fire);
        }

        private void Fire()
        {
            if (_disposed)
                return;
            _next = null;
            if (_period != Timeout.InfiniteTimeSpan && _period > TimeSpan.Zero)
                Arm(_period);
            callback(state);
        }

        public void Dispose()
        {
            _disposed = true;
            if (_next is not null)
                _next.Cancelled = true;
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
