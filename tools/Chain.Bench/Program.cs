using System.Globalization;
using System.Text;
using Chain.Bench;
using Chain.Client;
using Chain.Harness;
using Chain.Storage;
using Chain.Storage.RocksDb;
using Chain.Tools;
using Spectre.Console;

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (BenchUsageException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}
if (options.Help)
{
    Console.WriteLine(BenchOptions.Usage);
    return 0;
}

BenchConsole.PlainWhenRedirected(width: 160);
using CancellationTokenSource cancellation = BenchConsole.CancelOnCtrlC();
CancellationToken ct = cancellation.Token;

string root = Path.Combine(Path.GetTempPath(), "chain-bench-" + Guid.NewGuid().ToString("N")[..12]);
Directory.CreateDirectory(root);
var value = new byte[options.ValueBytes];
Random.Shared.NextBytes(value);
int k = options.Clients;
var results = new List<PhaseResult>();
var failures = new List<string>();
CpuSample? runCpuStart = CpuSample.Read();

AnsiConsole.MarkupLine($"[bold]Chain benchmark[/]: {Environment.ProcessorCount} cores, {k} clients, " +
    $"bound {options.Seconds.ToString(CultureInfo.InvariantCulture)} s / {options.MaxOps} ops per phase, {options.ValueBytes} B values");

try
{
    if (!options.SkipRaw)
    {
        foreach (int writers in new[] { 1, k }.Distinct())
        {
            string name = $"raw rocksdb put ({writers} writer{(writers == 1 ? "" : "s")})";
            AnsiConsole.MarkupLine($"running [blue]{Markup.Escape(name)}[/] ...");
            try
            {
                results.Add(await RunRawAsync(Path.Combine(root, $"raw-{writers}"), writers, name));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                failures.Add($"{name}: {e.GetType().Name}: {e.Message}");
            }
        }
    }

    if (!options.SkipChain)
    {
        try
        {
            await RunChainAsync(Path.Combine(root, "cluster"));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            failures.Add($"chain cluster: {e.GetType().Name}: {e.Message}");
        }
    }
}
catch (OperationCanceledException)
{
    failures.Add("interrupted");
}
finally
{
    try
    {
        Directory.Delete(root, recursive: true);
    }
    catch (IOException)
    {
    }
}

double runIdle = CpuSample.IdlePercent(runCpuStart, CpuSample.Read());
Report(results, runIdle);
foreach (string failure in failures)
    AnsiConsole.MarkupLine($"[red]failed:[/] {Markup.Escape(failure)}");
return failures.Count == 0 && results.Count > 0 ? 0 : 1;

// ---- phases -------------------------------------------------------------------------------------------

async Task<PhaseResult> RunRawAsync(string path, int writers, string name)
{
    using RocksDbEngine engine = RocksDbEngine.Open(path, new RocksDbOptions { ColumnFamilies = new[] { "default" } });
    // Warm-up (JIT, WAL creation): not measured.
    for (int i = 0; i < 16; i++)
        await engine.WriteAsync(new KvBatch().Put("default", Key("warm", i), value), ct);
    return await LoadRunner.RunAsync(name, writers, options.Duration, options.MaxOps,
        (sequence, _) => engine.WriteAsync(new KvBatch().Put("default", Key("k", sequence), value), ct).AsTask(), ct);
}

