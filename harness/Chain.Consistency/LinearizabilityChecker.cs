using System.Collections.Concurrent;
using System.Diagnostics;

namespace Chain.Consistency;

public enum Verdict
{
    Valid,
    Invalid,
    Unknown,
}

/// <summary>Outcome for one key's sub-history.</summary>
/// <param name="Witness">For Invalid: the longest linearized prefix found (operation ids in linearization order).</param>
public sealed record KeyResult(string Key, Verdict Verdict, int OperationCount, IReadOnlyList<int> Witness);

/// <summary>Outcome of a whole check. For Invalid, <see cref="InvalidKey"/> and <see cref="Witness"/> name the first invalid key (ordinal order).</summary>
public sealed record CheckResult(
    Verdict Verdict,
    IReadOnlyDictionary<string, KeyResult> Keys,
    string? InvalidKey,
    IReadOnlyList<int> Witness);

/// <summary>
/// Wing–Gong linearizability search with Lowe's memoization, partitioned by key (as in Porcupine), the keys checked
/// in parallel under one time budget (Unknown when it runs out). Per key: values interned to ints, a memo of 128-bit
/// fingerprints of (linearized set, state), info writes nobody observes set aside and observed ones bounded by
/// their first observer (both rely on unique written values and never change a verdict; see the helpers).
/// </summary>
public static class LinearizabilityChecker
{
    private const int BudgetCheckInterval = 64;

    public static CheckResult Check(IReadOnlyList<Operation> history, TimeSpan budget) => Check(history, budget, pruneInfo: true);

    /// <param name="pruneInfo">Set aside unobserved info writes and bound observed ones (off only to test that this never changes a verdict).</param>
    internal static CheckResult Check(IReadOnlyList<Operation> history, TimeSpan budget, bool pruneInfo)
    {
        ArgumentNullException.ThrowIfNull(history);
        var stopwatch = Stopwatch.StartNew();

        var byKey = new Dictionary<string, List<Operation>>(StringComparer.Ordinal);
        foreach (var raw in history)
        {
            var op = Normalize(raw);
            if (op is null)
            {
                continue;
            }

            if (!byKey.TryGetValue(op.Key, out var list))
            {
                list = [];
                byKey.Add(op.Key, list);
            }

            list.Add(op);
        }

        var results = new ConcurrentDictionary<string, KeyResult>(StringComparer.Ordinal);
        Parallel.ForEach(byKey, pair =>
            results[pair.Key] = CheckKey(pair.Key, pruneInfo ? BoundObservedInfoWrites(DropUnobservedInfoWrites(pair.Value)) : pair.Value, stopwatch, budget));

        var keys = results.OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        var invalid = keys.Values.FirstOrDefault(r => r.Verdict == Verdict.Invalid);
        if (invalid is not null)
        {
            return new CheckResult(Verdict.Invalid, keys, invalid.Key, invalid.Witness);
        }

        var verdict = keys.Values.Any(r => r.Verdict == Verdict.Unknown) ? Verdict.Unknown : Verdict.Valid;
        return new CheckResult(verdict, keys, null, []);
    }

    /// <summary>Drops Fail ops and Info reads; Info writes/CAS return at +infinity with an output that matches anything.</summary>
    private static Operation? Normalize(Operation op) => op.Status switch
    {
        OpStatus.Fail => null,
        OpStatus.Info when op.Kind == OpKind.Read => null,
        OpStatus.Info => op with { ReturnTicks = long.MaxValue, Output = null },
        _ => op,
    };

    /// <summary>
    /// Drops info writes and info CAS whose value no operation observes (no read returned it, no CAS expected it),
    /// unless the key has an ok CAS that failed. Such a write may be taken as never applied without changing the
    /// verdict: in any linearization that contains it, the operations between it and the next write see its value,
    /// so none are reads or successful CAS (they would observe it), none are failed ok CAS (excluded), and an info
    /// CAS there did nothing and can move to the end; removing it leaves a linearization. This keeps the many
    /// timed-out writes of a faulty run from multiplying the search.
    /// </summary>
    private static List<Operation> DropUnobservedInfoWrites(List<Operation> ops)
    {
        if (!ops.Any(o => o.Status == OpStatus.Info && o.Kind != OpKind.Read)
            || ops.Any(o => o.Kind == OpKind.Cas && o.Status == OpStatus.Ok && !string.Equals(o.Output, Operation.CasOk, StringComparison.Ordinal)))
        {
            return ops;
        }

        var observed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var op in ops)
        {
            var value = op.Kind == OpKind.Read ? op.Output : op.Kind == OpKind.Cas ? op.ExpectedOld : null;
            if (value is not null)
            {
                observed.Add(value);
            }
        }

