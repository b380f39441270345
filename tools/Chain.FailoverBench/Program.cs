using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Chain.Client;
using Chain.FailoverBench;
using Chain.Harness;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Tools;
using Spectre.Console;

FailoverOptions options;
try
{
    options = FailoverOptions.Parse(args);
}
catch (UsageException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine(FailoverOptions.Usage);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(FailoverOptions.Usage);
    return 0;
}

BenchConsole.PlainWhenRedirected(width: 200);
using CancellationTokenSource cancellation = BenchConsole.CancelOnCtrlC();
CancellationToken ct = cancellation.Token;

const int Replicas = FailoverOptions.Replicas;
const int PreloadObjectBytes = 1024 * 1024;
const int PreloadParallelism = 4;
string[] roles = { "head", "middle", "tail" };

long runStart = Stopwatch.GetTimestamp();
string root = Path.Combine(Path.GetTempPath(), "chain-failover-" + Guid.NewGuid().ToString("N")[..12]);
string clusterDir = Path.Combine(root, "cluster");
Directory.CreateDirectory(root);
long preloadBytes = (long)options.PreloadMiB * PreloadObjectBytes;
var rounds = new List<RoundResult>();
var failures = new List<string>();
CopyResult? fileCopy = null;
CopyResult? rocksCopy = null;
TimeSpan? preloadTime = null;
double cpuIdleRounds = double.NaN;
long writeErrors = 0;
long writesAcknowledged = 0;
string? firstWriteError = null;

AnsiConsole.MarkupLine($"[bold]Chain failover benchmark[/]: {Environment.ProcessorCount} cores, {options.Nodes} nodes, 1 chain of {Replicas}, " +
    $"failure timeout {options.FailureTimeoutMs} ms, {options.Rounds} rounds, preload {options.PreloadMiB} MiB, " +
    $"writer: one {options.WriteBytes} B put every {options.WriteIntervalMs} ms{(options.WipeRestart ? ", killed nodes restart with empty data" : "")}");
AnsiConsole.MarkupLine($"temp dir {Markup.Escape(root)}");

