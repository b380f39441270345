using Chain.Harness.BellJar;

namespace Chain.Cli;

/// <summary>
/// <c>chain drill SCENARIO|short|full</c>: BellJar drills in sealed namespaces (root). Exit codes: 0 every scenario
/// passed, 1 one failed, 2 usage, 4 this machine cannot seal (not root, tools missing).
/// </summary>
internal static class DrillCommand
{
    public const int CannotSeal = 4;

    public static async Task<int> RunAsync(ParsedCommand command, CliIo io)
    {
        IReadOnlyList<IDrillScenario> scenarios;
        try
        {
            scenarios = DrillRunner.Resolve(command.Positionals[0]);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message, command.Name);
        }
        ManifestSet manifests;
        try
        {
            manifests = ManifestSet.Load(command.Option("manifests"));
        }
        catch (ManifestException e)
        {
            io.Err.WriteLine($"chain drill: bad dependency manifest: {e.Message}");
            return CliApp.Failed;
        }
        if (DrillRunner.Unavailable() is { } reason)
        {
            io.Err.WriteLine(Chain.Harness.Shell.IsRoot
                ? $"chain drill: cannot seal network namespaces here: {reason}"
                : $"chain drill: BellJar needs root: it seals every process in its own network namespace with iptables (running as '{Environment.UserName}'; try sudo ./chain drill ...)");
            return CannotSeal;
        }

        long seed = command.LongOption("seed", 0, long.MaxValue) ?? DrillRunner.NewSeed();
        DateTimeOffset started = DateTimeOffset.UtcNow;
        string report = command.Option("report") ?? Path.Combine("drills", started.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture));
        io.Out.WriteLine($"chain drill: {string.Join(", ", scenarios.Select(s => s.Name))}; seed {seed} (repeat with --seed {seed})");
        io.Out.Flush();
        var options = new DrillOptions
        {
            WorkDirectory = Path.Combine(Path.GetFullPath(report), "work"),
            Seed = seed,
            Manifests = manifests,
            Log = io.Out,
            KeepData = command.Flag("keep"),
        };
        IReadOnlyList<ScenarioResult> results = await DrillRunner.RunAsync(scenarios, options, io.Cancellation).ConfigureAwait(false);
        (string md, string html) = DrillReport.Write(report, results, seed, started);
        io.Out.WriteLine();
        io.Out.Write(DrillReport.MarkdownTable(results));
        io.Out.WriteLine();
        foreach (ScenarioResult failed in results.Where(r => r.Status != DrillStatus.Pass))
            io.Out.WriteLine($"{failed.Name}: {DrillReport.Status(failed.Status)}: {failed.Failure}");
        io.Out.WriteLine($"report: {md} and {html}");
        return results.Any(r => r.Status == DrillStatus.Fail) ? CliApp.Failed : CliApp.Ok;
    }
}
