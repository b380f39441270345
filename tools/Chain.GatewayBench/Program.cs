using Chain.GatewayBench;
using Chain.Harness;
using Chain.ScaleBench;
using Chain.Tools;
using Spectre.Console;

if (!BenchArguments.TryParse(() => GatewayBenchOptions.Parse(args), GatewayBenchOptions.Usage, o => o.Help, out GatewayBenchOptions? parsed, out int exitCode))
    return exitCode;
GatewayBenchOptions options = parsed!;

BenchConsole.PlainWhenRedirected(width: 200);
using CancellationTokenSource cancellation = BenchConsole.CancelOnCtrlC();

string baseDirectory = Path.GetFullPath(options.Directory);
Directory.CreateDirectory(baseDirectory);
long free = new DriveInfo(baseDirectory).AvailableFreeSpace;
if (free < options.RequiredFreeBytes)
{
    Console.Error.WriteLine($"refused: {baseDirectory} has {ByteSize.Format(free)} free; this run needs about {ByteSize.Format(options.RequiredFreeBytes)} " +
        "(both paths' objects, 3 replicas, WAL and SST copies). Use --dir on a larger file system or fewer/smaller objects.");
    return 2;
}

string root = Path.Combine(baseDirectory, "chain-gatewaybench-" + Guid.NewGuid().ToString("N")[..12]);
AnsiConsole.WriteLine($"Chain gateway benchmark: {Environment.ProcessorCount} cores, data in {root} ({ByteSize.Format(free)} free)");
BenchResults results;
try
{
    results = await BenchRun.RunAsync(options, root, m => AnsiConsole.WriteLine($"[{DateTime.Now:HH:mm:ss}] {m}"), cancellation.Token);
}
catch (Exception e)
{
    results = new BenchResults();
    results.Failures.Add(cancellation.IsCancellationRequested ? "interrupted" : $"{e.GetType().Name}: {e.Message}");
}
finally
{
    if (options.Keep)
        AnsiConsole.WriteLine($"kept {root}");
    else
        LocalCluster.TryDeleteDirectory(root);
}
Chain.GatewayBench.Report.Print(results);
return results.Failures.Count > 0 ? 1 : 0;