try
{
    Log($"disk baseline: write {options.PreloadMiB} MiB + fsync, then time File.Copy + fsync of the copy ...");
    fileCopy = DiskBaseline.FileCopy(Path.Combine(root, "disk"), preloadBytes);
    Log($"disk copy: {fileCopy.Bytes / 1e6:0.0} MB in {fileCopy.Elapsed.TotalMilliseconds:0} ms = {fileCopy.MBps:0.0} MB/s");

    await RunClusterAsync();

    string? nodeDir = Directory.Exists(clusterDir)
        ? Directory.EnumerateDirectories(clusterDir, "node*").OrderBy(d => d, StringComparer.Ordinal).FirstOrDefault()
        : null;
    if (nodeDir is not null)
    {
        Log($"disk baseline: copy of a node's RocksDB directory ({Markup.Escape(Path.GetFileName(nodeDir))}, cluster stopped) + fsync ...");
        rocksCopy = DiskBaseline.DirectoryCopy(nodeDir, Path.Combine(root, "rocksdb-copy"));
        Log($"rocksdb dir copy: {rocksCopy.Bytes / 1e6:0.0} MB in {rocksCopy.Files} files, {rocksCopy.Elapsed.TotalMilliseconds:0} ms = {rocksCopy.MBps:0.0} MB/s");
    }
}
catch (OperationCanceledException) when (ct.IsCancellationRequested)
{
    failures.Add("interrupted");
}
catch (Exception e)
{
    failures.Add(e is BenchFailure ? e.Message : $"{e.GetType().Name}: {e.Message}");
}
finally
{
    if (failures.Count > 0)
        PrintLogTails();
    if (options.KeepData)
    {
        AnsiConsole.MarkupLine($"kept {Markup.Escape(root)}");
    }
    else
    {
        try
        {
            Directory.Delete(root, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            AnsiConsole.MarkupLine($"[yellow]could not delete {Markup.Escape(root)}: {Markup.Escape(e.Message)}[/]");
        }
    }
}

Report();
return failures.Count == 0 && rounds.Count == options.Rounds ? 0 : 1;

// ---- the cluster part ---------------------------------------------------------------------------------

async Task RunClusterAsync()
{
    Log($"starting a {options.Nodes}-node cluster ...");
    var unexpected = new ConcurrentQueue<string>();
    await using LocalCluster cluster = await LocalCluster.StartAsync(new LocalClusterOptions
    {
        Nodes = options.Nodes,
        Chains = 1,
        Replicas = Replicas,
        DataDirectory = clusterDir,
        FailureTimeout = TimeSpan.FromMilliseconds(options.FailureTimeoutMs),
        DeleteDataOnDispose = false,
    }, ct);
    cluster.UnexpectedExit += (process, code) => unexpected.Enqueue($"{process.Name} exited unexpectedly with code {code}");
    string? Abort() => unexpected.TryPeek(out string? message) ? message : ct.IsCancellationRequested ? "interrupted" : null;
    Log($"cluster up: master {cluster.MasterAddress.GetLeftPart(UriPartial.Authority)}, nodes {string.Join(", ", cluster.Nodes.Select(n => n.Id))}");

    await using ConfigWatcher watcher = ConfigWatcher.Start(cluster.MasterAddress);
    await using ChainClient admin = cluster.CreateClient();
    await admin.CreateBucketAsync("preload", ct);
    await admin.CreateBucketAsync("writes", ct);
    ConfigObservation start = await watcher.WaitAsync(c => c.Nodes.Count == Replicas && c.Syncing.Count == 0,
        Stopwatch.GetTimestamp(), options.WaitTimeout, $"chain 0 with {Replicas} members", Abort, ct);
    Log($"chain 0: {Markup.Escape(start.Describe())}");

    // Pre-load: distinct random 1 MiB objects (chunks are content-addressed: equal data would be stored once).
    Log($"pre-loading {options.PreloadMiB} x 1 MiB objects ({PreloadParallelism} at a time) ...");
    var digests = new ConcurrentDictionary<string, byte[]>(StringComparer.Ordinal);
    long preloadStart = Stopwatch.GetTimestamp();
    try
    {
        await Parallel.ForEachAsync(Enumerable.Range(0, options.PreloadMiB),
            new ParallelOptions { MaxDegreeOfParallelism = PreloadParallelism, CancellationToken = ct },
            async (i, token) =>
            {
                var data = new byte[PreloadObjectBytes];
                Random.Shared.NextBytes(data);
                string key = "p/" + i.ToString("D6", CultureInfo.InvariantCulture);
                await admin.PutAsync("preload", key, data, null, token);
                digests[key] = SHA256.HashData(data);
            });
    }
    catch (ChainException e)
    {
        throw new BenchFailure($"pre-load failed: {e.GetType().Name}: {e.Message}");
    }
    preloadTime = Stopwatch.GetElapsedTime(preloadStart);
    Log($"pre-loaded {preloadBytes / 1e6:0.0} MB in {preloadTime.Value.TotalMilliseconds:0} ms = {preloadBytes / 1e6 / preloadTime.Value.TotalSeconds:0.0} MB/s (3 replicas)");

    await using ChainClient writerClient = cluster.CreateClient();
    SteadyWriter writer = SteadyWriter.Start(writerClient, "writes", options.WriteBytes, TimeSpan.FromMilliseconds(options.WriteIntervalMs));
    try
    {
        await WaitForWritesAsync(writer, Stopwatch.GetTimestamp(), 20, "the writer's first 20 acknowledged puts", Abort);

        CpuStat? cpuStart = CpuStat.Read();
        for (int r = 0; r < options.Rounds; r++)
        {
            RoundResult result = await RunRoundAsync(cluster, watcher, writer, r, Abort);
            rounds.Add(result);
            Log($"round {result.Round}: {result.Role} {result.VictimId} killed: removed after {F(result.DetectMs, "0")} ms, " +
                $"first write after {F(result.FailoverMs, "0")} ms; restarted, {result.JoinerId} member again after {F(result.RejoinMs, "0")} ms " +
                $"(sync {F(result.SyncMs, "0")} ms, {F(result.SyncMBps, "0.0")} MB/s of chain data, cpu idle {F(result.CpuIdlePercent, "0")} %)");
        }
        cpuIdleRounds = CpuStat.IdlePercent(cpuStart, CpuStat.Read());
    }
    finally
    {
        await writer.DisposeAsync();
        writeErrors = writer.Errors;
        writesAcknowledged = writer.Acknowledged;
        firstWriteError = writer.FirstError;
    }

    // Every pre-loaded object still reads back intact (a sample, through the current tail).
    string[] sample = digests.Keys.Order(StringComparer.Ordinal).Where((_, i) => i % Math.Max(1, digests.Count / 8) == 0).ToArray();
    foreach (string key in sample)
    {
        byte[] data = await admin.GetBytesAsync("preload", key, ct);
        if (!SHA256.HashData(data).AsSpan().SequenceEqual(digests[key]))
            throw new BenchFailure($"pre-loaded object {key} reads back different after the rounds ({data.Length} bytes)");
    }
    Log($"{sample.Length} pre-loaded objects read back intact");

    await watcher.DisposeAsync();
    IReadOnlyDictionary<string, int> stopFailures = await cluster.StopAllAsync();
    if (stopFailures.Count > 0)
        throw new BenchFailure("the cluster did not stop cleanly: " + string.Join(", ", stopFailures.Select(f => $"{f.Key} exit code {f.Value}")));
}

async Task<RoundResult> RunRoundAsync(LocalCluster cluster, ConfigWatcher watcher, SteadyWriter writer, int round, Func<string?> abort)
{
    TimeSpan timeout = options.WaitTimeout;
    ConfigObservation before = await watcher.WaitAsync(c => c.Nodes.Count == Replicas && c.Syncing.Count == 0,
        Stopwatch.GetTimestamp(), timeout, $"chain 0 with {Replicas} members before round {round + 1}", abort, ct);
    await WaitForSettledAsync(before, abort);
    ChainInfo chain = before.Chain!;
    string role = roles[round % roles.Length];
    string victimId = role switch
    {
        "head" => chain.Nodes[0],
        "middle" => chain.Nodes[chain.Nodes.Count / 2],
        _ => chain.Nodes[^1],
    };
    int victimIndex = IndexOf(cluster, victimId);
    await WaitForWritesAsync(writer, Stopwatch.GetTimestamp(), 20, $"20 writes before the kill in round {round + 1}", abort);

    Dictionary<string, long> logOffsets = cluster.Nodes.ToDictionary(n => n.Id, n => FileLength(n.LogPath), StringComparer.Ordinal);
    CpuStat? cpu0 = CpuStat.Read();
    Log($"round {round + 1}: SIGKILL of the {role} {victimId} ({Markup.Escape(before.Describe())})");
    long killAt = Stopwatch.GetTimestamp();
    await cluster.KillNodeAsync(victimIndex);

    ConfigObservation removed = await watcher.WaitAsync(c => !c.Nodes.Contains(victimId) && !c.Syncing.Contains(victimId),
        killAt, timeout, $"the master to remove {victimId} from chain 0", abort, ct);
    long firstWrite = await WaitForFirstWriteAsync(writer, killAt, $"a write started after the kill of {victimId} to be acknowledged", abort);

    if (options.WipeRestart)
        Directory.Delete(cluster.Nodes[victimIndex].DataDirectory, recursive: true);
    Log($"round {round + 1}: restarting {victimId}{(options.WipeRestart ? " with an empty data directory" : "")} ({Markup.Escape(removed.Describe())})");
    long restartAt = Stopwatch.GetTimestamp();
    await cluster.StartNodeAsync(victimIndex, ct);
    long readyAt = Stopwatch.GetTimestamp();

    ConfigObservation full = await watcher.WaitAsync(c => c.Nodes.Count == Replicas && c.Syncing.Count == 0,
        removed.Timestamp, timeout, $"chain 0 back to {Replicas} members after the restart of {victimId}", abort, ct);
    string joinerId = full.Chain!.Nodes.Except(removed.Chain!.Nodes).FirstOrDefault() ?? "?";
    ConfigObservation? syncing = watcher.Find(c => c.Syncing.Contains(joinerId), removed.Timestamp, full.Timestamp);
    double syncMs = syncing is null ? double.NaN : Ms(syncing.Timestamp, full.Timestamp);
    long chainData = preloadBytes + writer.AckedBytesUntil(full.Timestamp);
    (long Sent, long Skipped)? snapshot = ReadSnapshotReport(cluster, logOffsets, joinerId);

    // The chain takes writes again with its new tail.
    await WaitForWritesAsync(writer, full.Timestamp, 10, $"10 writes after {joinerId} rejoined in round {round + 1}", abort);
    double cpuIdle = CpuStat.IdlePercent(cpu0, CpuStat.Read());

    return new RoundResult(round + 1, role, victimId, joinerId,
        DetectMs: Ms(killAt, removed.Timestamp),
        FailoverMs: Ms(killAt, firstWrite),
        LongestGapMs: writer.LongestAckGap(killAt, full.Timestamp) * 1000.0 / Stopwatch.Frequency,
        RestartReadyMs: Ms(restartAt, readyAt),
        RejoinMs: Ms(restartAt, full.Timestamp),
        SyncMs: syncMs,
        ChainDataBytes: chainData,
        SnapshotBytesSent: snapshot?.Sent,
        SnapshotBytesSkipped: snapshot?.Skipped,
        CpuIdlePercent: cpuIdle);
}

// The master's config changes before the nodes apply it (they learn of it with their next heartbeat): wait until
// every member runs the config's epoch at its position, so that a kill hits the chain the config shows.
async Task WaitForSettledAsync(ConfigObservation observation, Func<string?> abort)
{
    ChainInfo chain = observation.Chain!;
    var addresses = observation.Config.Nodes.ToDictionary(n => n.Node.NodeId, n => n.Node.Address, StringComparer.Ordinal);
    var channels = new List<RpcChannel>();
    try
    {
        foreach (string id in chain.Nodes)
        {
            if (!addresses.TryGetValue(id, out string? address))
                throw new BenchFailure($"config v{observation.Config.Version} lists {id} in chain 0 but not among its nodes");
            channels.Add(new RpcChannel(new Uri(address)));
        }
        long deadline = Stopwatch.GetTimestamp() + (long)(options.WaitTimeout.TotalSeconds * Stopwatch.Frequency);
        string last = "no answer yet";
        while (true)
        {
            bool settled = true;
            for (int i = 0; i < channels.Count && settled; i++)
            {
                try
                {
                    ReplicaStateResponse state = await channels[i].UnaryAsync(AdminMethods.ReplicaState,
                        new ReplicaStateRequest { ChainId = chain.ChainId },
                        new CallOptions { Timeout = TimeSpan.FromSeconds(2), CancellationToken = ct });
                    if (state.Epoch != chain.Epoch || state.Position != i)
                    {
                        settled = false;
                        last = $"{chain.Nodes[i]} runs epoch {state.Epoch} at position {state.Position}, the config says epoch {chain.Epoch} position {i}";
                    }
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    settled = false;
                    last = $"{chain.Nodes[i]}: {e.GetType().Name}: {e.Message}";
                }
            }
            if (settled)
                return;
            if (abort() is { } reason)
                throw new BenchFailure($"{reason} (while waiting for the nodes to apply config v{observation.Config.Version})");
            if (Stopwatch.GetTimestamp() > deadline)
                throw new BenchFailure($"timed out after {options.WaitTimeoutSeconds} s waiting for the nodes to apply config v{observation.Config.Version}: {last}");
            await Task.Delay(20, ct);
        }
    }
    finally
    {
        foreach (RpcChannel channel in channels)
            channel.Dispose();
    }
}

async Task WaitForWritesAsync(SteadyWriter writer, long since, int count, string what, Func<string?> abort)
{
    long deadline = Stopwatch.GetTimestamp() + (long)(options.WaitTimeout.TotalSeconds * Stopwatch.Frequency);
    while (writer.CountStartedAfter(since) < count)
    {
        if (abort() is { } reason)
            throw new BenchFailure($"{reason} (while waiting for {what})");
        if (Stopwatch.GetTimestamp() > deadline)
            throw new BenchFailure($"timed out after {options.WaitTimeoutSeconds} s waiting for {what}: {writer.CountStartedAfter(since)} so far, " +
                $"{writer.Errors} failed puts{(writer.FirstError is { } e ? ", first: " + e : "")}");
        await Task.Delay(20, ct);
    }
}

async Task<long> WaitForFirstWriteAsync(SteadyWriter writer, long since, string what, Func<string?> abort)
{
    long deadline = Stopwatch.GetTimestamp() + (long)(options.WaitTimeout.TotalSeconds * Stopwatch.Frequency);
    while (true)
    {
        if (writer.FirstAckStartedAfter(since) is { } end)
            return end;
        if (abort() is { } reason)
            throw new BenchFailure($"{reason} (while waiting for {what})");
        if (Stopwatch.GetTimestamp() > deadline)
            throw new BenchFailure($"timed out after {options.WaitTimeoutSeconds} s waiting for {what} " +
                $"({writer.Errors} failed puts{(writer.FirstError is { } e ? ", first: " + e : "")})");
        await Task.Delay(10, ct);
    }
}

static int IndexOf(LocalCluster cluster, string nodeId)
{
    for (int i = 0; i < cluster.Nodes.Count; i++)
    {
        if (cluster.Nodes[i].Id == nodeId)
            return i;
    }
    throw new BenchFailure($"chain 0 lists node '{nodeId}', which is not one of this cluster's nodes");
}

// The sending tail logs "sent a snapshot at S (N bytes; M bytes of chunks it already held skipped)": the bytes the
// sync really moved. Best effort: null when no node logged it since the kill.
static (long Sent, long Skipped)? ReadSnapshotReport(LocalCluster cluster, Dictionary<string, long> offsets, string joinerId)
{
    var pattern = new Regex(@"sent a snapshot at \d+ \((\d+) bytes; (\d+) bytes of chunks", RegexOptions.CultureInvariant);
    (long, long)? found = null;
    foreach (NodeProcess node in cluster.Nodes.Where(n => n.Id != joinerId))
    {
        string text = ReadFrom(node.LogPath, offsets.GetValueOrDefault(node.Id));
        foreach (Match match in pattern.Matches(text))
            found = (long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture));
    }
    return found;
}

