using static Chain.Consistency.Tests.Ops;

namespace Chain.Consistency.Tests;

public class LinearizabilityCheckerTests
{
    [Fact]
    public void EmptyHistoryIsValid()
    {
        var result = Check();
        Assert.Equal(Verdict.Valid, result.Verdict);
        Assert.Empty(result.Keys);
    }

    [Fact]
    public void SequentialHistoryIsValid()
    {
        var result = Check(
            Read(1, "k", null, 0, 1),
            Write(2, "k", "a", 2, 3),
            Read(3, "k", "a", 4, 5),
            Write(4, "k", "b", 6, 7),
            Read(5, "k", "b", 8, 9));
        Assert.Equal(Verdict.Valid, result.Verdict);
        Assert.Null(result.InvalidKey);
        Assert.Equal(Verdict.Valid, result.Keys["k"].Verdict);
        Assert.Equal(5, result.Keys["k"].OperationCount);
    }

    [Theory]
    [InlineData("a")]
    [InlineData("b")]
    public void ConcurrentWritesEitherOrderIsValid(string seen)
    {
        var result = Check(
            Write(1, "k", "a", 0, 10, client: 1),
            Write(2, "k", "b", 1, 9, client: 2),
            Read(3, "k", seen, 11, 12, client: 3));
        Assert.Equal(Verdict.Valid, result.Verdict);
    }

    [Fact]
    public void ReadConcurrentWithWriteMaySeeOldOrNew()
    {
        Assert.Equal(Verdict.Valid, Check(Write(1, "k", "a", 0, 10), Read(2, "k", null, 1, 2)).Verdict);
        Assert.Equal(Verdict.Valid, Check(Write(1, "k", "a", 0, 10), Read(2, "k", "a", 1, 2)).Verdict);
    }

