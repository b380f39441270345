using System.Globalization;
using Chain.Bench;
using Chain.Client;
using Chain.Harness;
using Chain.ScaleBench;
using Chain.Tools;
using Spectre.Console;

if (!BenchArguments.TryParse(() => ScaleOptions.Parse(args), ScaleOptions.Usage, o => o.Help, out ScaleOptions? parsed, out int exitCode))
    return exitCode;
ScaleOptions options = parsed!;

BenchConsole.PlainWhenRedirected(width: 200);
using CancellationTokenSource cancellation = BenchConsole.CancelOnCtrlC();
CancellationToken ct = cancellation.Token;

string baseDirectory = Path.GetFullPath(options.Directory);
Directory.CreateDirectory(baseDirectory);
long free = new DriveInfo(baseDirectory).AvailableFreeSpace;
if (free < options.RequiredFreeBytes)
{
    Console.Error.WriteLine($"refused: {baseDirectory} has {ByteSize.Format(free)} free; this run needs about {ByteSize.Format(options.RequiredFreeBytes)} " +
        $"({(options.BigProof ? "8 x the object size: input, output, 3 replicas with WAL and SST copies" : "the disk file plus 8 x the object size")}). " +
        "Use --dir on a larger file system or a smaller --size.");
    return 2;
}

string root = Path.Combine(baseDirectory, "chain-scalebench-" + Guid.NewGuid().ToString("N")[..12]);
Directory.CreateDirectory(root);
var results = new ScaleResults();
CpuSample? runCpu = CpuSample.Read();
AnsiConsole.WriteLine($"Chain scale benchmark: {Environment.ProcessorCount} cores, data in {root} ({ByteSize.Format(free)} free)");

try
{
    if (options.BigProof)
        await RunProofAsync();
    else
        await RunBenchAsync();
}
catch (OperationCanceledException) when (ct.IsCancellationRequested)
{
    results.Failures.Add("interrupted");
}
catch (Exception e)
{
    results.Failures.Add($"{e.GetType().Name}: {e.Message}");
}
finally
{
    if (options.Keep)
        AnsiConsole.WriteLine($"kept {root}");
    else
        LocalCluster.TryDeleteDirectory(root);
}

results.RunCpuIdlePercent = CpuSample.IdlePercent(runCpu, CpuSample.Read());
Report.Print(results, options);
if (options.JsonPath is not null)
    Report.WriteJson(options.JsonPath, results, options);
return results.Failures.Count > 0 || results.Proof is { Passed: false } ? 1 : 0;

// ---- phases -------------------------------------------------------------------------------------------

void Log(string message) => AnsiConsole.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");

LocalClusterOptions ClusterOptions() => new()
{
    Nodes = ScaleOptions.Nodes,
    Replicas = ScaleOptions.Replicas,
    Chains = options.Chains,
    DataDirectory = Path.Combine(root, "cluster"),
    DeleteDataOnDispose = !options.Keep,
};

async Task RunBenchAsync()
{
    if (!options.SkipDisk)
    {
        foreach (Transfer t in RawDisk.Measure(Path.Combine(root, "disk"), options.DiskBytes, dropCache: true, Log, ct))
        {
            results.Disk.Add(t);
            Log(RawDisk.Describe(t));
        }
    }
    if (options.SkipLarge && options.SkipReads)
        return;

    Log($"starting {ScaleOptions.Nodes} nodes, {options.Chains} chains of {ScaleOptions.Replicas} (real processes on loopback) ...");
    await using LocalCluster cluster = await LocalCluster.StartAsync(ClusterOptions(), ct);
    Log($"cluster up: master {cluster.MasterAddress.GetLeftPart(UriPartial.Authority)}");
    await using (ChainClient client = cluster.CreateClient())
    {
        await client.CreateBucketAsync(ClusterPhases.Bucket, ct);
        if (!options.SkipLarge)
        {
            try
            {
                (results.LargePut, results.LargeGet) = await ClusterPhases.LargeObjectAsync(client, options.ObjectBytes, Log, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                results.Failures.Add($"large object: {e.GetType().Name}: {e.Message}");
            }
        }
        if (options.SkipReads)
            return;
        Log($"read scaling: preloading {options.Keys} keys of {ByteSize.Format(options.ValueBytes)} ...");
        await ClusterPhases.PreloadAsync(client, options.Keys, options.ValueBytes, ct);
    }
    foreach (ReadTarget target in new[] { ReadTarget.Tail, ReadTarget.AnyReplica })
    {
        MixResult mix = await ClusterPhases.MixAsync(t => cluster.CreateClient(o => o with { ReadFrom = t }), target, options, Log, ct);
        results.Mix.Add(mix);
        Log($"{ClusterPhases.Describe(target)}: {mix.Phase.OpsPerSecond.ToString("0", CultureInfo.InvariantCulture)} ops/s, " +
            $"{mix.ReadMBps.ToString("0.00", CultureInfo.InvariantCulture)} read MB/s, {mix.Phase.Errors} errors, cpu idle {mix.Phase.CpuIdlePercent.ToString("0.0", CultureInfo.InvariantCulture)} %");
    }
}

async Task RunProofAsync()
{
    IReadOnlyList<string> chain = await BigProof.PrepareAsync(BigProof.LocateChainCommand(options.ChainCommand), Log, ct);
    Log($"chain command: {string.Join(' ', chain)}");
    Log($"starting {ScaleOptions.Nodes} nodes, {options.Chains} chains of {ScaleOptions.Replicas} (real processes on loopback) ...");
    await using LocalCluster cluster = await LocalCluster.StartAsync(ClusterOptions(), ct);
    Log($"cluster up: master {cluster.MasterAddress.GetLeftPart(UriPartial.Authority)}");
    results.Proof = await BigProof.RunAsync(cluster, chain, root, options.ObjectBytes, options.RssLimitBytes, Log, ct);
}
