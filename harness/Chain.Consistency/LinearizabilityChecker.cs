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

/// <summary>Register model state: the current value of one key (null = absent). Immutable, value equality.</summary>
public sealed record RegisterState(string? Value);

/// <summary>
/// Wing–Gong linearizability search with Lowe's memoization, partitioned by key (as in Porcupine).
/// </summary>
public static class LinearizabilityChecker
{
    private const int BudgetCheckInterval = 64;

    public static CheckResult Check(IReadOnlyList<Operation> history, TimeSpan budget)
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
            results[pair.Key] = CheckKey(pair.Key, pair.Value, stopwatch, budget));

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

    /// <summary>Applies <paramref name="op"/> to <paramref name="state"/>; returns null when the op's output is impossible in that state.</summary>
    private static RegisterState? Step(RegisterState state, Operation op)
    {
        var indeterminate = op.Status == OpStatus.Info;
        switch (op.Kind)
        {
            case OpKind.Read:
                return string.Equals(state.Value, op.Output, StringComparison.Ordinal) ? state : null;
            case OpKind.Write:
                return new RegisterState(op.Input);
            case OpKind.Cas:
                var matches = string.Equals(state.Value, op.ExpectedOld, StringComparison.Ordinal);
                if (indeterminate)
                {
                    // Output matches anything: succeeds if it can, otherwise behaves as a failed CAS.
                    // "Never applied" is covered by linearizing it last, which its infinite return allows.
                    return matches ? new RegisterState(op.Input) : state;
                }

                if (string.Equals(op.Output, Operation.CasOk, StringComparison.Ordinal))
                {
                    return matches ? new RegisterState(op.Input) : null;
                }

                return matches ? null : state;
            default:
                return null;
        }
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
        var head = BuildList(ops);
        var linearized = new Bitset(ops.Count);
        var memo = new HashSet<MemoKey>();
        var stack = new Stack<(Entry Call, RegisterState State)>();
        var state = new RegisterState(null);
        var longest = Array.Empty<int>();
        var iterations = 0;

        var entry = head.Next;
        while (head.Next is not null)
        {
            if (++iterations % BudgetCheckInterval == 0 && stopwatch.Elapsed > budget)
            {
                return new KeyResult(key, Verdict.Unknown, ops.Count, longest);
            }

            if (entry!.IsCall)
            {
                var next = Step(state, ops[entry.Index]);
                if (next is not null)
                {
                    linearized.Set(entry.Index);
                    if (memo.Add(new MemoKey(linearized.Snapshot(), next)))
                    {
                        stack.Push((entry, state));
                        state = next;
                        Lift(entry);
                        if (stack.Count > longest.Length)
                        {
                            longest = Witness(stack, ops);
                        }

                        entry = head.Next;
                        continue;
                    }

                    linearized.Clear(entry.Index);
                }

                entry = entry.Next;
            }
            else
            {
                if (stack.Count == 0)
                {
                    return new KeyResult(key, Verdict.Invalid, ops.Count, longest);
                }

                var (call, previous) = stack.Pop();
                state = previous;
                linearized.Clear(call.Index);
                Unlift(call);
                entry = call.Next;
            }
        }

        return new KeyResult(key, Verdict.Valid, ops.Count, []);
    }

    private static int[] Witness(Stack<(Entry Call, RegisterState State)> stack, List<Operation> ops)
    {
        var ids = new int[stack.Count];
        var i = ids.Length;
        foreach (var (call, _) in stack) // enumerates top first
        {
            ids[--i] = ops[call.Index].Id;
        }

        return ids;
    }

    /// <summary>Mutable bitset used during the search; snapshots are immutable copies for the memo.</summary>
    private sealed class Bitset(int size)
    {
        private readonly ulong[] words = new ulong[(size + 63) / 64];

        public void Set(int i) => words[i >> 6] |= 1UL << (i & 63);

        public void Clear(int i) => words[i >> 6] &= ~(1UL << (i & 63));

        public ulong[] Snapshot() => (ulong[])words.Clone();
    }

    /// <summary>(linearized set, model state) pair with value equality. The word array is never mutated after creation.</summary>
    private readonly struct MemoKey : IEquatable<MemoKey>
    {
        private readonly ulong[] words;
        private readonly RegisterState state;
        private readonly int hash;

        public MemoKey(ulong[] words, RegisterState state)
        {
            this.words = words;
            this.state = state;
            var h = new HashCode();
            foreach (var w in words)
            {
                h.Add(w);
            }

            h.Add(state);
            hash = h.ToHashCode();
        }

        public bool Equals(MemoKey other) =>
            hash == other.hash && state.Equals(other.state) && words.AsSpan().SequenceEqual(other.words);

        public override bool Equals(object? obj) => obj is MemoKey other && Equals(other);

        public override int GetHashCode() => hash;
    }
}