static string ReadFrom(string path, long offset)
{
    try
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (offset > stream.Length)
            offset = 0;
        stream.Seek(offset, SeekOrigin.Begin);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
    {
        return "";
    }
}

static long FileLength(string path)
{
    try
    {
        return File.Exists(path) ? new FileInfo(path).Length : 0;
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
    {
        return 0;
    }
}

void PrintLogTails()
{
    if (!Directory.Exists(clusterDir))
        return;
    foreach (string log in Directory.EnumerateFiles(clusterDir, "*.log").Order(StringComparer.Ordinal))
    {
        string[] lines = ReadFrom(log, 0).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        AnsiConsole.MarkupLine($"[grey]--- last lines of {Markup.Escape(Path.GetFileName(log))}[/]");
        foreach (string line in lines.TakeLast(12))
            AnsiConsole.WriteLine(line.Length > 400 ? line[..400] + " ..." : line);
    }
    if (!options.KeepData)
        AnsiConsole.MarkupLine("[grey](run with --keep-data to keep the full logs)[/]");
}

// ---- report -------------------------------------------------------------------------------------------

void Report()
{
    if (rounds.Count > 0)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("Failover rounds (times in ms; MB = 10^6 B)");
        table.AddColumn("round", c => c.RightAligned());
        table.AddColumn("victim", c => c.NoWrap());
        foreach (string column in new[] { "kill→removed", "kill→1st write", "longest ack gap", "restart→READY", "rejoin", "joiner", "sync",
                     "chain data MB", "sync MB/s", "snapshot sent MB", "sent MB/s", "cpu idle %" })
            table.AddColumn(column, c => c.RightAligned());
        foreach (RoundResult r in rounds)
        {
            table.AddRow(
                r.Round.ToString(CultureInfo.InvariantCulture),
                $"{r.Role} ({r.VictimId})",
                F(r.DetectMs, "0"),
                F(r.FailoverMs, "0"),
                F(r.LongestGapMs, "0"),
                F(r.RestartReadyMs, "0"),
                F(r.RejoinMs, "0"),
                r.JoinerId == r.VictimId ? r.JoinerId : $"{r.JoinerId} (spare)",
                F(r.SyncMs, "0"),
                F(r.ChainDataBytes / 1e6, "0.0"),
                F(r.SyncMBps, "0.0"),
                r.SnapshotBytesSent is { } sent ? F(sent / 1e6, "0.0") : "-",
                F(r.SentMBps, "0.0"),
                F(r.CpuIdlePercent, "0"));
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine("kill→first write: from the SIGKILL to the first acknowledgement of a put that started after it. " +
            "longest ack gap: the longest time without any acknowledgement from the kill to the rejoin. " +
            "rejoin: from the restart (process start included) to the config listing the node as a member with nothing syncing. " +
            "sync: from the config listing it as syncing to the one listing it as a member (promotion comes with a heartbeat, every 500 ms). " +
            "sync MB/s = chain data (all objects written so far) / sync; sent MB/s = what the tail's snapshot carried / sync " +
            (options.WipeRestart ? "(killed nodes restarted with empty data: the snapshot carries the whole chain)." :
                "(a restarted node keeps its chunks, so the snapshot skips most of them; --wipe-restart forces a full copy)."));
    }

    double failoverMedian = Median(rounds.Select(r => r.FailoverMs));
    double failoverMax = rounds.Count > 0 ? rounds.Max(r => r.FailoverMs) : double.NaN;
    double syncMedian = Median(rounds.Select(r => r.SyncMBps));
    double sentMedian = Median(rounds.Select(r => r.SentMBps));
    double detectMedian = Median(rounds.Select(r => r.DetectMs));
    double gapMedian = Median(rounds.Select(r => r.LongestGapMs));
    double rejoinMedian = Median(rounds.Select(r => r.RejoinMs));
    double diskMBps = fileCopy?.MBps ?? double.NaN;
    double rocksMBps = rocksCopy?.MBps ?? double.NaN;
    double ratio = diskMBps > 0 ? syncMedian / diskMBps : double.NaN;

    var summary = new Table().Border(TableBorder.Rounded).Title("Summary");
    summary.AddColumn("figure");
    summary.AddColumn("value", c => c.RightAligned());
    summary.AddRow("kill→first write, median ms", F(failoverMedian, "0"));
    summary.AddRow("kill→first write, max ms", F(failoverMax, "0"));
    summary.AddRow("longest ack gap, median ms", F(gapMedian, "0"));
    summary.AddRow("kill→removed from the chain, median ms", F(detectMedian, "0"));
    summary.AddRow("restart→member again, median ms", F(rejoinMedian, "0"));
    summary.AddRow("sync, median MB/s (chain data / sync time)", F(syncMedian, "0.0"));
    summary.AddRow("sync, median MB/s (snapshot bytes sent / sync time)", F(sentMedian, "0.0"));
    summary.AddRow($"disk: File.Copy + fsync of {options.PreloadMiB} MiB, MB/s", F(diskMBps, "0.0"));
    summary.AddRow(rocksCopy is null ? "disk: copy of a node's RocksDB dir + fsync, MB/s" :
        $"disk: copy of a node's RocksDB dir ({rocksCopy.Bytes / 1e6:0.0} MB, {rocksCopy.Files} files) + fsync, MB/s", F(rocksMBps, "0.0"));
    summary.AddRow("ratio sync MB/s / disk copy MB/s", F(ratio, "0.000"));
    if (preloadTime is { } p)
        summary.AddRow("pre-load (3 replicas), MB/s", F(preloadBytes / 1e6 / p.TotalSeconds, "0.0"));
    summary.AddRow("writer: acknowledged puts / failed puts", $"{writesAcknowledged} / {writeErrors}");
    summary.AddRow("cpu idle during the rounds, %", F(cpuIdleRounds, "0.0"));
    summary.AddRow("wall time, s", F(Stopwatch.GetElapsedTime(runStart).TotalSeconds, "0.0"));
    AnsiConsole.Write(summary);

    if (cpuIdleRounds < 10)
        AnsiConsole.MarkupLine($"[yellow]warning: cpu idle during the rounds was {F(cpuIdleRounds, "0.0")} % (< 10 %): the machine was saturated, " +
            "the times above mostly measure CPU contention and mean little.[/]");
    if (firstWriteError is not null)
        AnsiConsole.MarkupLine($"[yellow]writer: {writeErrors} puts failed for good; first: {Markup.Escape(firstWriteError)}[/]");
    foreach (string failure in failures)
        AnsiConsole.MarkupLine($"[red]failed:[/] {Markup.Escape(failure)}");
    if (failures.Count == 0 && rounds.Count < options.Rounds)
        AnsiConsole.MarkupLine($"[red]failed:[/] only {rounds.Count} of {options.Rounds} rounds completed");

    // One line for scripts, last: key=value, times in ms, rates in MB/s (10^6 B), NaN when not measured.
    var line = new StringBuilder("BENCH");
    void Add(string key, double number, string format) =>
        line.Append(' ').Append(key).Append('=').Append(double.IsNaN(number) ? "NaN" : number.ToString(format, CultureInfo.InvariantCulture));
    Add("failover_ms_median", failoverMedian, "0.0");
    Add("failover_ms_max", failoverMax, "0.0");
    Add("sync_mb_s_median", syncMedian, "0.0");
    Add("disk_copy_mb_s", diskMBps, "0.0");
    Add("ratio", ratio, "0.000");
    Add("sent_mb_s_median", sentMedian, "0.0");
    Add("gap_ms_median", gapMedian, "0.0");
    Add("detect_ms_median", detectMedian, "0.0");
    Add("rejoin_ms_median", rejoinMedian, "0.0");
    Add("rocksdb_copy_mb_s", rocksMBps, "0.0");
    Add("cpu_idle_rounds", cpuIdleRounds, "0.0");
    Add("rounds", rounds.Count, "0");
    Add("preload_mib", options.PreloadMiB, "0");
    Add("failure_timeout_ms", options.FailureTimeoutMs, "0");
    Add("write_errors", writeErrors, "0");
    Add("wipe_restart", options.WipeRestart ? 1 : 0, "0");
    Add("failed", failures.Count > 0 || rounds.Count < options.Rounds ? 1 : 0, "0");
    Console.Out.Flush();
    Console.WriteLine(line.ToString());
}

void Log(string markup) =>
    AnsiConsole.MarkupLine($"[grey]{Stopwatch.GetElapsedTime(runStart).TotalSeconds,7:0.0}s[/] {markup}");

static double Ms(long from, long to) => (to - from) * 1000.0 / Stopwatch.Frequency;

static double Median(IEnumerable<double> values)
{
    double[] sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
    if (sorted.Length == 0)
        return double.NaN;
    int mid = sorted.Length / 2;
    return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

static string F(double number, string format) =>
    double.IsNaN(number) ? "-" : number.ToString(format, CultureInfo.InvariantCulture);