        return ops.Where(o => o.Status != OpStatus.Info || o.Kind == OpKind.Read || o.Input is null || observed.Contains(o.Input)).ToList();
    }

    /// <summary>
    /// Gives an info write or CAS whose value is observed a finite return: the earliest return of an ok read that saw
    /// the value or an ok CAS that expected it. Written values are unique (only values exactly one operation of the
    /// key writes are bounded), so every linearization puts the write before that observer, and the observer before
    /// its return. An info write then constrains the search like an ordinary one instead of staying a candidate
    /// at every step.
    /// </summary>
    private static List<Operation> BoundObservedInfoWrites(List<Operation> ops)
    {
        if (!ops.Any(o => o.Status == OpStatus.Info && o.Kind != OpKind.Read && o.Input is not null))
        {
            return ops;
        }

        var writers = new Dictionary<string, int>(StringComparer.Ordinal);
        var firstObserved = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var op in ops)
        {
            if (op.Kind != OpKind.Read && op.Input is not null)
            {
                writers[op.Input] = writers.GetValueOrDefault(op.Input) + 1;
            }

            var seen = op.Status != OpStatus.Ok ? null
                : op.Kind == OpKind.Read ? op.Output
                : op.Kind == OpKind.Cas && string.Equals(op.Output, Operation.CasOk, StringComparison.Ordinal) ? op.ExpectedOld
                : null;
            if (seen is not null)
            {
                firstObserved[seen] = Math.Min(firstObserved.GetValueOrDefault(seen, long.MaxValue), op.ReturnTicks);
            }
        }

        return ops.Select(o =>
            o.Status == OpStatus.Info && o.Kind != OpKind.Read && o.Input is not null && writers[o.Input] == 1
            && firstObserved.TryGetValue(o.Input, out var bound) && bound >= o.CallTicks && bound < o.ReturnTicks
                ? o with { ReturnTicks = bound }
                : o).ToList();
    }

    private sealed class Entry
    {
        public required bool IsCall;
        public required int Index; // local index of the operation within this key's sub-history
        public required long Time;
        public Entry? Match; // call -> its return
        public Entry? Prev;
        public Entry? Next;
    }

    private static Entry BuildList(List<Operation> ops)
    {
        var entries = new List<Entry>(ops.Count * 2);
        for (var i = 0; i < ops.Count; i++)
        {
            var call = new Entry { IsCall = true, Index = i, Time = ops[i].CallTicks };
            var ret = new Entry { IsCall = false, Index = i, Time = ops[i].ReturnTicks };
            call.Match = ret;
            entries.Add(call);
            entries.Add(ret);
        }

        // Sort by time; calls before returns on ties; then by index for determinism.
        entries.Sort((a, b) =>
        {
            var c = a.Time.CompareTo(b.Time);
            if (c != 0)
            {
                return c;
            }

            if (a.IsCall != b.IsCall)
            {
                return a.IsCall ? -1 : 1;
            }

            return a.Index.CompareTo(b.Index);
        });

        var head = new Entry { IsCall = false, Index = -1, Time = long.MinValue };
        var prev = head;
        foreach (var entry in entries)
        {
            prev.Next = entry;
            entry.Prev = prev;
            prev = entry;
        }

        return head;
    }

    /// <summary>Unlinks a call and its matching return from the list.</summary>
    private static void Lift(Entry call)
    {
        call.Prev!.Next = call.Next;
        if (call.Next is not null)
        {
            call.Next.Prev = call.Prev;
        }

        var ret = call.Match!;
        ret.Prev!.Next = ret.Next;
        if (ret.Next is not null)
        {
            ret.Next.Prev = ret.Prev;
        }
    }

    /// <summary>Relinks a call and its matching return (inverse of <see cref="Lift"/>, in reverse order).</summary>
    private static void Unlift(Entry call)
    {
        var ret = call.Match!;
        ret.Prev!.Next = ret;
        if (ret.Next is not null)
        {
            ret.Next.Prev = ret;
        }

        call.Prev!.Next = call;
        if (call.Next is not null)
        {
            call.Next.Prev = call;
        }
    }

    private static KeyResult CheckKey(string key, List<Operation> ops, Stopwatch stopwatch, TimeSpan budget)
    {
        var model = new KeyModel(ops);
        var head = BuildList(ops);
        var linearized = new Fingerprint();
        var memo = new HashSet<UInt128>();
        var stackCalls = new Entry[ops.Count];
        var stackStates = new int[ops.Count];
        var depth = 0;
        var state = KeyModel.Absent;
        // The longest linearized prefix seen; positions below lowWater have not changed since it was copied.
        var longest = new int[ops.Count];
        var longestLength = 0;
        var lowWater = 0;
        var iterations = 0;

        var entry = head.Next;
        while (head.Next is not null)
        {
            if (++iterations % BudgetCheckInterval == 0 && stopwatch.Elapsed > budget)
            {
                return new KeyResult(key, Verdict.Unknown, ops.Count, longest[..longestLength]);
            }

            if (entry!.IsCall)
            {
                var next = model.Step(state, entry.Index);
                if (next != KeyModel.Impossible)
                {
                    linearized.Toggle(entry.Index);
                    if (memo.Add(linearized.With(next)))
                    {
                        stackCalls[depth] = entry;
                        stackStates[depth] = state;
                        depth++;
                        state = next;
                        Lift(entry);
                        if (depth > longestLength)
                        {
                            for (var i = lowWater; i < depth; i++)
                            {
                                longest[i] = ops[stackCalls[i].Index].Id;
                            }

                            longestLength = depth;
                            lowWater = depth;
                        }

                        entry = head.Next;
                        continue;
                    }

                    linearized.Toggle(entry.Index);
                }

                entry = entry.Next;
            }
            else
            {
                if (depth == 0)
                {
                    return new KeyResult(key, Verdict.Invalid, ops.Count, longest[..longestLength]);
                }

                depth--;
                var call = stackCalls[depth];
                state = stackStates[depth];
                lowWater = Math.Min(lowWater, depth);
                linearized.Toggle(call.Index);
                Unlift(call);
                entry = call.Next;
            }
        }

        return new KeyResult(key, Verdict.Valid, ops.Count, []);
    }

    /// <summary>
    /// One key's register model over interned values: state 0 is "absent", every distinct value a small integer,
    /// so states are ints and a step compares integers.
    /// </summary>
    private sealed class KeyModel
    {
        public const int Absent = 0;
        public const int Impossible = -1;
        private readonly OpKind[] kinds;
        private readonly bool[] indeterminate;
        private readonly bool[] casOk;
        private readonly int[] input;
        private readonly int[] expected;
        private readonly int[] output;

        public KeyModel(List<Operation> ops)
        {
            var ids = new Dictionary<string, int>(StringComparer.Ordinal);
            int Intern(string? value)
            {
                if (value is null)
                {
                    return Absent;
                }

                if (!ids.TryGetValue(value, out var id))
                {
                    id = ids.Count + 1;
                    ids.Add(value, id);
                }

                return id;
            }

            kinds = new OpKind[ops.Count];
            indeterminate = new bool[ops.Count];
            casOk = new bool[ops.Count];
            input = new int[ops.Count];
            expected = new int[ops.Count];
            output = new int[ops.Count];
            for (var i = 0; i < ops.Count; i++)
            {
                var op = ops[i];
                kinds[i] = op.Kind;
                indeterminate[i] = op.Status == OpStatus.Info;
                casOk[i] = string.Equals(op.Output, Operation.CasOk, StringComparison.Ordinal);
                input[i] = Intern(op.Input);
                expected[i] = Intern(op.ExpectedOld);
                output[i] = op.Kind == OpKind.Read ? Intern(op.Output) : Absent;
            }
        }

        /// <summary>Applies operation <paramref name="i"/> to <paramref name="state"/>; <see cref="Impossible"/> when its output cannot occur in that state.</summary>
        public int Step(int state, int i)
        {
            switch (kinds[i])
            {
                case OpKind.Read:
                    return state == output[i] ? state : Impossible;
                case OpKind.Write:
                    return input[i];
                case OpKind.Cas:
                    var matches = state == expected[i];
                    if (indeterminate[i])
                    {
                        // Output matches anything: succeeds if it can, otherwise behaves as a failed CAS.
                        // "Never applied" is covered by linearizing it last, which its infinite return allows.
                        return matches ? input[i] : state;
                    }

                    if (casOk[i])
                    {
                        return matches ? input[i] : Impossible;
                    }

                    return matches ? Impossible : state;
                default:
                    return Impossible;
            }
        }
    }

    /// <summary>
    /// 128-bit fingerprint of (linearized set, model state), as TLC keeps its state sets: two independent Zobrist
    /// hashes of the set, kept up to date as operations are linearized and undone, mixed with the state. The memo
    /// holds fingerprints only — 16 bytes per entry instead of a copy of the set. Two different pairs share a
    /// fingerprint with probability about n²/2¹²⁸ for n memo entries (below 10⁻²⁰ for a billion), so a false "seen"
    /// that would prune a path is not a practical concern.
    /// </summary>
    private sealed class Fingerprint
    {
        private ulong a;
        private ulong b;

        /// <summary>Adds operation i to the set, or removes it (xor).</summary>
        public void Toggle(int i)
        {
            a ^= Mix((ulong)i + 1, 0x9E3779B97F4A7C15UL);
            b ^= Mix((ulong)i + 1, 0xC2B2AE3D27D4EB4FUL);
        }

        public UInt128 With(int state) =>
            new(a ^ Mix((ulong)(uint)state + 0x1000_0000_0000UL, 0x165667B19E3779F9UL), b ^ Mix((ulong)(uint)state + 0x1000_0000_0000UL, 0x27D4EB2F165667C5UL));

        /// <summary>SplitMix64 finalizer of x times an odd constant: a fixed pseudo-random 64-bit value per input.</summary>
        private static ulong Mix(ulong x, ulong multiplier)
        {
            var z = x * multiplier;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