async Task RunChainAsync(string path)
{
    AnsiConsole.MarkupLine($"starting a {options.Nodes}-node cluster in {Markup.Escape(path)} ...");
    await using LocalCluster cluster = await LocalCluster.StartAsync(new LocalClusterOptions
    {
        Nodes = options.Nodes,
        DataDirectory = path,
        DeleteDataOnDispose = true,
    }, ct);
    AnsiConsole.MarkupLine($"cluster up: master {cluster.MasterAddress.GetLeftPart(UriPartial.Authority)}");

    var clients = new ChainClient[k];
    for (int i = 0; i < k; i++)
        clients[i] = cluster.CreateClient();
    try
    {
        const string bucket = "bench";
        await clients[0].CreateBucketAsync(bucket, ct);
        // Warm-up, not measured: every client connects, then puts and gets run long enough for the JIT to
        // reach its optimized tier in every process (a fresh .NET process spends its first seconds compiling).
        AnsiConsole.MarkupLine($"warming up for {options.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s ...");
        await Task.WhenAll(clients.Select(async (client, i) =>
        {
            string key = $"warm-{i}";
            await client.PutAsync(bucket, key, value, null, ct);
            await client.GetBytesAsync(bucket, key, ct);
        }));
        if (options.WarmupSeconds > 0)
        {
            await LoadRunner.RunAsync("warm-up", k, TimeSpan.FromSeconds(options.WarmupSeconds), options.MaxOps,
                async (sequence, worker) =>
                {
                    string key = $"warm-{worker}";
                    if (sequence % 2 == 0)
                        await clients[worker].PutAsync(bucket, key, value, null, ct);
                    else
                        await clients[worker].GetBytesAsync(bucket, key, ct);
                }, ct);
        }

        AnsiConsole.MarkupLine($"running [blue]chain put ({k} clients)[/] ...");
        // Each successful put records its key; the get phase reads those keys.
        var written = new System.Collections.Concurrent.ConcurrentQueue<long>();
        PhaseResult puts = await LoadRunner.RunAsync($"chain put ({k} clients)", k, options.Duration, options.MaxOps,
            async (sequence, worker) =>
            {
                await clients[worker].PutAsync(bucket, KeyText(sequence), value, null, ct);
                written.Enqueue(sequence);
            }, ct);
        results.Add(puts);

        long[] keys = written.Order().ToArray();
        if (keys.Length == 0)
        {
            failures.Add($"chain put wrote nothing{(puts.FirstError is null ? "" : ": " + puts.FirstError)}");
            return;
        }
        AnsiConsole.MarkupLine($"running [blue]chain get ({k} clients)[/] over {keys.Length} keys ...");
        PhaseResult gets = await LoadRunner.RunAsync($"chain get ({k} clients)", k, options.Duration, options.MaxOps,
            async (sequence, worker) =>
            {
                byte[] data = await clients[worker].GetBytesAsync(bucket, KeyText(keys[sequence % keys.Length]), ct);
                if (data.Length != value.Length)
                    throw new InvalidDataException($"read {data.Length} bytes, wrote {value.Length}");
            }, ct);
        results.Add(gets);
    }
    finally
    {
        foreach (ChainClient client in clients)
            await client.DisposeAsync();
    }
}

static string KeyText(long sequence) => "k" + sequence.ToString("D10", CultureInfo.InvariantCulture);

static byte[] Key(string prefix, long sequence) => Encoding.ASCII.GetBytes(prefix + sequence.ToString("D10", CultureInfo.InvariantCulture));

// ---- report -------------------------------------------------------------------------------------------

