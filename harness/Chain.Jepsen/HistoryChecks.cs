using System.Diagnostics;
using System.Text.Json;
using Chain.Consistency;

namespace Chain.Jepsen;

/// <summary>The checkers' verdict on one history, with what they found.</summary>
/// <param name="Problems">One line per anomaly (empty when valid); for unknown, why the check could not decide.</param>
/// <param name="Verdicts">Every checker's verdict in the common shape (for the HTML report); the worst is <paramref name="Verdict"/>.</param>
public sealed record CheckReport(
    Verdict Verdict,
    CheckResult? Linearizability,
    SetCheckResult? Set,
    IReadOnlyList<string> Problems,
    TimeSpan Elapsed,
    IReadOnlyList<CheckerVerdict> Verdicts)
{
    /// <summary>This report with one more checker's verdict (e.g. replica convergence, judged on the live cluster).</summary>
    public CheckReport With(CheckerVerdict verdict)
    {
        ArgumentNullException.ThrowIfNull(verdict);
        var problems = Problems.ToList();
        if (verdict.Verdict != Verdict.Valid)
            problems.Add($"{verdict.Checker}: {verdict.Summary}");
        var verdicts = Verdicts.Append(verdict).ToArray();
        return this with { Verdicts = verdicts, Problems = problems, Verdict = HistoryChecks.Worst(verdicts.Select(v => v.Verdict)) };
    }
}

/// <summary>
/// Runs the checkers a workload needs over a recorded history (so a saved history can be re-checked on its own).
/// Register and large: every value read was written to that key by some operation, and each key's sub-history is
/// linearizable (Wing–Gong with a time budget). Set: set-full over the inserts and the final read.
/// </summary>
public static class HistoryChecks
{
    /// <summary>The key of every set-workload operation: inserts are writes of the element, the final read's output is a JSON array.</summary>
    public const string SetKey = "set";

    public static int ExitCode(Verdict verdict) => verdict switch
    {
        Verdict.Valid => 0,
        Verdict.Invalid => 1,
        _ => 2,
    };

    public static Verdict Worst(IEnumerable<Verdict> verdicts)
    {
        var list = verdicts.ToList();
        return list.Contains(Verdict.Invalid) ? Verdict.Invalid : list.Contains(Verdict.Unknown) ? Verdict.Unknown : Verdict.Valid;
    }

    public static CheckReport Check(Workload workload, IReadOnlyList<Operation> history, TimeSpan budget)
    {
        ArgumentNullException.ThrowIfNull(history);
        var stopwatch = Stopwatch.StartNew();
        CheckReport report = workload == Workload.Set ? CheckSet(history) : CheckRegister(history, budget);
        return report with { Elapsed = stopwatch.Elapsed };
    }

    /// <summary>The final read's elements encoded as the output of a set-workload read.</summary>
    public static string EncodeSet(IEnumerable<string> elements) => JsonSerializer.Serialize(elements.Order(StringComparer.Ordinal).ToArray());

    private static CheckReport CheckSet(IReadOnlyList<Operation> history)
    {
        Operation? final = history.LastOrDefault(o => o.Kind == OpKind.Read && o.Status == OpStatus.Ok && o.Output is not null);
        if (final is null)
            return new CheckReport(Verdict.Unknown, null, null, new[] { "no successful final read of the set" }, TimeSpan.Zero,
                new[] { new CheckerVerdict("set-full", Verdict.Unknown, "no successful final read of the set", Array.Empty<string>()) });
        string[] present = JsonSerializer.Deserialize<string[]>(final.Output!) ?? Array.Empty<string>();
        IEnumerable<string> Inputs(OpStatus status) =>
            history.Where(o => o.Kind == OpKind.Write && o.Status == status && o.Input is not null).Select(o => o.Input!);
        SetCheckResult result = SetChecker.Check(Inputs(OpStatus.Ok), Inputs(OpStatus.Info), present);
        var problems = new List<string>();
        if (result.Lost.Count > 0)
            problems.Add($"{result.Lost.Count} acknowledged insert(s) missing from the final read: {Preview(result.Lost)}");
        if (result.Invented.Count > 0)
            problems.Add($"{result.Invented.Count} element(s) in the final read that were never inserted or whose insert failed: {Preview(result.Invented)}");
        return new CheckReport(result.Valid ? Verdict.Valid : Verdict.Invalid, null, result, problems, TimeSpan.Zero,
            new[] { CheckerVerdict.From(result) });
    }

    private static CheckReport CheckRegister(IReadOnlyList<Operation> history, TimeSpan budget)
    {
        var problems = new List<string>();
        var written = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (Operation op in history)
        {
            if (op.Kind is OpKind.Write or OpKind.Cas && op.Input is not null)
            {
                if (!written.TryGetValue(op.Key, out HashSet<string>? values))
                    written[op.Key] = values = new HashSet<string>(StringComparer.Ordinal);
                values.Add(op.Input);
            }
        }
        var phantoms = new List<string>();
        foreach (Operation op in history)
        {
            if (op.Kind == OpKind.Read && op.Status == OpStatus.Ok && op.Output is not null
                && !(written.TryGetValue(op.Key, out HashSet<string>? values) && values.Contains(op.Output)))
                phantoms.Add($"op {op.Id} (client {op.Client}) read '{op.Output}' from key {op.Key}, which no operation ever wrote there");
        }
        problems.AddRange(phantoms);
        var readsWritten = new CheckerVerdict("reads-written", phantoms.Count == 0 ? Verdict.Valid : Verdict.Invalid,
            phantoms.Count == 0 ? "every value read was written to its key" : $"{phantoms.Count} read(s) of values never written to their key",
            phantoms.Take(20).ToArray());

        CheckResult linearizability = LinearizabilityChecker.Check(history, budget);
        if (linearizability.Verdict == Verdict.Invalid && linearizability.InvalidKey is { } key)
        {
            KeyResult keyResult = linearizability.Keys[key];
            problems.Add($"key {key} ({keyResult.OperationCount} ops) is not linearizable; longest linearizable prefix: " +
                $"[{string.Join(", ", linearizability.Witness)}]");
            int invalidKeys = linearizability.Keys.Values.Count(k => k.Verdict == Verdict.Invalid);
            if (invalidKeys > 1)
                problems.Add($"{invalidKeys} keys in all are not linearizable: {Preview(linearizability.Keys.Values.Where(k => k.Verdict == Verdict.Invalid).Select(k => k.Key).ToList())}");
        }
        if (linearizability.Verdict == Verdict.Unknown)
        {
            var unknown = linearizability.Keys.Values.Where(k => k.Verdict == Verdict.Unknown).Select(k => k.Key).ToList();
            problems.Add($"the linearizability search ran out of its {budget.TotalSeconds:0.#}s budget on {unknown.Count} key(s): {Preview(unknown)}");
        }
        CheckerVerdict duplicates = CheckerVerdict.From(DuplicateChecker.Check(history));
        if (duplicates.Verdict != Verdict.Valid)
            problems.Add($"duplicates: {duplicates.Summary}");
        CheckerVerdict[] verdicts = { readsWritten, CheckerVerdict.From(linearizability), duplicates };
        return new CheckReport(Worst(verdicts.Select(v => v.Verdict)), linearizability, null, problems, TimeSpan.Zero, verdicts);
    }

    private static string Preview(IReadOnlyList<string> items, int max = 10) =>
        string.Join(", ", items.Take(max)) + (items.Count > max ? $", ... ({items.Count - max} more)" : "");
}
