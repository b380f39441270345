namespace Chain.Consistency;

/// <summary>What kind of evidence of a repeated application a <see cref="DuplicateViolation"/> is.</summary>
public enum DuplicateKind
{
    /// <summary>Reads r1 → r2 → r3 (each returned before the next was called) saw v, w, v with v ≠ w: v came back after it was overwritten.</summary>
    ReappearedValue,
    /// <summary>One written value was seen (acknowledged or read) with two different versions: it was applied twice.</summary>
    ValueWithTwoVersions,
    /// <summary>Two different written values were acknowledged with the same version on one key.</summary>
    SharedVersion,
}

/// <summary>One piece of evidence that an update was applied more than once (or resurrected).</summary>
/// <param name="OperationIds">The operations that prove it, in time order.</param>
public sealed record DuplicateViolation(string Key, DuplicateKind Kind, string Value, IReadOnlyList<int> OperationIds, string Description);

/// <summary>Result of <see cref="DuplicateChecker.Check"/>.</summary>
/// <param name="Violations">The evidence found (at most <see cref="DuplicateChecker.MaxViolations"/>; <see cref="Truncated"/> says if more was dropped).</param>
/// <param name="RepeatedInputs">Written values that more than one operation wrote: the check's premise (unique writes) does not hold for them, so they are ignored.</param>
public sealed record DuplicateCheckResult(
    IReadOnlyList<DuplicateViolation> Violations,
    bool Truncated,
    IReadOnlyList<string> RepeatedInputs)
{
    public bool Valid => Violations.Count == 0;

    public Verdict Verdict => Violations.Count > 0 ? Verdict.Invalid : RepeatedInputs.Count > 0 ? Verdict.Unknown : Verdict.Valid;
}

/// <summary>
/// No-duplicate-application checker. Premise: every write and CAS writes a value no other operation writes.
/// Then, per key, over operations that completed ok (fail and info ones say nothing about what was applied):
/// <list type="bullet">
/// <item><b>Reappeared value</b>: take the non-null values seen by ok reads. If a read of v returned before a read of
/// w ≠ v was called, and that read of w returned before another read of v was called, v was in the register,
/// then w, then v again — w overwrote v, so v was written a second time: an update was applied twice (or a
/// replica served an old state again, which is the same violation seen from the client).</item>
/// <item><b>Value with two versions</b>: when the store reports versions (sequence numbers of the update that wrote
/// the value), every report about one value — its write's acknowledgement and every ok read of it — must carry one
/// version; two versions mean two applications.</item>
/// <item><b>Shared version</b>: two ok writes of different values acknowledged with the same version on one key.</item>
/// </list>
/// A read of null (absent) is never evidence here: a lost value is the linearizability and set checkers' business.
/// Runs in O(n log n) per key.
/// </summary>
public static class DuplicateChecker
{
    public const int MaxViolations = 100;