void Report(List<PhaseResult> phases, double runIdlePercent)
{
    var table = new Table().Border(TableBorder.Rounded).Title("Results");
    table.AddColumn("phase", c => c.NoWrap());
    foreach (string column in new[] { "workers", "ops", "errors", "seconds", "ops/s", "p50 ms", "p99 ms", "cpu idle %" })
        table.AddColumn(column, c => c.RightAligned());
    foreach (PhaseResult phase in phases)
    {
        table.AddRow(
            Markup.Escape(phase.Name),
            phase.Workers.ToString(CultureInfo.InvariantCulture),
            phase.Ops.ToString(CultureInfo.InvariantCulture),
            phase.Errors == 0 ? "0" : $"[red]{phase.Errors}[/]",
            phase.Elapsed.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture),
            phase.OpsPerSecond.ToString("0", CultureInfo.InvariantCulture),
            Format(phase.P50Ms, "0.00"),
            Format(phase.P99Ms, "0.00"),
            Format(phase.CpuIdlePercent, "0.0"));
    }
    AnsiConsole.Write(table);
    foreach (PhaseResult phase in phases.Where(p => p.FirstError is not null))
        AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(phase.Name)}: first error: {Markup.Escape(phase.FirstError!)}[/]");

    PhaseResult? chainPut = phases.FirstOrDefault(p => p.Name.StartsWith("chain put", StringComparison.Ordinal));
    PhaseResult? chainGet = phases.FirstOrDefault(p => p.Name.StartsWith("chain get", StringComparison.Ordinal));
    PhaseResult? raw1 = phases.FirstOrDefault(p => p.Name.StartsWith("raw", StringComparison.Ordinal) && p.Workers == 1);
    PhaseResult? rawK = phases.FirstOrDefault(p => p.Name.StartsWith("raw", StringComparison.Ordinal) && p.Workers == k);
    double ratio1 = Ratio(chainPut, raw1);
    double ratioK = Ratio(chainPut, rawK);
    if (chainPut is not null && (raw1 is not null || rawK is not null))
    {
        var ratios = new Table().Border(TableBorder.Rounded).Title("Chain vs raw RocksDB (synced puts/s)");
        ratios.AddColumn("ratio");
        ratios.AddColumn("value", c => c.RightAligned());
        ratios.AddRow("chain put / raw put (1 writer)", Format(ratio1, "0.000"));
        ratios.AddRow($"chain put / raw put ({k} writers)", Format(ratioK, "0.000"));
        AnsiConsole.Write(ratios);
    }
    AnsiConsole.MarkupLine($"cpu idle over the whole run: {Format(runIdlePercent, "0.0")} %");

    // One line for scripts: key=value pairs, rates in ops/s, latencies in ms, NaN when not measured.
    var summary = new StringBuilder("BENCH");
    void Add(string key, double number, string format) =>
        summary.Append(' ').Append(key).Append('=').Append(double.IsNaN(number) ? "NaN" : number.ToString(format, CultureInfo.InvariantCulture));
    Add("clients", k, "0");
    Add("value_bytes", options.ValueBytes, "0");
    Add("chain_put_ops_s", chainPut?.OpsPerSecond ?? double.NaN, "0.0");
    Add("chain_put_p50_ms", chainPut?.P50Ms ?? double.NaN, "0.000");
    Add("chain_put_p99_ms", chainPut?.P99Ms ?? double.NaN, "0.000");
    Add("chain_get_ops_s", chainGet?.OpsPerSecond ?? double.NaN, "0.0");
    Add("chain_get_p50_ms", chainGet?.P50Ms ?? double.NaN, "0.000");
    Add("chain_get_p99_ms", chainGet?.P99Ms ?? double.NaN, "0.000");
    Add("raw_put_1_ops_s", raw1?.OpsPerSecond ?? double.NaN, "0.0");
    Add("raw_put_k_ops_s", rawK?.OpsPerSecond ?? double.NaN, "0.0");
    Add("ratio_chain_raw_1", ratio1, "0.0000");
    Add("ratio_chain_raw_k", ratioK, "0.0000");
    Add("cpu_idle_chain_put", chainPut?.CpuIdlePercent ?? double.NaN, "0.0");
    Add("cpu_idle_chain_get", chainGet?.CpuIdlePercent ?? double.NaN, "0.0");
    Add("cpu_idle_raw_k", rawK?.CpuIdlePercent ?? double.NaN, "0.0");
    Add("cpu_idle_run", runIdlePercent, "0.0");
    Add("errors", phases.Sum(p => p.Errors), "0");
    Console.WriteLine(summary.ToString());
}

static double Ratio(PhaseResult? chain, PhaseResult? raw) =>
    chain is null || raw is null || raw.OpsPerSecond <= 0 ? double.NaN : chain.OpsPerSecond / raw.OpsPerSecond;

static string Format(double number, string format) =>
    double.IsNaN(number) ? "-" : number.ToString(format, CultureInfo.InvariantCulture);
