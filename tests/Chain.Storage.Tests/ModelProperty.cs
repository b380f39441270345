using System.Text;
using FsCheck;
using FsCheck.Fluent;

namespace Chain.Storage.Tests;

/// <summary>
/// FsCheck property: random batches of Put/Delete/DeleteRange applied to an engine behave like a SortedDictionary
/// with byte-wise key order, for point reads, bounded iteration in both directions, Seek/SeekForPrev/Prev and
/// through a snapshot taken between batches. Every test case works under its own 4-byte key prefix, so one
/// engine serves all cases.
/// </summary>
internal static class ModelProperty
{
    private static readonly byte[] KeyAlphabet = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF];

    public sealed record Op(KvOpKind Kind, byte[] Key, byte[]? Value)
    {
        public override string ToString() => Kind switch
        {
            KvOpKind.Put => $"Put({TestUtil.Hex(Key)}={TestUtil.Hex(Value)})",
            KvOpKind.Delete => $"Delete({TestUtil.Hex(Key)})",
            _ => $"DeleteRange({TestUtil.Hex(Key)}..{TestUtil.Hex(Value)})",
        };
    }

    public sealed record Scenario(Op[][] Batches, int SnapshotAfter, (byte[]? Lower, byte[]? Upper)[] Ranges, byte[][] Targets)
    {
        public override string ToString()
        {
            var text = new StringBuilder();
            text.Append("batches: ").AppendJoin(" | ", Batches.Select(b => "[" + string.Join(", ", b.Select(o => o.ToString())) + "]"));
            text.Append("; snapshot after ").Append(SnapshotAfter);
            text.Append("; ranges: ").AppendJoin(", ", Ranges.Select(r => $"[{Bound(r.Lower)}, {Bound(r.Upper)})"));
            text.Append("; targets: ").AppendJoin(", ", Targets.Select(t => TestUtil.Hex(t)));
            return text.ToString();
        }

        private static string Bound(byte[]? bound) => bound is null ? "open" : TestUtil.Hex(bound);
    }

    private static Gen<byte[]> KeyGen() =>
        Gen.Choose(0, 3).SelectMany(length => Gen.ArrayOf(Gen.Elements(KeyAlphabet), length));

    private static Gen<byte[]> ValueGen() =>
        Gen.Choose(0, 4).SelectMany(length => Gen.ArrayOf(Gen.Elements<byte>([0x00, 0x42, 0xFF]), length));

    private static Gen<Op> OpGen()
    {
        var put = KeyGen().Zip(ValueGen(), (k, v) => new Op(KvOpKind.Put, k, v));
        var delete = KeyGen().Select(k => new Op(KvOpKind.Delete, k, null));
        var deleteRange = KeyGen().Zip(KeyGen(), (a, b) => new Op(KvOpKind.DeleteRange, a, b));
        return Gen.Frequency([(6, put), (2, delete), (1, deleteRange)]);
    }

    private static Gen<Scenario> ScenarioGen()
    {
        var batch = Gen.Choose(0, 6).SelectMany(n => Gen.ArrayOf(OpGen(), n));
        var batches = Gen.Choose(1, 8).SelectMany(n => Gen.ArrayOf(batch, n));
        var optionalKey = Gen.Frequency([(1, Gen.Constant<byte[]?>(null)), (4, KeyGen().Select(k => (byte[]?)k))]);
        var range = optionalKey.Zip(optionalKey, (lower, upper) => (lower, upper));
        var ranges = Gen.Choose(0, 4).SelectMany(n => Gen.ArrayOf(range, n));
        var targets = Gen.Choose(0, 6).SelectMany(n => Gen.ArrayOf(KeyGen(), n));
        return batches.SelectMany(
            bs => Gen.Choose(0, bs.Length).SelectMany(
                snapshotAfter => ranges.SelectMany(
                    rs => targets.Select(ts => new Scenario(bs, snapshotAfter, rs, ts)))));
    }

    public static void Check(IKvEngine engine, string columnFamily, int maxTest = 100)
    {
        int caseNumber = 0;
        var property = Prop.ForAll(Arb.From(ScenarioGen()), (Scenario scenario) =>
        {
            RunScenario(engine, columnFamily, (uint)Interlocked.Increment(ref caseNumber), scenario);
        });
        FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(maxTest), property);
    }

    private static void RunScenario(IKvEngine engine, string cf, uint caseNumber, Scenario scenario)
    {
        byte[] prefix = KvKeys.EncodeUInt32(caseNumber);
        var model = new SortedDictionary<byte[], byte[]>(KvKeys.Comparer);
        SortedDictionary<byte[], byte[]>? snapshotModel = null;
        IKvSnapshot? snapshot = null;
        var pending = new List<Task>();
        try
        {
            for (int i = 0; i <= scenario.Batches.Length; i++)
            {
                if (i == scenario.SnapshotAfter)
                {
                    Task.WhenAll(pending).GetAwaiter().GetResult();
                    snapshot = engine.Snapshot();
                    snapshotModel = new SortedDictionary<byte[], byte[]>(model, KvKeys.Comparer);
                }

                if (i == scenario.Batches.Length)
                {
                    break;
                }

                var batch = new KvBatch();
                foreach (var op in scenario.Batches[i])
                {
                    Apply(model, op);
                    switch (op.Kind)
                    {
                        case KvOpKind.Put:
                            batch.Put(cf, KvKeys.Concat(prefix, op.Key), op.Value!);
                            break;
                        case KvOpKind.Delete:
                            batch.Delete(cf, KvKeys.Concat(prefix, op.Key));
                            break;
                        default:
                            batch.DeleteRange(cf, KvKeys.Concat(prefix, op.Key), KvKeys.Concat(prefix, op.Value!));
                            break;
                    }
                }

                // Not awaited: batches must still apply in call order.
                pending.Add(engine.WriteAsync(batch).AsTask());
            }

            Task.WhenAll(pending).GetAwaiter().GetResult();

            var probeKeys = scenario.Batches.SelectMany(b => b).SelectMany(o => o.Value is null ? [o.Key] : new[] { o.Key, o.Value })
                .Concat(scenario.Targets)
                .ToList();
            Verify(engine, cf, prefix, model, null, scenario, probeKeys);
            Verify(engine, cf, prefix, snapshotModel!, snapshot, scenario, probeKeys);
        }
        finally
        {
            snapshot?.Dispose();
        }
    }

    private static void Apply(SortedDictionary<byte[], byte[]> model, Op op)
    {
        switch (op.Kind)
        {
            case KvOpKind.Put:
                model[op.Key] = op.Value!;
                break;
            case KvOpKind.Delete:
                model.Remove(op.Key);
                break;
            default:
                foreach (var key in model.Keys.Where(k => InRange(k, op.Key, op.Value)).ToList())
                {
                    model.Remove(key);
                }

                break;
        }
    }

    private static bool InRange(byte[] key, byte[]? lower, byte[]? upper) =>
        (lower is null || KvKeys.Compare(key, lower) >= 0) && (upper is null || KvKeys.Compare(key, upper) < 0);

    private static void Verify(
        IKvEngine engine,
        string cf,
        byte[] prefix,
        SortedDictionary<byte[], byte[]> model,
        IKvSnapshot? snapshot,
        Scenario scenario,
        List<byte[]> probeKeys)
    {
        string view = snapshot is null ? "current" : "snapshot";
        byte[] prefixEnd = KvKeys.PrefixUpperBound(prefix)!;
        var expected = model.Select(e => Entry(e.Key, e.Value)).ToList();

        // Whole prefix, both directions.
        AssertSame(expected, Strip(prefix, TestUtil.ReadAll(engine, cf, prefix, prefixEnd, snapshot)), $"{view} forward");
        AssertSame(Enumerable.Reverse(expected).ToList(), Strip(prefix, TestUtil.ReadAllReverse(engine, cf, prefix, prefixEnd, snapshot)), $"{view} backward");

        // Point reads.
        foreach (var key in probeKeys)
        {
            var actual = engine.Get(cf, KvKeys.Concat(prefix, key), snapshot);
            model.TryGetValue(key, out var wanted);
            if (!Equal(wanted, actual))
            {
                throw new InvalidOperationException($"{view} Get({TestUtil.Hex(key)}) = {Show(actual)}, model {Show(wanted)}");
            }
        }

        // Bounded ranges (inside the case prefix).
        foreach (var (lower, upper) in scenario.Ranges)
        {
            var engineLower = lower is null ? prefix : KvKeys.Concat(prefix, lower);
            var engineUpper = upper is null ? prefixEnd : KvKeys.Concat(prefix, upper);
            var inRange = model.Where(e => InRange(e.Key, lower, upper)).Select(e => Entry(e.Key, e.Value)).ToList();
            string label = $"{view} range [{Show(lower)}, {Show(upper)})";
            AssertSame(inRange, Strip(prefix, TestUtil.ReadAll(engine, cf, engineLower, engineUpper, snapshot)), label + " forward");
            AssertSame(Enumerable.Reverse(inRange).ToList(), Strip(prefix, TestUtil.ReadAllReverse(engine, cf, engineLower, engineUpper, snapshot)), label + " backward");
        }

        // Seek / SeekForPrev / direction changes.
        var keys = model.Keys.ToList();
        using var it = engine.Iterate(cf, prefix, prefixEnd, snapshot);
        foreach (var target in scenario.Targets)
        {
            int atOrAfter = keys.FindIndex(k => KvKeys.Compare(k, target) >= 0);
            it.Seek(KvKeys.Concat(prefix, target));
            ExpectPosition(it, prefix, atOrAfter < 0 ? null : keys[atOrAfter], $"{view} Seek({TestUtil.Hex(target)})");
            if (atOrAfter >= 0)
            {
                it.Prev();
                ExpectPosition(it, prefix, atOrAfter > 0 ? keys[atOrAfter - 1] : null, $"{view} Seek({TestUtil.Hex(target)}).Prev");
            }

            int atOrBefore = keys.FindLastIndex(k => KvKeys.Compare(k, target) <= 0);
            it.SeekForPrev(KvKeys.Concat(prefix, target));
            ExpectPosition(it, prefix, atOrBefore < 0 ? null : keys[atOrBefore], $"{view} SeekForPrev({TestUtil.Hex(target)})");
            if (atOrBefore >= 0)
            {
                it.Next();
                ExpectPosition(it, prefix, atOrBefore + 1 < keys.Count ? keys[atOrBefore + 1] : null, $"{view} SeekForPrev({TestUtil.Hex(target)}).Next");
            }
        }
    }

    private static void ExpectPosition(IKvIterator it, byte[] prefix, byte[]? expectedKey, string label)
    {
        if (expectedKey is null)
        {
            if (it.Valid)
            {
                throw new InvalidOperationException($"{label}: expected invalid, at {TestUtil.Hex(it.Key)}");
            }

            return;
        }

        if (!it.Valid)
        {
            throw new InvalidOperationException($"{label}: expected {TestUtil.Hex(expectedKey)}, iterator invalid");
        }

        var actual = it.Key.ToArray();
        if (!actual.AsSpan().SequenceEqual(KvKeys.Concat(prefix, expectedKey)))
        {
            throw new InvalidOperationException($"{label}: expected {TestUtil.Hex(expectedKey)}, at {TestUtil.Hex(actual)}");
        }
    }

    private static string Entry(byte[] key, byte[] value) => TestUtil.Hex(key) + "=" + TestUtil.Hex(value);

    private static List<string> Strip(byte[] prefix, List<(byte[] Key, byte[] Value)> entries) =>
        entries.Select(e =>
        {
            if (!e.Key.AsSpan().StartsWith(prefix))
            {
                throw new InvalidOperationException($"Key {TestUtil.Hex(e.Key)} outside the case prefix {TestUtil.Hex(prefix)}");
            }

            return Entry(e.Key[prefix.Length..], e.Value);
        }).ToList();

    private static void AssertSame(List<string> expected, List<string> actual, string label)
    {
        if (!expected.SequenceEqual(actual))
        {
            throw new InvalidOperationException($"{label}: expected [{string.Join(", ", expected)}] but was [{string.Join(", ", actual)}]");
        }
    }

    private static bool Equal(byte[]? a, byte[]? b) => a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);

    private static string Show(byte[]? bytes) => bytes is null ? "null" : TestUtil.Hex(bytes);
}
