using Chain.DistBench;
using Chain.Harness;
using Chain.ScaleBench;
using Chain.Tools;
using Spectre.Console;

if (PeerCommands.Handles(args))
    return await PeerCommands.RunAsync(args);

if (!BenchArguments.TryParse(() => DistBenchOptions.Parse(args), DistBenchOptions.Usage, o => o.Help, out DistBenchOptions? parsed, out int exitCode))
    return exitCode;
DistBenchOptions options = parsed!;

if (!Shell.IsRoot)
{
    Console.Error.WriteLine("refused: the distribution benchmark needs root (network namespaces, veth pairs, tc shaping)");
    return 4;
}
if (BenchRun.Unavailable() is { } reason)
{
    Console.Error.WriteLine($"refused: {reason}");
    return 1;
}

BenchConsole.PlainWhenRedirected(width: 200);
using CancellationTokenSource cancellation = BenchConsole.CancelOnCtrlC();
// SIGTERM like Ctrl-C: cancel, so that the clean-up (processes, namespaces, files) runs before the process ends.
using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, signal =>
{
    signal.Cancel = true;
    cancellation.Cancel();
});
string root = Path.Combine(Path.GetFullPath(options.Directory), "chain-distbench-" + Guid.NewGuid().ToString("N")[..12]);
double shaped = (options.Peers * (double)options.RateBitsPerSecond + options.OriginRateBitsPerSecond) / 1e6;
AnsiConsole.WriteLine($"Chain distribution benchmark: {Environment.ProcessorCount} cores, {options.Peers} peers, {ByteSize.Format(options.SizeBytes)}, " +
    $"{options.Runs} run(s) of {string.Join(", ", options.Ways)}; files in {root}");
if (shaped > 500)
    AnsiConsole.WriteLine($"note: {shaped:0} Mbit/s of shaped links in total; above ~500 Mbit/s a small machine's CPU, not the links, may set the pace");
BenchResults results;
try
{
    results = await BenchRun.RunAsync(options, root, m => AnsiConsole.WriteLine($"[{DateTime.Now:HH:mm:ss}] {Markup.Escape(m)}"), cancellation.Token);
}
catch (Exception e)
{
    results = new BenchResults { Options = options };
    results.Failures.Add(cancellation.IsCancellationRequested ? "interrupted" : $"{e.GetType().Name}: {e.Message}");
}
finally
{
    if (options.Keep)
        AnsiConsole.WriteLine($"kept {root}");
    else
        LocalCluster.TryDeleteDirectory(root);
}
Chain.DistBench.Report.Print(results);
return results.AnyFailed ? 1 : 0;