    public static DuplicateCheckResult Check(IReadOnlyList<Operation> history)
    {
        ArgumentNullException.ThrowIfNull(history);

        // Premise: unique written values. Values written twice are excluded from the evidence.
        var repeated = history
            .Where(o => o.Kind != OpKind.Read && o.Input is not null)
            .GroupBy(o => (o.Key, Value: o.Input!))
            .Where(g => g.Count() > 1)
            .Select(g => g.Key)
            .ToHashSet();

        var violations = new List<DuplicateViolation>();
        var truncated = false;
        foreach (var keyOps in history.GroupBy(o => o.Key, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var ops = keyOps.Where(o => o.Status == OpStatus.Ok && !repeated.Contains((o.Key, Value(o) ?? ""))).ToList();
            foreach (var violation in Reappeared(keyOps.Key, ops).Concat(Versions(keyOps.Key, ops)))
            {
                if (violations.Count == MaxViolations)
                {
                    truncated = true;
                    break;
                }

                violations.Add(violation);
            }
        }

        var repeatedValues = repeated.Select(r => $"{r.Key}={r.Value}").Order(StringComparer.Ordinal).ToList();
        return new DuplicateCheckResult(violations, truncated, repeatedValues);
    }

    /// <summary>The value an ok operation reports: what a read saw, what a write or successful CAS wrote; null otherwise.</summary>
    private static string? Value(Operation op) => op.Kind switch
    {
        OpKind.Read => op.Output,
        OpKind.Write => op.Input,
        OpKind.Cas when string.Equals(op.Output, Operation.CasOk, StringComparison.Ordinal) => op.Input,
        _ => null,
    };

    /// <summary>
    /// For every value v: the read of v that returned first (r1) and the read of v that was called last (r3). Any read
    /// of another value lying strictly between r1's return and r3's call proves v came back. A suffix table over
    /// reads sorted by call time keeps, for every suffix, the earliest-returning read and the earliest-returning read
    /// with a different value than that one, so each v is one binary search.
    /// </summary>
    private static IEnumerable<DuplicateViolation> Reappeared(string key, List<Operation> ops)
    {
        var reads = ops.Where(o => o.Kind == OpKind.Read && o.Output is not null).OrderBy(o => o.CallTicks).ThenBy(o => o.Id).ToList();
        if (reads.Count < 3)
        {
            yield break;
        }

        var best = new Operation?[reads.Count + 1];
        var second = new Operation?[reads.Count + 1]; // earliest return among reads whose value differs from best's
        for (var i = reads.Count - 1; i >= 0; i--)
        {
            var r = reads[i];
            Operation? b = best[i + 1], s = second[i + 1];
            if (b is null || r.ReturnTicks < b.ReturnTicks)
            {
                // r becomes best; the runner-up with a different value is the old best if it differs, else the old second.
                s = b is not null && !SameValue(b, r) ? b : s;
                b = r;
            }
            else if (!SameValue(r, b) && (s is null || r.ReturnTicks < s.ReturnTicks))
            {
                s = r;
            }

            best[i] = b;
            second[i] = s;
        }

        foreach (var group in reads.GroupBy(r => r.Output!, StringComparer.Ordinal))
        {
            var first = group.MinBy(r => r.ReturnTicks)!;
            var last = group.MaxBy(r => r.CallTicks)!;
            if (last.CallTicks <= first.ReturnTicks)
            {
                continue;
            }

            var from = LowerBoundCallAfter(reads, first.ReturnTicks);
            var b = best[from];
            var middle = b is not null && !string.Equals(b.Output, group.Key, StringComparison.Ordinal) ? b : second[from];
            if (middle is not null && middle.ReturnTicks < last.CallTicks)
            {
                yield return new DuplicateViolation(key, DuplicateKind.ReappearedValue, group.Key, [first.Id, middle.Id, last.Id],
                    $"key {key}: read {first.Id} saw {group.Key}, then read {middle.Id} saw {middle.Output}, then read {last.Id} saw {group.Key} again");
            }
        }
    }

    private static bool SameValue(Operation a, Operation b) => string.Equals(a.Output, b.Output, StringComparison.Ordinal);

    /// <summary>Index of the first read (sorted by call) whose call is strictly after <paramref name="time"/>.</summary>
    private static int LowerBoundCallAfter(List<Operation> reads, long time)
    {
        int lo = 0, hi = reads.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (reads[mid].CallTicks > time)
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return lo;
    }

    private static IEnumerable<DuplicateViolation> Versions(string key, List<Operation> ops)
    {
        var reports = ops.Where(o => o.Version is not null && Value(o) is not null).ToList();
        foreach (var byValue in reports.GroupBy(o => Value(o)!, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var versions = byValue.GroupBy(o => o.Version!.Value).OrderBy(g => g.Key).ToList();
            if (versions.Count > 1)
            {
                var witnesses = versions.Select(v => v.OrderBy(o => o.CallTicks).First()).OrderBy(o => o.CallTicks).ToList();
                yield return new DuplicateViolation(key, DuplicateKind.ValueWithTwoVersions, byValue.Key, witnesses.Select(o => o.Id).ToList(),
                    $"key {key}: value {byValue.Key} was seen with versions {string.Join(", ", versions.Select(v => v.Key))} " +
                    $"(operations {string.Join(", ", witnesses.Select(o => o.Id))})");
            }
        }

        var acks = reports.Where(o => o.Kind != OpKind.Read);
        foreach (var byVersion in acks.GroupBy(o => o.Version!.Value).OrderBy(g => g.Key))
        {
            var distinct = byVersion.DistinctBy(o => o.Input, StringComparer.Ordinal).OrderBy(o => o.CallTicks).ToList();
            if (distinct.Count > 1)
            {
                yield return new DuplicateViolation(key, DuplicateKind.SharedVersion, distinct[0].Input!, distinct.Select(o => o.Id).ToList(),
                    $"key {key}: writes {string.Join(", ", distinct.Select(o => $"{o.Id} ({o.Input})"))} were all acknowledged with version {byVersion.Key}");
            }
        }
    }
}