    [Fact]
    public void StaleReadAfterCompletedWriteIsInvalid()
    {
        var result = Check(
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3),
            Read(3, "k", "a", 4, 5));
        Assert.Equal(Verdict.Invalid, result.Verdict);
        Assert.Equal("k", result.InvalidKey);
        Assert.Equal([1, 2], result.Witness);
        Assert.Equal([1, 2], result.Keys["k"].Witness);
    }

    [Fact]
    public void ReadNotSeeingEarlierCompletedWriteIsInvalid()
    {
        var result = Check(Write(1, "k", "a", 0, 1), Read(2, "k", null, 2, 3));
        Assert.Equal(Verdict.Invalid, result.Verdict);
        Assert.Equal([1], result.Witness);
    }

    [Fact]
    public void FailedOperationsAreDropped()
    {
        var result = Check(
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3, OpStatus.Fail),
            Read(3, "k", "a", 4, 5));
        Assert.Equal(Verdict.Valid, result.Verdict);
        Assert.Equal(2, result.Keys["k"].OperationCount);
    }

    [Fact]
    public void InfoWriteReadLaterIsValid()
    {
        var result = Check(
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3, OpStatus.Info),
            Read(3, "k", "a", 10, 11),
            Read(4, "k", "b", 20, 21),
            Read(5, "k", "b", 30, 31));
        Assert.Equal(Verdict.Valid, result.Verdict);
    }

    [Fact]
    public void InfoWriteNeverSeenIsValid()
    {
        var result = Check(
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3, OpStatus.Info),
            Read(3, "k", "a", 10, 11),
            Read(4, "k", "a", 20, 21));
        Assert.Equal(Verdict.Valid, result.Verdict);
    }

    [Fact]
    public void InfoWriteCannotBeUndone()
    {
        // Once the info write has been observed, a later read of the old value is stale.
        var result = Check(
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3, OpStatus.Info),
            Read(3, "k", "b", 10, 11),
            Read(4, "k", "a", 20, 21));
        Assert.Equal(Verdict.Invalid, result.Verdict);
    }

    [Fact]
    public void InfoWriteCannotTakeEffectBeforeItsCall()
    {
        var result = Check(
            Read(1, "k", "b", 0, 1),
            Write(2, "k", "b", 2, 3, OpStatus.Info));
        Assert.Equal(Verdict.Invalid, result.Verdict);
    }

    [Fact]
    public void InfoReadIsDropped()
    {
        var result = Check(
            Write(1, "k", "a", 0, 1),
            Read(2, "k", "zzz", 2, 3, OpStatus.Info));
        Assert.Equal(Verdict.Valid, result.Verdict);
        Assert.Equal(1, result.Keys["k"].OperationCount);
    }

    [Fact]
    public void CasSuccessAndFailureAreValid()
    {
        var result = Check(
            Write(1, "k", "a", 0, 1),
            Cas(2, "k", "a", "b", ok: true, 2, 3),
            Cas(3, "k", "a", "c", ok: false, 4, 5),
            Read(4, "k", "b", 6, 7),
            Cas(5, "k", null, "x", ok: false, 8, 9));
        Assert.Equal(Verdict.Valid, result.Verdict);
    }

    [Fact]
    public void CasOnAbsentKeySucceeds()
    {
        var result = Check(Cas(1, "k", null, "a", ok: true, 0, 1), Read(2, "k", "a", 2, 3));
        Assert.Equal(Verdict.Valid, result.Verdict);
    }

    [Fact]
    public void CasSucceedingAlthoughValueDifferedIsInvalid()
    {
        var result = Check(
            Write(1, "k", "a", 0, 1),
            Cas(2, "k", "z", "b", ok: true, 2, 3));
        Assert.Equal(Verdict.Invalid, result.Verdict);
        Assert.Equal("k", result.InvalidKey);
        Assert.Equal([1], result.Witness);
    }

    [Fact]
    public void CasFailingAlthoughValueMatchedIsInvalid()
    {
        var result = Check(
            Write(1, "k", "a", 0, 1),
            Cas(2, "k", "a", "b", ok: false, 2, 3));
        Assert.Equal(Verdict.Invalid, result.Verdict);
    }

    [Fact]
    public void ConcurrentCasesOnlyOneMayWin()
    {
        var bothWin = Check(
            Write(1, "k", "a", 0, 1),
            Cas(2, "k", "a", "b", ok: true, 2, 10, client: 1),
            Cas(3, "k", "a", "c", ok: true, 3, 9, client: 2));
        Assert.Equal(Verdict.Invalid, bothWin.Verdict);

        var oneWins = Check(
            Write(1, "k", "a", 0, 1),
            Cas(2, "k", "a", "b", ok: false, 2, 10, client: 1),
            Cas(3, "k", "a", "c", ok: true, 3, 9, client: 2),
            Read(4, "k", "c", 11, 12));
        Assert.Equal(Verdict.Valid, oneWins.Verdict);
    }

    [Fact]
    public void InfoCasMayOrMayNotApply()
    {
        Assert.Equal(Verdict.Valid, Check(
            Write(1, "k", "a", 0, 1),
            Cas(2, "k", "a", "b", ok: false, 2, 3, OpStatus.Info),
            Read(3, "k", "b", 4, 5)).Verdict);
        Assert.Equal(Verdict.Valid, Check(
            Write(1, "k", "a", 0, 1),
            Cas(2, "k", "a", "b", ok: true, 2, 3, OpStatus.Info),
            Read(3, "k", "a", 4, 5)).Verdict);
        Assert.Equal(Verdict.Invalid, Check(
            Write(1, "k", "x", 0, 1),
            Cas(2, "k", "a", "b", ok: true, 2, 3, OpStatus.Info),
            Read(3, "k", "b", 4, 5)).Verdict);
    }

    [Fact]
    public void OneInvalidKeyMakesVerdictInvalidNamingThatKey()
    {
        var result = Check(
            Write(1, "good", "a", 0, 1),
            Read(2, "good", "a", 2, 3),
            Write(3, "bad", "x", 0, 1),
            Write(4, "bad", "y", 2, 3),
            Read(5, "bad", "x", 4, 5),
            Write(6, "other", "q", 0, 10),
            Read(7, "other", null, 1, 2));
        Assert.Equal(Verdict.Invalid, result.Verdict);
        Assert.Equal("bad", result.InvalidKey);
        Assert.Equal([3, 4], result.Witness);
        Assert.Equal(Verdict.Valid, result.Keys["good"].Verdict);
        Assert.Equal(Verdict.Valid, result.Keys["other"].Verdict);
        Assert.Equal(Verdict.Invalid, result.Keys["bad"].Verdict);
    }

    [Fact]
    public void KeysAreIndependent()
    {
        // The same values on different keys never interfere.
        var result = Check(
            Write(1, "a", "v", 0, 1),
            Read(2, "b", null, 2, 3),
            Read(3, "a", "v", 4, 5));
        Assert.Equal(Verdict.Valid, result.Verdict);
    }

    [Fact]
    public void TinyBudgetOnPathologicalHistoryYieldsUnknown()
    {
        const int writers = 40;
        var history = new List<Operation>();
        for (var i = 0; i < writers; i++)
        {
            history.Add(Write(i, "k", $"v{i}", i, 1_000 + i, client: i));
        }

        history.Add(Read(writers, "k", "never-written", 2_000, 2_001, client: writers));

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        var result = LinearizabilityChecker.Check(history, TimeSpan.FromMilliseconds(1));
        stopwatch.Stop();

        Assert.Equal(Verdict.Unknown, result.Verdict);
        Assert.Equal(Verdict.Unknown, result.Keys["k"].Verdict);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2), $"took {stopwatch.Elapsed}");
    }

    [Fact]
    public void ManyConcurrentWritesWithAGenerousBudgetAreChecked()
    {
        var history = new List<Operation>();
        for (var i = 0; i < 12; i++)
        {
            history.Add(Write(i, "k", $"v{i}", i, 100 + i, client: i));
        }

        history.Add(Read(12, "k", "v5", 200, 201));
        Assert.Equal(Verdict.Valid, LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(5)).Verdict);
    }
}

