using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Chain.Client;
using Chain.Consistency;
using Chain.Consistency.Report;
using Chain.Harness;
using Chain.Harness.Faults;

namespace Chain.Jepsen;

/// <summary>How the runner runs (not what: that is the <see cref="RunSpec"/>).</summary>
public sealed record RunnerOptions
{
    /// <summary>Each run writes its history, spec, fault events, result and server logs to a directory under this one.</summary>
    public string OutputDirectory { get; init; } = Path.Combine(Path.GetTempPath(), "chain-check");
    public string? ServerDllPath { get; init; }
    /// <summary>Time budget of the linearizability search; past it the verdict is unknown.</summary>
    public TimeSpan CheckBudget { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>How long the healed cluster may take to become healthy again.</summary>
    public TimeSpan SettleTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Keep the cluster's data directories even when the run is valid (they are always kept otherwise).</summary>
    public bool KeepClusterData { get; init; }
    /// <summary>The nemeses to build the run's nemesis from (default <see cref="NemesisCatalog.Factories"/>).</summary>
    public IReadOnlyList<NemesisFactory>? Nemeses { get; init; }
    /// <summary>Progress lines (faults, phases); null for none.</summary>
    public TextWriter? Log { get; init; }
    /// <summary>
    /// Run against this running cluster instead of starting a fresh one (e.g. a cluster restored from a backup): it is
    /// neither stopped nor deleted by the run, and the spec's cluster layout (nodes, chains) is ignored. Faults that
    /// need a prepared cluster (network, disk) are not available then.
    /// </summary>
    public LocalCluster? ExistingCluster { get; init; }
}

/// <summary>
/// The Jepsen-style runner: a real cluster of separate processes, concurrent clients running the spec's workload
/// for a bounded time and operation count, the nemesis schedule in parallel, every operation recorded to a JSON-lines
/// history, then heal, settle, final reads and the checkers. Exit codes: 0 valid, 1 invalid, 2 unknown.
/// </summary>
public static class Runner
{
    public const string Bucket = "jepsen";

