using System.Globalization;

namespace Chain.Consistency;

/// <summary>
/// One checker's judgement of a run, in a common shape for reports and exit codes: its name, the verdict, a one-line
/// summary, optional detail lines, and for an invalid verdict the key and the operations that witness it.
/// </summary>
public sealed record CheckerVerdict(
    string Checker,
    Verdict Verdict,
    string Summary,
    IReadOnlyList<string> Details,
    string? InvalidKey = null,
    IReadOnlyList<int>? WitnessIds = null)
{
    /// <summary>Jepsen's exit codes: 0 valid, 1 invalid, 2 unknown — for the worst of several verdicts.</summary>
    public static int ExitCode(IEnumerable<CheckerVerdict> verdicts)
    {
        ArgumentNullException.ThrowIfNull(verdicts);
        var list = verdicts.ToList();
        return list.Any(v => v.Verdict == Verdict.Invalid) ? 1 : list.Any(v => v.Verdict == Verdict.Unknown) ? 2 : 0;
    }

    public static CheckerVerdict From(CheckResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var unknown = result.Keys.Values.Where(k => k.Verdict == Verdict.Unknown).Select(k => k.Key).ToList();
        var invalid = result.Keys.Values.Where(k => k.Verdict == Verdict.Invalid).Select(k => k.Key).ToList();
        var summary = result.Verdict switch
        {
            Verdict.Valid => $"{result.Keys.Count} keys linearizable",
            Verdict.Invalid => $"key '{result.InvalidKey}' is not linearizable ({invalid.Count} invalid of {result.Keys.Count} keys); " +
                $"longest linearizable prefix: {result.Witness.Count} operations",
            _ => $"{unknown.Count} of {result.Keys.Count} keys not decided within the time budget",
        };
        var details = new List<string>();
        if (invalid.Count > 0)
        {
            details.Add("invalid keys: " + string.Join(", ", invalid.Take(20)) + (invalid.Count > 20 ? ", …" : ""));
        }

        if (unknown.Count > 0)
        {
            details.Add("undecided keys: " + string.Join(", ", unknown.Take(20)) + (unknown.Count > 20 ? ", …" : ""));
        }

        return new CheckerVerdict("linearizability", result.Verdict, summary, details, result.InvalidKey,
            result.Verdict == Verdict.Invalid ? result.Witness : null);
    }

    public static CheckerVerdict From(DuplicateCheckResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var details = result.Violations.Select(v => $"{v.Kind}: {v.Description}").ToList();
        if (result.Truncated)
        {
            details.Add($"(only the first {DuplicateChecker.MaxViolations} violations are listed)");
        }

        if (result.RepeatedInputs.Count > 0)
        {
            details.Add("values written more than once (premise broken, ignored): " + string.Join(", ", result.RepeatedInputs.Take(20)));
        }

        var summary = result.Verdict switch
        {
            Verdict.Valid => "no update applied twice",
            Verdict.Invalid => $"{result.Violations.Count}{(result.Truncated ? "+" : "")} pieces of evidence of an update applied twice",
            _ => $"{result.RepeatedInputs.Count} values were written more than once, so repeats of them cannot be judged",
        };
        var first = result.Violations.FirstOrDefault();
        return new CheckerVerdict("no-duplicates", result.Verdict, summary, details, first?.Key, first?.OperationIds);
    }

    public static CheckerVerdict From(SetCheckResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var details = new List<string>();
        if (result.Lost.Count > 0)
        {
            details.Add("lost: " + string.Join(", ", result.Lost.Take(50)));
        }

        if (result.Invented.Count > 0)
        {
            details.Add("never written: " + string.Join(", ", result.Invented.Take(50)));
        }

        var summary = result.Valid
            ? string.Create(CultureInfo.InvariantCulture, $"every acknowledged insert present ({result.RecoveredIndeterminate.Count} indeterminate ones too)")
            : $"{result.Lost.Count} acknowledged inserts lost, {result.Invented.Count} elements never inserted";
        return new CheckerVerdict("set-full", result.Valid ? Verdict.Valid : Verdict.Invalid, summary, details);
    }
}

/// <summary>Runs every checker that judges a history on its own (linearizability, no duplicate application).</summary>
public static class HistoryCheckers
{
    public static IReadOnlyList<CheckerVerdict> CheckAll(IReadOnlyList<Operation> history, TimeSpan linearizabilityBudget)
    {
        ArgumentNullException.ThrowIfNull(history);
        return
        [
            CheckerVerdict.From(LinearizabilityChecker.Check(history, linearizabilityBudget)),
            CheckerVerdict.From(DuplicateChecker.Check(history)),
        ];
    }
}
