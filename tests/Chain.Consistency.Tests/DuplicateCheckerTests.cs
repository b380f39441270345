using static Chain.Consistency.Tests.Ops;

namespace Chain.Consistency.Tests;

public class DuplicateCheckerTests
{
    private static DuplicateCheckResult Dup(params Operation[] history) => DuplicateChecker.Check(history);

    [Fact]
    public void EmptyAndSequentialHistoriesAreValid()
    {
        Assert.Equal(Verdict.Valid, Dup().Verdict);
        var result = Dup(
            Write(1, "k", "a", 0, 1),
            Read(2, "k", "a", 2, 3),
            Write(3, "k", "b", 4, 5),
            Read(4, "k", "b", 6, 7),
            Read(5, "k", "b", 8, 9));
        Assert.True(result.Valid);
        Assert.Empty(result.RepeatedInputs);
    }

    [Fact]
    public void ValueReappearingAfterBeingOverwrittenIsADuplicate()
    {
        var result = Dup(
            Write(1, "k", "a", 0, 1),
            Read(2, "k", "a", 2, 3),
            Write(3, "k", "b", 4, 5),
            Read(4, "k", "b", 6, 7),
            Read(5, "k", "a", 8, 9));
        Assert.Equal(Verdict.Invalid, result.Verdict);
        var violation = Assert.Single(result.Violations);
        Assert.Equal(DuplicateKind.ReappearedValue, violation.Kind);
        Assert.Equal("k", violation.Key);
        Assert.Equal("a", violation.Value);
        Assert.Equal([2, 4, 5], violation.OperationIds);
    }

    [Fact]
    public void OverlappingReadsAreNotEvidence()
    {
        // The read of b overlaps the first read of a: the register may have gone a, b — or the reads may be
        // ordered b, a, a. Both are single applications.
        Assert.True(Dup(
            Read(1, "k", "a", 0, 10),
            Read(2, "k", "b", 5, 12),
            Read(3, "k", "a", 11, 13)).Valid);
        // The read of b overlaps the last read of a.
        Assert.True(Dup(
            Read(1, "k", "a", 0, 1),
            Read(2, "k", "b", 2, 10),
            Read(3, "k", "a", 9, 13)).Valid);
        // Touching endpoints (return == next call) do not order operations either.
        Assert.True(Dup(
            Read(1, "k", "a", 0, 2),
            Read(2, "k", "b", 2, 4),
            Read(3, "k", "a", 4, 6)).Valid);
    }

    [Fact]
    public void ReadsOfAbsentAndFailedOrInfoReadsAreNotEvidence()
    {
        Assert.True(Dup(
            Read(1, "k", "a", 0, 1),
            Read(2, "k", null, 2, 3),
            Read(3, "k", "a", 4, 5)).Valid);
        Assert.True(Dup(
            Read(1, "k", "a", 0, 1),
            Read(2, "k", "b", 2, 3, OpStatus.Info),
            Read(3, "k", "a", 4, 5)).Valid);
        Assert.True(Dup(
            Read(1, "k", "a", 0, 1),
            Read(2, "k", "b", 2, 3),
            Read(3, "k", "a", 4, 5, OpStatus.Fail)).Valid);
    }

    [Fact]
    public void KeysAreSeparate()
    {
        Assert.True(Dup(
            Read(1, "x", "a", 0, 1),
            Read(2, "y", "b", 2, 3),
            Read(3, "x", "a", 4, 5)).Valid);
    }

    [Fact]
    public void FindsTheReappearanceAmongManyInterleavedReads()
    {
        // A long run of reads where only one triple proves the repeat; the others overlap or repeat the same value.
        var history = new List<Operation>();
        var id = 0;
        for (var i = 0; i < 200; i++)
        {
            history.Add(Read(id++, "k", $"v{i / 10}", i * 10, i * 10 + 15)); // overlapping neighbours, values in runs
        }

        Assert.True(DuplicateChecker.Check(history).Valid);
        history.Add(Read(id, "k", "v3", 5_000, 5_001));
        var result = DuplicateChecker.Check(history);
        var violation = Assert.Single(result.Violations);
        Assert.Equal("v3", violation.Value);
        Assert.Equal(id, violation.OperationIds[^1]);
    }

