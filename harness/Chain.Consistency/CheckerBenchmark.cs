using System.Diagnostics;
using System.Globalization;

namespace Chain.Consistency;

/// <summary>Timings of the history checkers on one generated history (see <see cref="CheckerBenchmark.Run"/>).</summary>
public sealed record CheckerBenchmarkResult(
    GeneratorOptions Options,
    int Operations,
    int Keys,
    TimeSpan Generate,
    TimeSpan Linearizability,
    TimeSpan Duplicates,
    Verdict LinearizabilityVerdict,
    Verdict DuplicateVerdict)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Operations} ops, {Keys} keys, {Options.Clients} clients, info {Options.InfoShare:P1}, seed {Options.Seed}: " +
        $"generate {Generate.TotalMilliseconds:0} ms, linearizability {Linearizability.TotalMilliseconds:0} ms ({LinearizabilityVerdict}), " +
        $"no-duplicates {Duplicates.TotalMilliseconds:0} ms ({DuplicateVerdict})");
}

/// <summary>
/// Benchmark mode: generates a linearizable history of the given shape and times each history checker on it.
/// A history from a correct simulated store must come out valid; anything else is a checker bug.
/// </summary>
public static class CheckerBenchmark
{
    public static CheckerBenchmarkResult Run(GeneratorOptions options, TimeSpan linearizabilityBudget)
    {
        ArgumentNullException.ThrowIfNull(options);
        var stopwatch = Stopwatch.StartNew();
        var history = HistoryGenerator.Generate(options);
        var generate = stopwatch.Elapsed;

        stopwatch.Restart();
        var linear = LinearizabilityChecker.Check(history, linearizabilityBudget);
        var linearTime = stopwatch.Elapsed;

        stopwatch.Restart();
        var duplicates = DuplicateChecker.Check(history);
        var duplicateTime = stopwatch.Elapsed;

        return new CheckerBenchmarkResult(options, history.Count, linear.Keys.Count, generate, linearTime, duplicateTime,
            linear.Verdict, duplicates.Verdict);
    }

    /// <summary>The standard set: the floor (10,000 ops, 100 keys, 10 clients), more info ops, a large run, fewer keys, one hot key with and without CAS.</summary>
    public static IReadOnlyList<GeneratorOptions> StandardShapes(int seed = 1) =>
    [
        new GeneratorOptions { Operations = 10_000, Keys = 100, Clients = 10, Seed = seed },
        new GeneratorOptions { Operations = 10_000, Keys = 100, Clients = 10, InfoShare = 0.05, Seed = seed },
        new GeneratorOptions { Operations = 100_000, Keys = 1_000, Clients = 20, Seed = seed },
        new GeneratorOptions { Operations = 10_000, Keys = 10, Clients = 10, Seed = seed },
        new GeneratorOptions { Operations = 10_000, Keys = 1, Clients = 10, InfoShare = 0.002, Seed = seed },
        // The store's own workload has no CAS (put/get only): timed-out writes nobody read are set aside.
        new GeneratorOptions { Operations = 10_000, Keys = 1, Clients = 10, CasShare = 0, InfoShare = 0.05, Seed = seed },
    ];
}
