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
            results[pair.Key] = CheckKey(pair.Key, DropUnobservedInfoWrites(pair.Value), stopwatch, budget));

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
        var linearized = new Bitset(ops.Count);
        var memo = new HashSet<MemoKey>();
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
                    linearized.Set(entry.Index);
                    // Probe with the live bitset; copy it only when the pair is new.
                    if (!memo.Contains(new MemoKey(linearized.Words, next, linearized.Hash)))
                    {
                        memo.Add(new MemoKey(linearized.Snapshot(), next, linearized.Hash));
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

                    linearized.Clear(entry.Index);
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
                linearized.Clear(call.Index);
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

    /// <summary>Mutable bitset used during the search, with an incrementally maintained Zobrist hash; snapshots are immutable copies for the memo.</summary>
    private sealed class Bitset(int size)
    {
        public ulong[] Words { get; } = new ulong[(size + 63) / 64];

        public ulong Hash { get; private set; }

        public void Set(int i)
        {
            Words[i >> 6] |= 1UL << (i & 63);
            Hash ^= Zobrist(i);
        }

        public void Clear(int i)
        {
            Words[i >> 6] &= ~(1UL << (i & 63));
            Hash ^= Zobrist(i);
        }

        public ulong[] Snapshot() => (ulong[])Words.Clone();

        /// <summary>A fixed pseudo-random 64-bit value per index (SplitMix64 finalizer).</summary>
        private static ulong Zobrist(int i)
        {
            var z = (ulong)(i + 1) * 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>(linearized set, model state) pair with value equality. A stored word array is never mutated.</summary>
    private readonly struct MemoKey(ulong[] words, int state, ulong setHash) : IEquatable<MemoKey>
    {
        private readonly ulong[] words = words;
        private readonly int state = state;
        private readonly ulong hash = setHash ^ ((ulong)(uint)state * 0xD6E8FEB86659FD93UL);

        public bool Equals(MemoKey other) =>
            hash == other.hash && state == other.state && words.AsSpan().SequenceEqual(other.words);

        public override bool Equals(object? obj) => obj is MemoKey other && Equals(other);

        public override int GetHashCode() => (int)(hash ^ (hash >> 32));
    }
}
