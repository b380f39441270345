using static Chain.Consistency.Tests.Ops;

namespace Chain.Consistency.Tests;

/// <summary>
/// Known-bad histories the checkers must reject and known-good ones they must accept: the harness's self-test.
/// Each bad history names which checker must catch it.
/// </summary>
public class SelfTestHistories
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(5);

    public static TheoryData<string> BadNames => new(Bad.Keys);

    public static TheoryData<string> GoodNames => new(Good.Keys);

    private static readonly Dictionary<string, (string Checker, Operation[] History)> Bad = new()
    {
        ["stale read"] = ("linearizability",
        [
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3),
            Read(3, "k", "b", 4, 5, client: 1),
            Read(4, "k", "a", 6, 7, client: 2), // an old tail answering after the new value was read
        ]),
        ["lost write"] = ("linearizability",
        [
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3), // acknowledged, never seen
            Read(3, "k", "a", 10, 11),
            Read(4, "k", "a", 20, 21),
        ]),
        ["lost write of a fresh key"] = ("linearizability",
        [
            Write(1, "k", "a", 0, 1),
            Read(2, "k", null, 5, 6),
        ]),
        ["duplicate apply"] = ("no-duplicates",
        [
            Write(1, "k", "a", 0, 1),
            Read(2, "k", "a", 2, 3),
            Write(3, "k", "b", 4, 5),
            Read(4, "k", "b", 6, 7),
            Read(5, "k", "a", 8, 9), // the write of a, applied again after b
        ]),
        ["duplicate apply seen through versions"] = ("no-duplicates",
        [
            Write(1, "k", "a", 0, 1) with { Version = 1 },
            Read(2, "k", "a", 2, 3) with { Version = 1 },
            Read(3, "k", "a", 4, 5) with { Version = 2 },
        ]),
        ["read of a never-written value"] = ("linearizability",
        [
            Write(1, "k", "a", 0, 1),
            Read(2, "k", "zzz", 2, 3),
        ]),
        ["info write undone"] = ("linearizability",
        [
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3, OpStatus.Info),
            Read(3, "k", "b", 10, 11),
            Read(4, "k", "a", 20, 21),
        ]),
        ["split brain: two CAS from one value both win"] = ("linearizability",
        [
            Write(1, "k", "a", 0, 1),
            Cas(2, "k", "a", "b", ok: true, 2, 10, client: 1),
            Cas(3, "k", "a", "c", ok: true, 3, 9, client: 2),
        ]),
    };

    private static readonly Dictionary<string, Operation[]> Good = new()
    {
        ["sequential"] =
        [
            Read(1, "k", null, 0, 1),
            Write(2, "k", "a", 2, 3) with { Version = 1 },
            Read(3, "k", "a", 4, 5) with { Version = 1 },
            Cas(4, "k", "a", "b", ok: true, 6, 7) with { Version = 2 },
            Read(5, "k", "b", 8, 9) with { Version = 2 },
        ],
        ["concurrent reads see old then new"] =
        [
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 20),
            Read(3, "k", "a", 3, 4, client: 1),
            Read(4, "k", "b", 5, 6, client: 2),
            Read(5, "k", "b", 7, 8, client: 1),
        ],
        ["info write that took effect late"] =
        [
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3, OpStatus.Info),
            Read(3, "k", "a", 10, 11),
            Read(4, "k", "a", 20, 21),
            Read(5, "k", "b", 30, 31),
            Read(6, "k", "b", 40, 41),
        ],
        ["info write that never took effect"] =
        [
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3, OpStatus.Info),
            Read(3, "k", "a", 10, 11),
            Write(4, "k", "c", 12, 13),
            Read(5, "k", "c", 20, 21),
        ],
        ["info CAS that may have applied"] =
        [
            Write(1, "k", "a", 0, 1),
            Cas(2, "k", "a", "b", ok: false, 2, 3, OpStatus.Info),
            Read(3, "k", "b", 4, 5),
        ],
        ["failed write never seen"] =
        [
            Write(1, "k", "a", 0, 1),
            Write(2, "k", "b", 2, 3, OpStatus.Fail),
            Read(3, "k", "a", 4, 5),
        ],
        ["deduplicated retry keeps its version"] =
        [
            Write(1, "k", "a", 0, 1, OpStatus.Info),
            Write(2, "k", "b", 2, 3) with { Version = 5 },
            Read(3, "k", "b", 4, 5) with { Version = 5 },
            Read(4, "k", "b", 6, 7) with { Version = 5 },
        ],
    };

    [Theory]
    [MemberData(nameof(BadNames))]
    public void KnownBadHistoriesAreRejected(string name)
    {
        var (checker, history) = Bad[name];
        var verdicts = HistoryCheckers.CheckAll(history, Budget);
        var verdict = Assert.Single(verdicts, v => v.Checker == checker);
        Assert.Equal(Verdict.Invalid, verdict.Verdict);
        Assert.Equal("k", verdict.InvalidKey);
        Assert.NotNull(verdict.WitnessIds);
        Assert.Equal(1, CheckerVerdict.ExitCode(verdicts));
    }

    [Theory]
    [MemberData(nameof(GoodNames))]
    public void KnownGoodHistoriesAreAccepted(string name)
    {
        var verdicts = HistoryCheckers.CheckAll(Good[name], Budget);
        Assert.All(verdicts, v => Assert.Equal(Verdict.Valid, v.Verdict));
        Assert.Equal(0, CheckerVerdict.ExitCode(verdicts));
    }

    [Fact]
    public void SetCheckerRejectsALostAcknowledgedInsertAndAcceptsIndeterminateOnes()
    {
        Assert.Equal(Verdict.Invalid, CheckerVerdict.From(SetChecker.Check(["a", "b"], [], ["a"])).Verdict);
        Assert.Equal(Verdict.Invalid, CheckerVerdict.From(SetChecker.Check(["a"], [], ["a", "x"])).Verdict);
        Assert.Equal(Verdict.Valid, CheckerVerdict.From(SetChecker.Check(["a"], ["b", "c"], ["a", "b"])).Verdict);
    }

    [Fact]
    public void UnknownIsReportedAsExitCodeTwo()
    {
        var unknown = new CheckerVerdict("linearizability", Verdict.Unknown, "budget", []);
        var valid = new CheckerVerdict("no-duplicates", Verdict.Valid, "ok", []);
        Assert.Equal(2, CheckerVerdict.ExitCode([valid, unknown]));
        Assert.Equal(0, CheckerVerdict.ExitCode([valid]));
    }
}