    public static async Task<RunResult> RunAsync(RunSpec spec, RunnerOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(options);
        spec.Validate();
        var run = new Run(spec, options);
        return await run.ExecuteAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs <paramref name="spec"/>; when it is invalid, re-runs shrunk specs (at most <paramref name="maxShrinkRuns"/>
    /// runs), keeping each smaller spec that is still invalid, and returns the smallest. Null when the first run was
    /// not invalid.
    /// </summary>
    public static async Task<(RunResult First, ShrinkResult? Shrunk)> RunAndShrinkAsync(
        RunSpec spec, RunnerOptions options, int maxShrinkRuns, SpecConstraints constraints, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(constraints);
        RunResult first = await RunAsync(spec, options, cancellationToken).ConfigureAwait(false);
        if (first.Verdict != Verdict.Invalid || maxShrinkRuns <= 0)
            return (first, null);
        ShrinkResult shrunk = await ShrinkAsync(first, (candidate, ct) => RunAsync(candidate, options, ct),
            SpecGenerator.Arbitrary(constraints), maxShrinkRuns, options.Log, cancellationToken).ConfigureAwait(false);
        return (first, shrunk);
    }

    /// <summary>
    /// Greedy shrinking of an invalid run: tries the shrinker's candidates in order, moves to the first one whose run
    /// is still invalid and starts over from it; stops when no candidate fails or after <paramref name="maxRuns"/> runs.
    /// </summary>
    internal static async Task<ShrinkResult> ShrinkAsync(RunResult first, Func<RunSpec, CancellationToken, Task<RunResult>> run,
        FsCheck.Arbitrary<RunSpec> shrinker, int maxRuns, TextWriter? log, CancellationToken cancellationToken)
    {
        RunResult smallest = first;
        int runs = 0;
        bool improved = true;
        while (improved && runs < maxRuns)
        {
            improved = false;
            foreach (RunSpec candidate in shrinker.Shrinker(smallest.Spec))
            {
                if (runs >= maxRuns)
                    break;
                runs++;
                log?.WriteLine($"shrink {runs}/{maxRuns}: {candidate.Describe()}");
                RunResult result = await run(candidate, cancellationToken).ConfigureAwait(false);
                log?.WriteLine($"shrink {runs}/{maxRuns}: {result.Verdict}");
                if (result.Verdict == Verdict.Invalid)
                {
                    smallest = result;
                    improved = true;
                    break;
                }
            }
        }
        return new ShrinkResult(first, smallest, runs);
    }

    /// <summary>How an operation that threw ended: definitely not applied (fail) or unknown (info).</summary>
    internal static OpStatus Classify(Exception error, bool isRead) => error switch
    {
        // Refused before anything could be applied.
        ChainArgumentException or BucketNotFoundException or ObjectTooLargeException => OpStatus.Fail,
        // A conditional put whose condition did not hold; a compare-and-set whose read failed.
        PreconditionFailedException or NotAppliedException => OpStatus.Fail,
        // On a write: the head found a bad digest and refused it.
        IntegrityException when !isRead => OpStatus.Fail,
        // Timed out, connection lost, unknown server error: a write may or may not have taken effect.
        _ => isRead ? OpStatus.Fail : OpStatus.Info,
    };

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>An operation failed before it sent anything that could change the store.</summary>
    internal sealed class NotAppliedException(string message, Exception inner) : Exception(message, inner);

    /// <summary>What an operation is called with (recorded at its invocation).</summary>
    private readonly record struct Invocation(OpKind Kind, string Key, string? Input, string? Expected);

    /// <summary>
    /// What an ok operation returned: its output and the store's version — a write's or successful CAS's
    /// <see cref="PutResult.Version"/> (a deduplicated retry gets the original's), a read's <see cref="ObjectInfo.Version"/>
    /// from the same response as the value; null when there is none (absent, CAS not applied, set workload).
    /// </summary>
    private readonly record struct Outcome(string? Output, long? Version)
    {
        public static Outcome None => new(null, null);
    }

    /// <summary>A store version as recorded in an <see cref="Operation"/>: versions start at 1, so 0 means none.</summary>
    internal static long? RecordedVersion(ulong version) => version is 0 or > long.MaxValue ? null : (long)version;

    /// <summary>One run: its state from start-up to the written result.</summary>
    private sealed class Run
    {
        private const int FinalReadKeysMax = 2000;
        private const int FinalReadAttempts = 5;
        private static readonly TimeSpan FinalReadTimeout = TimeSpan.FromSeconds(10);
        private static readonly TimeSpan HealTimeout = TimeSpan.FromSeconds(90);

        private readonly RunSpec _spec;
        private readonly RunnerOptions _options;
        private readonly string _runDirectory;
        private readonly string _historyPath;
        private readonly ConcurrentQueue<string> _notes = new();
        private readonly ConcurrentDictionary<string, int> _errors = new(StringComparer.Ordinal);
        private readonly ConcurrentDictionary<string, string?> _lastSeen = new(StringComparer.Ordinal);
        private readonly ConcurrentDictionary<string, byte> _touchedKeys = new(StringComparer.Ordinal);
        private readonly List<FaultEvent> _faultEvents = new();
        private readonly List<Operation> _history = new();
        private readonly object _historyGate = new();
        private readonly int[] _slotCounts;
        private StreamWriter? _historyWriter;
        private long _start;
        private bool _workloadStarted;
        private int _nextOpId;
        private int _issued;
        private long _nextValue;
        private LocalCluster? _cluster;
        private CheckerVerdict? _convergence;
        private TimeSpan _workloadTime;

        public Run(RunSpec spec, RunnerOptions options)
        {
            _spec = spec;
            _options = options;
            string stamp = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss-fff", CultureInfo.InvariantCulture);
            _runDirectory = Path.Combine(Path.GetFullPath(options.OutputDirectory), $"run-{spec.Seed}-{stamp}");
            _historyPath = Path.Combine(_runDirectory, "history.jsonl");
            _slotCounts = new int[spec.Keys];
        }

        private long Now => Stopwatch.GetTimestamp() - _start;

        /// <summary>A progress line, stamped with the time since the workload started (the history's clock), or "setup".</summary>
        private void Log(string line) => _options.Log?.WriteLine(_workloadStarted
            ? $"[{Stopwatch.GetElapsedTime(_start).TotalSeconds,7:0.00}s] {line}"
            : $"[  setup ] {line}");

        private void Note(string line)
        {
            _notes.Enqueue(line);
            Log(line);
        }

        public async Task<RunResult> ExecuteAsync(CancellationToken ct)
        {
            var total = Stopwatch.StartNew();
            Directory.CreateDirectory(_runDirectory);
            await File.WriteAllTextAsync(Path.Combine(_runDirectory, "spec.json"), _spec.ToJson(), ct).ConfigureAwait(false);
            _historyWriter = new StreamWriter(_historyPath, append: false, new UTF8Encoding(false));
            _start = Stopwatch.GetTimestamp();
            string clusterDirectory = Path.Combine(Path.GetTempPath(), $"chain-jepsen-{_spec.Seed}-{Guid.NewGuid().ToString("N")[..12]}");
            string? error = null;
            Log($"run {_spec.Describe()}");
            try
            {
                if (_options.ExistingCluster is { } existing)
                {
                    _cluster = existing;
                    clusterDirectory = existing.Options.DataDirectory;
                    await RunOnClusterAsync(stop: false, ct).ConfigureAwait(false);
                }
                else
                {
                    var clusterOptions = new LocalClusterOptions
                    {
                        Nodes = _spec.Nodes,
                        Chains = _spec.Chains,
                        FailureTimeout = _spec.FailureTimeout,
                        DataDirectory = clusterDirectory,
                        ServerDllPath = _options.ServerDllPath,
                    };
                    if (_spec.TestBreaks is { } breaks)
                    {
                        clusterOptions.ExtraNodeArguments = new[] { "--unsafe-test-break", breaks };
                        clusterOptions.NodeEnvironment = new Dictionary<string, string>(StringComparer.Ordinal) { ["CHAIN_ALLOW_UNSAFE_TEST_BREAKS"] = "1" };
                    }
                    NemesisCatalog.PrepareCluster(clusterOptions, _spec.Faults.Select(f => f.Fault.Kind), _options.Nemeses);
                    _cluster = await LocalCluster.StartAsync(clusterOptions, ct).ConfigureAwait(false);
                    await using (_cluster.ConfigureAwait(false))
                        await RunOnClusterAsync(stop: true, ct).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                error = $"{e.GetType().Name}: {e.Message}";
                Note($"the run failed: {error}");
            }
            finally
            {
                lock (_historyGate)
                {
                    _historyWriter.Dispose();
                    _historyWriter = null;
                }
            }

            Operation[] history;
            lock (_historyGate)
                history = _history.ToArray();
            CheckReport check = HistoryChecks.Check(_spec.Workload, history, _options.CheckBudget);
            if (_convergence is not null)
                check = check.With(_convergence);
            if (error is not null)
                check = check with { Problems = check.Problems.Append(error).ToArray() };
            // A run that failed part-way can still prove an anomaly; it can never prove validity.
            Verdict verdict = check.Verdict == Verdict.Invalid ? Verdict.Invalid : error is null ? check.Verdict : Verdict.Unknown;
            CopyLogs(clusterDirectory);
            string? keptData = clusterDirectory;
            if (_options.ExistingCluster is not null)
            {
                keptData = null; // not this run's to keep or delete
            }
            else if (verdict == Verdict.Valid && !_options.KeepClusterData)
            {
                LocalCluster.TryDeleteDirectory(clusterDirectory);
                keptData = null;
            }
            else
            {
                Note($"cluster data kept in {clusterDirectory}");
            }

            FaultEvent[] faults;
            lock (_faultEvents)
                faults = _faultEvents.ToArray();
            string? reportPath = WriteReport(history, faults, check, _workloadTime);
            var result = new RunResult(_spec, verdict, check, history, faults, _runDirectory, _historyPath,
                Stopwatch.Frequency, Stats(history, _workloadTime, total.Elapsed), _notes.ToArray(), error, keptData, reportPath);
            await WriteResultAsync(result).ConfigureAwait(false);
            return result;
        }

        /// <summary>The run on a started cluster: bucket, warm-up, workload and nemesis, settle, final reads, convergence; then (own cluster) a clean stop.</summary>
        private async Task RunOnClusterAsync(bool stop, CancellationToken ct)
        {
            LocalCluster cluster = _cluster!;
            cluster.UnexpectedExit += (process, code) => Note($"{process.Name} (pid {process.Pid}) exited unexpectedly with code {code}");
            await using (ChainClient admin = cluster.CreateClient())
                await admin.CreateBucketAsync(Bucket, ct).ConfigureAwait(false);
            Log($"cluster up in {cluster.Options.DataDirectory}");
            await WarmUpAsync(ct).ConfigureAwait(false);
            _workloadTime = await WorkloadAndNemesisAsync(ct).ConfigureAwait(false);
            await SettleAsync(ct).ConfigureAwait(false);
            await FinalReadsAsync(ct).ConfigureAwait(false);
            ConvergenceResult convergence = await ConvergenceChecker.CheckAsync(cluster, new ConvergenceOptions(), ct).ConfigureAwait(false);
            _convergence = convergence.ToVerdict();
            Log($"convergence: {_convergence.Summary}");
            if (!stop)
                return;
            IReadOnlyDictionary<string, int> exits = await cluster.StopAllAsync().ConfigureAwait(false);
            foreach ((string name, int code) in exits)
                Note($"{name} exited with code {code} when stopped");
        }

        /// <summary>
        /// Before time 0: a few unrecorded puts and gets on keys of every chain, so the servers' first-call costs
        /// (JIT, connections) are not charged to the first operations of the history.
        /// </summary>
        private async Task WarmUpAsync(CancellationToken ct)
        {
            var warm = Stopwatch.StartNew();
            await using ChainClient client = NewClient(TimeSpan.FromSeconds(30));
            int keys = Math.Max(4, 4 * (_spec.Chains ?? _spec.Nodes));
            int failures = 0;
            await Parallel.ForEachAsync(Enumerable.Range(0, keys), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (i, token) =>
            {
                string key = string.Create(CultureInfo.InvariantCulture, $"warmup/{i}");
                try
                {
                    await client.PutAsync(Bucket, key, Encoding.UTF8.GetBytes(key), null, token).ConfigureAwait(false);
                    await client.GetBytesAsync(Bucket, key, token).ConfigureAwait(false);
                }
                catch (ChainException e)
                {
                    // Not part of the history: judging the store is the workload's job, not the warm-up's.
                    Interlocked.Increment(ref failures);
                    Log($"warm-up {key}: {e.GetType().Name}: {e.Message}");
                }
            }).ConfigureAwait(false);
            Log($"warmed up in {warm.Elapsed.TotalSeconds:0.0}s ({failures} of {keys} warm-up keys failed)");
        }

        // ---- workload and nemesis ---------------------------------------------------------------

        private async Task<TimeSpan> WorkloadAndNemesisAsync(CancellationToken ct)
        {
            await using CompositeNemesis nemesis = NemesisCatalog.Create(_cluster!, _spec.Faults.Select(f => f.Fault.Kind), _options.Nemeses);
            _start = Stopwatch.GetTimestamp(); // time 0 of the history and the fault schedule
            _workloadStarted = true;
            long deadline = _start + (long)(_spec.TimeLimit.TotalSeconds * Stopwatch.Frequency);
            using var workloadDone = CancellationTokenSource.CreateLinkedTokenSource(ct);
            Task nemesisTask = NemesisAsync(nemesis, workloadDone.Token);
            Task[] clients = Enumerable.Range(0, _spec.Clients).Select(i => Task.Run(() => ClientAsync(i, deadline, ct), ct)).ToArray();
            try
            {
                await Task.WhenAll(clients).ConfigureAwait(false);
            }
            finally
            {
                Log($"workload done: {Volatile.Read(ref _nextOpId)} ops");
                workloadDone.Cancel();
                await nemesisTask.ConfigureAwait(false);
                using var heal = new CancellationTokenSource(HealTimeout);
                await nemesis.HealAllAsync(heal.Token).ConfigureAwait(false);
                Log("healed");
            }
            return Stopwatch.GetElapsedTime(_start);
        }

        private async Task NemesisAsync(INemesis nemesis, CancellationToken stop)
        {
            foreach (ScheduledFault scheduled in _spec.Faults.OrderBy(f => f.At))
            {
                TimeSpan wait = scheduled.At - Stopwatch.GetElapsedTime(_start);
                try
                {
                    if (wait > TimeSpan.Zero)
                        await Task.Delay(wait, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                long startTicks = Now;
                string description;
                try
                {
                    description = await nemesis.InjectAsync(scheduled.Fault, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    description = $"inject failed: {e.GetType().Name}: {e.Message}";
                    Note($"{scheduled.Fault}: {description}");
                    lock (_faultEvents)
                        _faultEvents.Add(new FaultEvent(scheduled.Fault, description, startTicks, Now));
                    continue;
                }
                Log($"fault {scheduled.Fault}: {description}");
                try
                {
                    await Task.Delay(scheduled.Fault.Duration, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // The workload ended: heal now.
                }
                try
                {
                    using var heal = new CancellationTokenSource(HealTimeout);
                    await nemesis.HealAsync(scheduled.Fault, heal.Token).ConfigureAwait(false);
                    Log($"healed {scheduled.Fault}");
                }
                catch (Exception e)
                {
                    description += $"; heal failed: {e.GetType().Name}: {e.Message}";
                    Note($"{scheduled.Fault}: heal failed: {e.Message}");
                }
                lock (_faultEvents)
                    _faultEvents.Add(new FaultEvent(scheduled.Fault, description, startTicks, Now));
            }
        }

        private ChainClient NewClient(TimeSpan operationTimeout) => _cluster!.CreateClient(o => o with
        {
            OperationTimeout = operationTimeout,
            AttemptTimeout = operationTimeout < TimeSpan.FromSeconds(2) ? operationTimeout : TimeSpan.FromSeconds(2),
            ReadFrom = _spec.ReadFrom,
        });

        private async Task ClientAsync(int worker, long deadline, CancellationToken ct)
        {
            var stream = new OpStream(_spec, worker);
            int clientId = worker;
            ChainClient client = NewClient(_spec.OpTimeout);
            try
            {
                for (int n = 0; n < _spec.Ops; n++)
                {
                    if (ct.IsCancellationRequested || Stopwatch.GetTimestamp() >= deadline)
                        break;
                    if (Interlocked.Increment(ref _issued) > _spec.Ops)
                        break;
                    OpStatus status = await ExecuteAsync(client, clientId, stream.Next(), ct).ConfigureAwait(false);
                    if (status == OpStatus.Info)
                    {
                        // As in Jepsen: the process that may still have an operation in flight is retired; a fresh one
                        // (new id, new connections) takes its place.
                        clientId += _spec.Clients;
                        await client.DisposeAsync().ConfigureAwait(false);
                        client = NewClient(_spec.OpTimeout);
                    }
                }
            }
            finally
            {
                await client.DisposeAsync().ConfigureAwait(false);
            }
        }

        /// <summary>The key of a slot's next operation: each key gets <see cref="RunSpec.OpsPerKey"/> operations, then the slot moves on.</summary>
        private string ClaimKey(int slot)
        {
            int n = Interlocked.Increment(ref _slotCounts[slot]) - 1;
            string key = string.Create(CultureInfo.InvariantCulture, $"k{slot}g{n / _spec.OpsPerKey}");
            _touchedKeys.TryAdd(key, 0);
            return key;
        }

        private string NewValue() => "v" + Interlocked.Increment(ref _nextValue).ToString(CultureInfo.InvariantCulture);

        private Task<OpStatus> ExecuteAsync(ChainClient client, int clientId, OpPlan plan, CancellationToken ct)
        {
            switch (_spec.Workload)
            {
                case Workload.Set:
                    return InvokeAsync(clientId, new Invocation(OpKind.Write, HistoryChecks.SetKey, "e" + NewValue()[1..], null), async (op, token) =>
                    {
                        // No version: the set's elements are separate objects recorded under one history key.
                        await client.PutAsync(Bucket, "set/" + op.Input, Encoding.UTF8.GetBytes(op.Input!), null, token).ConfigureAwait(false);
                        return Outcome.None;
                    }, ct);
                case Workload.Large:
                    return plan.Kind == OpKind.Read
                        ? InvokeAsync(clientId, new Invocation(OpKind.Read, ClaimKey(plan.Slot), null, null), (op, token) => ReadDigestAsync(client, op.Key, token), ct)
                        : WriteLargeAsync(client, clientId, ClaimKey(plan.Slot), ct);
                default:
                    return plan.Kind switch
                    {
                        OpKind.Read => InvokeAsync(clientId, new Invocation(OpKind.Read, ClaimKey(plan.Slot), null, null),
                            (op, token) => ReadStringAsync(client, op.Key, token), ct),
                        OpKind.Write => InvokeAsync(clientId, new Invocation(OpKind.Write, ClaimKey(plan.Slot), NewValue(), null), async (op, token) =>
                        {
                            PutResult put = await client.PutAsync(Bucket, op.Key, Encoding.UTF8.GetBytes(op.Input!), null, token).ConfigureAwait(false);
                            return new Outcome(null, RecordedVersion(put.Version));
                        }, ct),
                        _ => CompareAndSetAsync(client, clientId, ClaimKey(plan.Slot), ct),
                    };
            }
        }

        /// <summary>
        /// Compare-and-set as read + conditional put: read the value and its version; if the value is not the expected
        /// one the CAS fails, linearized at the read; else put with if-version (if-absent when the expected value is
        /// "absent"). A precondition failure, or a failed read, means nothing was applied (fail); an unknown outcome of
        /// the put is info.
        /// </summary>
        private Task<OpStatus> CompareAndSetAsync(ChainClient client, int clientId, string key, CancellationToken ct)
        {
            _lastSeen.TryGetValue(key, out string? expected);
            return InvokeAsync(clientId, new Invocation(OpKind.Cas, key, NewValue(), expected), async (op, token) =>
            {
                string? current;
                ulong version = 0;
                try
                {
                    using var buffer = new MemoryStream();
                    ObjectInfo info = await client.GetAsync(Bucket, op.Key, buffer, null, token).ConfigureAwait(false);
                    current = Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
                    version = info.Version;
                }
                catch (ObjectNotFoundException)
                {
                    current = null;
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    throw new NotAppliedException("the read of the compare-and-set failed", e);
                }
                if (!string.Equals(current, op.Expected, StringComparison.Ordinal))
                    return new Outcome(Operation.CasFail, null);
                var conditional = op.Expected is null ? new PutOptions { IfAbsent = true } : new PutOptions { IfVersion = version };
                PutResult put = await client.PutAsync(Bucket, op.Key, Encoding.UTF8.GetBytes(op.Input!), conditional, token).ConfigureAwait(false);
                return new Outcome(Operation.CasOk, RecordedVersion(put.Version));
            }, ct);
        }

        /// <summary>A read: the value and its version, both from one Get response.</summary>
        private static async Task<Outcome> ReadStringAsync(ChainClient client, string key, CancellationToken ct)
        {
            try
            {
                using var buffer = new MemoryStream();
                ObjectInfo info = await client.GetAsync(Bucket, key, buffer, null, ct).ConfigureAwait(false);
                return new Outcome(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length), RecordedVersion(info.Version));
            }
            catch (ObjectNotFoundException)
            {
                return Outcome.None;
            }
        }

        private static async Task<Outcome> ReadDigestAsync(ChainClient client, string key, CancellationToken ct)
        {
            try
            {
                await using var sink = new DigestStream();
                ObjectInfo info = await client.GetAsync(Bucket, key, sink, null, ct).ConfigureAwait(false);
                return new Outcome(sink.DigestHex(), RecordedVersion(info.Version));
            }
            catch (ObjectNotFoundException)
            {
                return Outcome.None;
            }
        }

        private Task<OpStatus> WriteLargeAsync(ChainClient client, int clientId, string key, CancellationToken ct)
        {
            string value = NewValue();
            byte[] content = LargeContent.Generate(_spec.Seed, value, _spec.ObjectBytes);
            string digest = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content));
            return InvokeAsync(clientId, new Invocation(OpKind.Write, key, digest, null), async (op, token) =>
            {
                PutResult put = await client.PutAsync(Bucket, op.Key, content, null, token).ConfigureAwait(false);
                return new Outcome(null, RecordedVersion(put.Version));
            }, ct);
        }

        /// <summary>
        /// Records one operation: call time, the action (bounded by the op timeout plus slack), return time and how it
        /// ended. Returns its status.
        /// </summary>
        private async Task<OpStatus> InvokeAsync(int clientId, Invocation invocation,
            Func<Invocation, CancellationToken, Task<Outcome>> action, CancellationToken ct)
        {
            (OpKind kind, string key, string? input, string? expected) = invocation;
            int id = Interlocked.Increment(ref _nextOpId) - 1;
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bound.CancelAfter(_spec.OpTimeout * 2 + TimeSpan.FromSeconds(1));
            long call = Now;
            OpStatus status;
            string? output = null;
            long? version = null;
            try
            {
                (output, version) = await action(invocation, bound.Token).ConfigureAwait(false);
                status = OpStatus.Ok;
            }
            catch (IntegrityException e) when (kind == OpKind.Read)
            {
                // The node served data that does not match its digest: record what was read as an anomaly.
                status = OpStatus.Ok;
                output = "integrity-error: " + e.Message;
                CountError(e);
            }
            catch (Exception e)
            {
                status = Classify(e, kind == OpKind.Read);
                CountError(e);
            }
            long ret = Now;
            Record(new Operation(id, key, clientId, kind, input, expected, output, call, ret, status, version));
            if (status == OpStatus.Ok)
            {
                // The newest value known on the key: what the next compare-and-set expects.
                if (kind == OpKind.Read)
                    _lastSeen[key] = output;
                else if (kind == OpKind.Write || (kind == OpKind.Cas && output == Operation.CasOk))
                    _lastSeen[key] = input;
            }
            return status;
        }

        private void CountError(Exception e) => _errors.AddOrUpdate(e.GetType().Name, 1, (_, n) => n + 1);

        private void Record(Operation op)
        {
            lock (_historyGate)
            {
                _history.Add(op);
                if (_historyWriter is not null)
                {
                    _historyWriter.Write(History.Serialize(op));
                    _historyWriter.Write('\n');
                    _historyWriter.Flush();
                }
            }
        }

        // ---- settle and final reads -------------------------------------------------------------

        private async Task SettleAsync(CancellationToken ct)
        {
            LocalCluster cluster = _cluster!;
            var settle = Stopwatch.StartNew();
            await cluster.WaitUntilHealthyAsync(_options.SettleTimeout, ct).ConfigureAwait(false);
            // Then wait (bounded) until every chain is back to its full length, so the final reads see a repaired cluster.
            using ChainClient admin = NewClient(TimeSpan.FromSeconds(5));
            TimeSpan delay = TimeSpan.FromMilliseconds(100);
            for (int attempt = 0; attempt < 200 && settle.Elapsed < _options.SettleTimeout; attempt++)
            {
                ClusterStatus status = await admin.GetStatusAsync(ct).ConfigureAwait(false);
                int replicas = Math.Min(status.Replicas, _spec.Nodes);
                if (status.Chains.All(c => c.NodeIds.Count >= replicas))
                {
                    Log($"settled in {settle.Elapsed.TotalSeconds:0.0}s");
                    return;
                }
                await Task.Delay(delay, ct).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
            }
            Note($"chains not back to full length after {settle.Elapsed.TotalSeconds:0.#}s; final reads go to the chains as they are");
        }

        private async Task FinalReadsAsync(CancellationToken ct)
        {
            if (_spec.Workload == Workload.Set)
            {
                await FinalSetReadAsync(ct).ConfigureAwait(false);
                return;
            }
            string[] keys = _touchedKeys.Keys.Order(StringComparer.Ordinal).ToArray();
            if (keys.Length > FinalReadKeysMax)
            {
                Note($"{keys.Length} keys touched; final reads of the first {FinalReadKeysMax} only");
                keys = keys[..FinalReadKeysMax];
            }
            int finalClient = 1_000_000;
            await Parallel.ForEachAsync(keys, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (key, token) =>
            {
                await using ChainClient client = NewClient(FinalReadTimeout);
                int clientId = Interlocked.Increment(ref finalClient);
                for (int attempt = 0; attempt < FinalReadAttempts; attempt++)
                {
                    OpStatus status = await InvokeAsync(clientId, new Invocation(OpKind.Read, key, null, null), (op, t) =>
                        _spec.Workload == Workload.Large ? ReadDigestAsync(client, op.Key, t) : ReadStringAsync(client, op.Key, t), token).ConfigureAwait(false);
                    if (status == OpStatus.Ok)
                        return;
                }
                Note($"final read of {key} failed {FinalReadAttempts} times");
            }).ConfigureAwait(false);
            Log($"final reads of {keys.Length} keys done");
        }

        private async Task FinalSetReadAsync(CancellationToken ct)
        {
            await using ChainClient client = NewClient(FinalReadTimeout);
            for (int attempt = 0; attempt < FinalReadAttempts; attempt++)
            {
                OpStatus status = await InvokeAsync(2_000_000 + attempt, new Invocation(OpKind.Read, HistoryChecks.SetKey, null, null), async (_, token) =>
                {
                    var elements = new List<string>();
                    await foreach (ObjectInfo info in client.ListAsync(Bucket, "set/", null, token).ConfigureAwait(false))
                        elements.Add(info.Key["set/".Length..]);
                    return new Outcome(HistoryChecks.EncodeSet(elements), null);
                }, ct).ConfigureAwait(false);
                if (status == OpStatus.Ok)
                {
                    Log("final read of the set done");
                    return;
                }
            }
            Note($"the final read of the set failed {FinalReadAttempts} times");
        }

        // ---- results ----------------------------------------------------------------------------

        private RunStats Stats(Operation[] history, TimeSpan workloadTime, TimeSpan total) => new(
            history.Length,
            history.Count(o => o.Status == OpStatus.Ok),
            history.Count(o => o.Status == OpStatus.Fail),
            history.Count(o => o.Status == OpStatus.Info),
            _errors.OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal),
            workloadTime,
            total);

        private async Task WriteResultAsync(RunResult result)
        {
            await using (var faults = new StreamWriter(Path.Combine(_runDirectory, "faults.jsonl"), false, new UTF8Encoding(false)))
            {
                foreach (FaultEvent e in result.Faults)
                    await faults.WriteLineAsync(JsonSerializer.Serialize(e, JsonOptions)).ConfigureAwait(false);
            }
            var summary = new
            {
                result.Spec.Seed,
                Verdict = result.Verdict.ToString(),
                result.ExitCode,
                result.Check.Problems,
                CheckerSeconds = result.Check.Elapsed.TotalSeconds,
                result.Stats,
                result.Notes,
                result.Error,
                result.TicksPerSecond,
                History = result.HistoryPath,
            };
            await File.WriteAllTextAsync(Path.Combine(_runDirectory, "result.json"),
                JsonSerializer.Serialize(summary, new JsonSerializerOptions(JsonOptions) { WriteIndented = true })).ConfigureAwait(false);
        }

        /// <summary>The self-contained HTML report (timeline and latencies with fault periods shaded, verdicts, witnesses).</summary>
        private string? WriteReport(Operation[] history, FaultEvent[] faults, CheckReport check, TimeSpan workloadTime)
        {
            string path = Path.Combine(_runDirectory, "report.html");
            try
            {
                long end = history.Length == 0 ? Now : history.Max(o => o.ReturnTicks);
                var info = new RunInfo(_spec.Seed.ToString(CultureInfo.InvariantCulture), _spec.Workload.ToString().ToLowerInvariant(), workloadTime)
                {
                    TicksPerSecond = Stopwatch.Frequency,
                    Extra = new Dictionary<string, string>(StringComparer.Ordinal) { ["spec"] = _spec.Describe() },
                };
                HtmlReport.Save(path, info, history, FaultPeriods.From(faults, end), check.Verdicts);
                return path;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
            {
                Note($"could not write the HTML report: {e.Message}");
                return null;
            }
        }

        private void CopyLogs(string clusterDirectory)
        {
            try
            {
                if (!Directory.Exists(clusterDirectory))
                    return;
                string logs = Path.Combine(_runDirectory, "logs");
                Directory.CreateDirectory(logs);
                foreach (string log in Directory.EnumerateFiles(clusterDirectory, "*.log"))
                    File.Copy(log, Path.Combine(logs, Path.GetFileName(log)), overwrite: true);
            }
            catch (IOException e)
            {
                Note($"could not copy the server logs: {e.Message}");
            }
        }
    }
}