    [Fact]
    public void OneValueWithTwoVersionsWasAppliedTwice()
    {
        // Only versions prove it: the register never visibly went back.
        var result = Dup(
            Write(1, "k", "a", 0, 1) with { Version = 3 },
            Read(2, "k", "a", 2, 3) with { Version = 3 },
            Read(3, "k", "a", 4, 5) with { Version = 9 });
        var violation = Assert.Single(result.Violations);
        Assert.Equal(DuplicateKind.ValueWithTwoVersions, violation.Kind);
        Assert.Equal([1, 3], violation.OperationIds);
        // The linearizability checker has no way to see this.
        Assert.Equal(Verdict.Valid, LinearizabilityChecker.Check(
            [Write(1, "k", "a", 0, 1), Read(2, "k", "a", 2, 3), Read(3, "k", "a", 4, 5)], TimeSpan.FromSeconds(5)).Verdict);
    }

    [Fact]
    public void ReadsOfAnInfoWriteWithTwoVersionsAreADuplicate()
    {
        var result = Dup(
            Write(1, "k", "a", 0, 1, OpStatus.Info),
            Read(2, "k", "a", 2, 3) with { Version = 4 },
            Read(3, "k", "a", 4, 5) with { Version = 5 });
        Assert.Equal(DuplicateKind.ValueWithTwoVersions, Assert.Single(result.Violations).Kind);
    }

    [Fact]
    public void TwoWritesAcknowledgedWithOneVersionAreReported()
    {
        var result = Dup(
            Write(1, "k", "a", 0, 10) with { Version = 7 },
            Write(2, "k", "b", 1, 11) with { Version = 7 });
        var violation = Assert.Single(result.Violations);
        Assert.Equal(DuplicateKind.SharedVersion, violation.Kind);
        Assert.Equal([1, 2], violation.OperationIds);
    }

    [Fact]
    public void ConsistentVersionsAreValid()
    {
        Assert.True(Dup(
            Write(1, "k", "a", 0, 1) with { Version = 1 },
            Read(2, "k", "a", 2, 3) with { Version = 1 },
            Cas(3, "k", "a", "b", ok: true, 4, 5) with { Version = 2 },
            Cas(4, "k", "a", "c", ok: false, 6, 7) with { Version = 2 },
            Read(5, "k", "b", 8, 9) with { Version = 2 }).Valid);
    }

    [Fact]
    public void ValuesWrittenTwiceBreakThePremiseAndAreIgnored()
    {
        var result = Dup(
            Write(1, "k", "a", 0, 1),
            Read(2, "k", "a", 2, 3),
            Write(3, "k", "b", 4, 5),
            Read(4, "k", "b", 6, 7),
            Write(5, "k", "a", 8, 9),
            Read(6, "k", "a", 10, 11));
        Assert.Empty(result.Violations);
        Assert.Equal(["k=a"], result.RepeatedInputs);
        Assert.Equal(Verdict.Unknown, result.Verdict);
    }

    [Fact]
    public void GeneratedLinearizableHistoriesHaveNoDuplicates()
    {
        foreach (var seed in new[] { 1, 2, 3 })
        {
            var history = HistoryGenerator.Generate(new GeneratorOptions { Operations = 5_000, Keys = 20, Seed = seed });
            var result = DuplicateChecker.Check(history);
            Assert.True(result.Valid, string.Join("\n", result.Violations.Select(v => v.Description)));
        }
    }

    [Fact]
    public void ReplayingAnOldWriteInAGeneratedHistoryIsCaught()
    {
        // Take a generated history; after everything, a read sees a value that was overwritten long ago.
        var history = HistoryGenerator.Generate(new GeneratorOptions { Operations = 2_000, Keys = 5, Seed = 9 });
        var key = history.GroupBy(o => o.Key).OrderByDescending(g => g.Count()).First().Key;
        var seen = history.Where(o => o.Key == key && o.Kind == OpKind.Read && o.Status == OpStatus.Ok && o.Output is not null)
            .OrderBy(o => o.CallTicks).ToList();
        var old = seen.First();
        var end = history.Max(o => o.ReturnTicks);
        history.Add(Read(100_000, key, old.Output, end + 1, end + 2));

        var result = DuplicateChecker.Check(history);
        var violation = Assert.Single(result.Violations);
        Assert.Equal(DuplicateKind.ReappearedValue, violation.Kind);
        Assert.Equal(old.Output, violation.Value);
    }
}
