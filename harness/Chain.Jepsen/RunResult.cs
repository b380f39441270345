using System.Globalization;
using Chain.Consistency;
using Chain.Harness.Faults;

namespace Chain.Jepsen;

/// <summary>Counts over one run's history.</summary>
/// <param name="Errors">Exception type name → how many operations ended with it.</param>
public sealed record RunStats(
    int Operations,
    int Ok,
    int Fail,
    int Info,
    IReadOnlyDictionary<string, int> Errors,
    TimeSpan WorkloadTime,
    TimeSpan TotalTime);

/// <summary>
/// Everything about one run: the spec, the history, what the nemesis did (start/end ticks on the history's clock),
/// the checkers' report and where the files are. The HTML report is built from this.
/// </summary>
/// <param name="TicksPerSecond">Frequency of the monotonic clock of every tick in the history and fault events.</param>
/// <param name="Notes">Things worth knowing that are not anomalies (unexpected process exits, slow settling, ...).</param>
/// <param name="Error">Set when the run itself failed (the cluster did not start, ...): the verdict is then unknown.</param>
/// <param name="ClusterDirectory">The cluster's data, kept when the run was not valid (null once deleted).</param>
/// <param name="ReportPath">The self-contained HTML report of the run (null if it could not be written).</param>
public sealed record RunResult(
    RunSpec Spec,
    Verdict Verdict,
    CheckReport Check,
    IReadOnlyList<Operation> History,
    IReadOnlyList<FaultEvent> Faults,
    string RunDirectory,
    string HistoryPath,
    long TicksPerSecond,
    RunStats Stats,
    IReadOnlyList<string> Notes,
    string? Error,
    string? ClusterDirectory,
    string? ReportPath)
{
    public int ExitCode => HistoryChecks.ExitCode(Verdict);

    public string Summary() => string.Create(CultureInfo.InvariantCulture,
        $"seed {Spec.Seed} {Spec.Workload.ToString().ToLowerInvariant()}: {Verdict.ToString().ToUpperInvariant()} - " +
        $"{Stats.Operations} ops ({Stats.Ok} ok, {Stats.Fail} fail, {Stats.Info} info), {Faults.Count} fault(s), " +
        $"checker {Check.Elapsed.TotalSeconds:0.###}s, history {HistoryPath}{(ReportPath is null ? "" : ", report " + ReportPath)}");
}

/// <summary>A failing run and the smallest spec found that still fails.</summary>
/// <param name="Runs">Re-runs spent shrinking.</param>
public sealed record ShrinkResult(RunResult Original, RunResult Smallest, int Runs);
