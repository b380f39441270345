using Chain.Client;
using Chain.Consistency;
using Chain.Harness.Faults;
using Chain.Jepsen;

namespace Chain.Cli;

/// <summary><c>chain check</c>: one Jepsen-style run (and optional shrinking). Exit codes 0 valid, 1 invalid, 2 unknown.</summary>
internal static class CheckCommand
{
    public const int Unknown = 2;

    public static async Task<int> RunAsync(ParsedCommand command, CliIo io)
    {
        RunSpec spec;
        SpecConstraints constraints = Constraints(command);
        long seed = command.LongOption("seed", 0, long.MaxValue) ?? SpecGenerator.NewSeed();
        if (command.Option("spec") is { } specFile)
        {
            spec = ReadSpec(specFile, command.Name);
            seed = spec.Seed;
        }
        else
        {
            spec = SpecGenerator.FromSeed(seed, constraints);
        }
        int shrink = command.IntOption("shrink", 0, 0, 1000)!.Value;
        int budget = command.IntOption("check-budget", 30, 1, 3600)!.Value;
        var options = new RunnerOptions
        {
            OutputDirectory = command.Option("out") ?? new RunnerOptions().OutputDirectory,
            CheckBudget = TimeSpan.FromSeconds(budget),
            Log = io.Out,
        };

        io.Out.WriteLine($"chain check: seed {seed} (replay with --seed {seed}; the spec replays exactly, the cluster's timing does not)");
        io.Out.WriteLine($"spec: {spec.Describe()}");
        io.Out.Flush();
        RunResult first;
        ShrinkResult? shrunk;
        try
        {
            (first, shrunk) = await Runner.RunAndShrinkAsync(spec, options, shrink, constraints, io.Cancellation).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // Interrupted, or the runner itself failed: nothing was decided, so the verdict is unknown (never 1).
            string what = e is OperationCanceledException && io.Cancellation.IsCancellationRequested ? "cancelled" : $"{e.GetType().Name}: {e.Message}";
            io.Err.WriteLine($"chain check: seed {seed}: UNKNOWN - {what}");
            return Unknown;
        }
        PrintProblems(first, io);
        if (shrunk is not null)
        {
            RunResult smallest = shrunk.Smallest;
            io.Out.WriteLine($"shrunk in {shrunk.Runs} run(s) to: {smallest.Spec.Describe()}");
            io.Out.WriteLine($"  smallest failing spec: {Path.Combine(smallest.RunDirectory, "spec.json")} (replay with --spec)");
            io.Out.WriteLine($"  {smallest.Summary()}");
        }
        io.Out.WriteLine($"chain check: {first.Summary()}");
        return first.ExitCode;
    }

    private static void PrintProblems(RunResult result, CliIo io)
    {
        foreach (string note in result.Notes)
            io.Out.WriteLine($"note: {note}");
        foreach (string problem in result.Check.Problems)
            io.Out.WriteLine($"{(result.Verdict == Verdict.Invalid ? "anomaly" : "unknown")}: {problem}");
        if (result.Stats.Errors.Count > 0)
            io.Out.WriteLine("errors: " + string.Join(", ", result.Stats.Errors.Select(p => $"{p.Key} x{p.Value}")));
    }

    private static SpecConstraints Constraints(ParsedCommand command)
    {
        Workload? workload = command.Option("workload") switch
        {
            null => null,
            "register" => Workload.Register,
            "set" => Workload.Set,
            "large" => Workload.Large,
            var other => throw new UsageException($"--workload must be register, set or large, not '{other}'", command.Name),
        };
        IReadOnlyList<FaultKind> kinds;
        try
        {
            kinds = NemesisCatalog.Parse(command.Option("nemesis") ?? "kill,pause");
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message, command.Name);
        }
        ReadTarget readFrom = command.Option("read-from") switch
        {
            null or "any" => ReadTarget.AnyReplica,
            "tail" => ReadTarget.Tail,
            var other => throw new UsageException($"--read-from must be any or tail, not '{other}'", command.Name),
        };
        int? seconds = command.IntOption("time", null, 1, 24 * 3600);
        return new SpecConstraints
        {
            Workload = workload,
            FaultKinds = kinds,
            Clients = command.IntOption("clients", null, 1, 64),
            Ops = command.IntOption("ops", null, 1, 10_000_000),
            TimeLimit = seconds is { } s ? TimeSpan.FromSeconds(s) : null,
            Nodes = command.IntOption("nodes", 3, 1, 32)!.Value,
            ReadFrom = readFrom,
            TestBreaks = command.Option("break") is { Length: > 0 } breaks ? breaks : null,
        };
    }

    private static RunSpec ReadSpec(string file, string commandName)
    {
        try
        {
            RunSpec spec = RunSpec.FromJson(File.ReadAllText(file));
            spec.Validate();
            return spec;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--spec {file}: {e.Message}", commandName);
        }
    }
}