public class UnobservedInfoWriteTests
{
    [Fact]
    public void ManyUnobservedInfoWritesDoNotMultiplyTheSearch()
    {
        // 30 timed-out writes nobody ever read, then a read of a value nobody wrote. Taking every subset of the
        // info writes into account would take 2^30 steps; they cannot change the verdict and are set aside.
        var history = new List<Operation> { Ops.Write(0, "k", "a", 0, 1) };
        for (var i = 1; i <= 30; i++)
        {
            history.Add(Ops.Write(i, "k", $"lost{i}", 1 + i, 2 + i, OpStatus.Info, client: i));
        }

        history.Add(Ops.Read(100, "k", "a", 100, 101));
        history.Add(Ops.Read(101, "k", "zzz", 200, 201));

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        var result = LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(10));
        Assert.Equal(Verdict.Invalid, result.Verdict);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5), $"took {stopwatch.Elapsed}");
        Assert.Equal([0, 100], result.Witness);
    }

    [Fact]
    public void AnObservedInfoWriteIsKept()
    {
        var history = new[]
        {
            Ops.Write(1, "k", "a", 0, 1),
            Ops.Write(2, "k", "b", 2, 3, OpStatus.Info),
            Ops.Read(3, "k", "b", 10, 11),
            Ops.Read(4, "k", "a", 20, 21),
        };
        Assert.Equal(Verdict.Invalid, LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(5)).Verdict);
    }

    [Fact]
    public void AnUnobservedInfoWriteExplainingAFailedCasIsKept()
    {
        // The CAS from a failed: only the (never read) info write of b can explain it. Dropping b would be wrong.
        var history = new[]
        {
            Ops.Write(1, "k", "a", 0, 1),
            Ops.Write(2, "k", "b", 2, 3, OpStatus.Info),
            Ops.Cas(3, "k", "a", "c", ok: false, 10, 11),
        };
        Assert.Equal(Verdict.Valid, LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(5)).Verdict);
    }

    [Fact]
    public void AnUnobservedInfoDeleteIsKept()
    {
        // A null write (absent) is observed by reads of absent.
        var history = new[]
        {
            Ops.Write(1, "k", "a", 0, 1),
            Ops.Write(2, "k", null, 2, 3, OpStatus.Info),
            Ops.Read(3, "k", null, 10, 11),
        };
        Assert.Equal(Verdict.Valid, LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(5)).Verdict);
    }
}

public class ObservedInfoWriteTests
{
    private static Verdict V(params Operation[] history) => LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(5)).Verdict;

    [Fact]
    public void AnInfoWriteMayStillTakeEffectAfterReadsOfTheOldValueUntilItIsSeen()
    {
        Assert.Equal(Verdict.Valid, V(
            Ops.Write(1, "k", "a", 0, 1),
            Ops.Write(2, "k", "b", 2, 3, OpStatus.Info),
            Ops.Read(3, "k", "a", 10, 11),
            Ops.Read(4, "k", "b", 20, 21),
            Ops.Write(5, "k", "c", 30, 31),
            Ops.Read(6, "k", "c", 40, 41)));
    }

    [Fact]
    public void AnInfoWriteSeenOnceCannotBeOvertakenByALaterWrite()
    {
        // b was seen at 20-21, so it took effect before 21; c was written after that and must win.
        Assert.Equal(Verdict.Invalid, V(
            Ops.Write(1, "k", "a", 0, 1),
            Ops.Write(2, "k", "b", 2, 3, OpStatus.Info),
            Ops.Read(3, "k", "b", 20, 21),
            Ops.Write(4, "k", "c", 30, 31),
            Ops.Read(5, "k", "b", 40, 41)));
    }

    [Fact]
    public void AValueWrittenTwiceIsNotBoundedByItsFirstObserver()
    {
        // Two info writes of b, both called before b was first seen: either explains that read, and the other
        // may take effect after c and explain the late read of b.
        Assert.Equal(Verdict.Valid, V(
            Ops.Write(1, "k", "b", 0, 1, OpStatus.Info, client: 1),
            Ops.Write(2, "k", "b", 2, 3, OpStatus.Info, client: 2),
            Ops.Read(3, "k", "b", 5, 6),
            Ops.Write(4, "k", "c", 10, 11),
            Ops.Read(5, "k", "b", 40, 41)));
    }

    [Fact]
    public void AnInfoCasSeenByAReadWasApplied()
    {
        Assert.Equal(Verdict.Valid, V(
            Ops.Write(1, "k", "a", 0, 1),
            Ops.Cas(2, "k", "a", "b", ok: false, 2, 3, OpStatus.Info),
            Ops.Read(3, "k", "b", 10, 11)));
        Assert.Equal(Verdict.Invalid, V(
            Ops.Write(1, "k", "x", 0, 1),
            Ops.Cas(2, "k", "a", "b", ok: false, 2, 3, OpStatus.Info),
            Ops.Read(3, "k", "b", 10, 11)));
    }
}
