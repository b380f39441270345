using Chain.Client;
using Chain.Consistency;

namespace Chain.Jepsen.Tests;

/// <summary>Recorded histories, good and bad, through the checkers and the exit-code mapping the runner uses.</summary>
public sealed class HistoryChecksTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(10);

    private static Operation Op(int id, OpKind kind, string? input, string? output, long call, long ret,
        OpStatus status = OpStatus.Ok, string key = "k0g0", string? expected = null) =>
        new(id, key, id % 3, kind, input, expected, output, call, ret, status);

    [Fact]
    public void A_stale_read_after_an_acknowledged_write_is_invalid_and_exits_1()
    {
        Operation[] history =
        {
            Op(0, OpKind.Write, "v1", null, 0, 10),
            Op(1, OpKind.Write, "v2", null, 20, 30),
            Op(2, OpKind.Read, null, "v1", 40, 50), // v2 was acknowledged before this read began
        };
        CheckReport report = HistoryChecks.Check(Workload.Register, history, Budget);
        Assert.Equal(Verdict.Invalid, report.Verdict);
        Assert.Equal(1, HistoryChecks.ExitCode(report.Verdict));
        Assert.Contains(report.Problems, p => p.Contains("k0g0", StringComparison.Ordinal));
    }

    [Fact]
    public void A_recorded_bad_history_file_is_invalid()
    {
        string path = Path.Combine(Path.GetTempPath(), $"bad-history-{Guid.NewGuid():N}.jsonl");
        try
        {
            History.Save(path, new[]
            {
                Op(0, OpKind.Write, "v1", null, 0, 10),
                Op(1, OpKind.Cas, "v2", Operation.CasOk, 20, 30, expected: "v1"),
                Op(2, OpKind.Read, null, "v1", 40, 50),
            });
            CheckReport report = HistoryChecks.Check(Workload.Register, History.Load(path), Budget);
            Assert.Equal(1, HistoryChecks.ExitCode(report.Verdict));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Concurrent_and_indeterminate_operations_are_valid_and_exit_0()
    {
        Operation[] history =
        {
            Op(0, OpKind.Write, "v1", null, 0, 10),
            Op(1, OpKind.Write, "v2", null, 5, 100, OpStatus.Info), // may take effect any time after 5, or never
            Op(2, OpKind.Read, null, "v1", 20, 30),
            Op(3, OpKind.Read, null, "v2", 40, 50),
            Op(4, OpKind.Cas, "v3", Operation.CasFail, 60, 70, expected: "v1"),
            Op(5, OpKind.Write, "v4", null, 80, 90, OpStatus.Fail), // never applied
            Op(6, OpKind.Read, null, "v2", 95, 99),
        };
        CheckReport report = HistoryChecks.Check(Workload.Register, history, Budget);
        Assert.Equal(Verdict.Valid, report.Verdict);
        Assert.Equal(0, HistoryChecks.ExitCode(report.Verdict));
        Assert.Empty(report.Problems);
    }

    [Fact]
    public void Reading_a_value_never_written_to_that_key_is_invalid()
    {
        Operation[] history =
        {
            Op(0, OpKind.Write, "v1", null, 0, 10, key: "k1g0"),
            Op(1, OpKind.Read, null, "v1", 20, 30, key: "k0g0"),
        };
        CheckReport report = HistoryChecks.Check(Workload.Large, history, Budget);
        Assert.Equal(Verdict.Invalid, report.Verdict);
        Assert.Contains(report.Problems, p => p.Contains("no operation ever wrote", StringComparison.Ordinal));
    }

    [Fact]
    public void A_lost_acknowledged_insert_is_invalid()
    {
        Operation[] history =
        {
            Op(0, OpKind.Write, "e1", null, 0, 10, key: HistoryChecks.SetKey),
            Op(1, OpKind.Write, "e2", null, 0, 10, key: HistoryChecks.SetKey),
            Op(2, OpKind.Write, "e3", null, 0, 10, OpStatus.Info, key: HistoryChecks.SetKey),
            Op(3, OpKind.Read, null, HistoryChecks.EncodeSet(new[] { "e1", "e3" }), 20, 30, key: HistoryChecks.SetKey),
        };
        CheckReport report = HistoryChecks.Check(Workload.Set, history, Budget);
        Assert.Equal(Verdict.Invalid, report.Verdict);
        Assert.Equal(new[] { "e2" }, report.Set!.Lost);
        Assert.Equal(new[] { "e3" }, report.Set.RecoveredIndeterminate);
    }

    [Fact]
    public void A_set_without_a_final_read_is_unknown_and_exits_2()
    {
        Operation[] history = { Op(0, OpKind.Write, "e1", null, 0, 10, key: HistoryChecks.SetKey) };
        CheckReport report = HistoryChecks.Check(Workload.Set, history, Budget);
        Assert.Equal(Verdict.Unknown, report.Verdict);
        Assert.Equal(2, HistoryChecks.ExitCode(report.Verdict));
    }

    [Theory]
    [InlineData(false, OpStatus.Info)]
    [InlineData(true, OpStatus.Fail)]
    public void An_unavailable_cluster_makes_writes_indeterminate_and_reads_failed(bool isRead, OpStatus expected) =>
        Assert.Equal(expected, Runner.Classify(new ChainUnavailableException("timed out"), isRead));

    [Fact]
    public void Refused_writes_are_failed()
    {
        Assert.Equal(OpStatus.Fail, Runner.Classify(new PreconditionFailedException("b", "k", "version 3"), isRead: false));
        Assert.Equal(OpStatus.Fail, Runner.Classify(new ChainArgumentException("bad key"), isRead: false));
        Assert.Equal(OpStatus.Fail, Runner.Classify(new BucketNotFoundException("b"), isRead: false));
        Assert.Equal(OpStatus.Info, Runner.Classify(new ChainException("internal"), isRead: false));
        Assert.Equal(OpStatus.Info, Runner.Classify(new OperationCanceledException(), isRead: false));
    }
}
