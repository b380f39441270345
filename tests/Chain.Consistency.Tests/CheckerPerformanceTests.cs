using System.Diagnostics;
using Xunit.Abstractions;

namespace Chain.Consistency.Tests;

/// <summary>
/// The checker's performance floor (issue 4): 10,000 operations over 100 keys from 10 concurrent clients are
/// checked within seconds, and a pathological history yields Unknown within its budget instead of hanging.
/// </summary>
public class CheckerPerformanceTests(ITestOutputHelper output)
{
    [Fact]
    public void GeneratedHistoriesAreConcurrentAndContainEveryStatus()
    {
        var history = HistoryGenerator.Generate(new GeneratorOptions { Operations = 2_000, Seed = 7 });
        Assert.Equal(2_000, history.Count);
        Assert.Contains(history, o => o.Status == OpStatus.Info);
        Assert.Contains(history, o => o.Status == OpStatus.Fail);
        Assert.Contains(history, o => o.Kind == OpKind.Cas && o.Output == Operation.CasOk && o.Status == OpStatus.Ok);
        Assert.Contains(history, o => o.Kind == OpKind.Cas && o.Output == Operation.CasFail && o.Status == OpStatus.Ok);
        // Clients overlap: at the midpoint of most operations, other operations are running too.
        var sorted = history.OrderBy(o => o.CallTicks).ToList();
        var overlapping = sorted.Count(o => sorted.Any(p => p.Id != o.Id && p.CallTicks < o.ReturnTicks && o.CallTicks < p.ReturnTicks));
        Assert.True(overlapping > history.Count * 9 / 10, $"only {overlapping} of {history.Count} operations overlap another");
        // Each client is sequential.
        foreach (var client in history.GroupBy(o => o.Client))
        {
            var ops = client.OrderBy(o => o.CallTicks).ToList();
            for (var i = 1; i < ops.Count; i++)
            {
                Assert.True(ops[i - 1].ReturnTicks <= ops[i].CallTicks, $"client {client.Key} runs two operations at once");
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void TenThousandOperationsOverAHundredKeysFromTenClientsAreCheckedWithinSeconds(int seed)
    {
        var history = HistoryGenerator.Generate(new GeneratorOptions { Operations = 10_000, Keys = 100, Clients = 10, Seed = seed });

        var stopwatch = Stopwatch.StartNew();
        var result = LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(60));
        stopwatch.Stop();

        output.WriteLine($"checked {history.Count} operations over {result.Keys.Count} keys " +
            $"({history.Count(o => o.Status == OpStatus.Info)} info, {history.Count(o => o.Status == OpStatus.Fail)} fail) " +
            $"in {stopwatch.Elapsed.TotalMilliseconds:0} ms: {result.Verdict}");
        Assert.Equal(Verdict.Valid, result.Verdict);
        Assert.Equal(100, result.Keys.Count);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(20), $"took {stopwatch.Elapsed}");
    }

    [Fact]
    public void TenThousandOperationsOnOneHotKeyAreCheckedWithinSeconds()
    {
        // All ten clients on one key: the concurrency the search sees is ten plus every pending info write.
        var history = HistoryGenerator.Generate(new GeneratorOptions { Operations = 10_000, Keys = 1, Clients = 10, InfoShare = 0.002, Seed = 4 });

        var stopwatch = Stopwatch.StartNew();
        var result = LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(60));
        stopwatch.Stop();

        output.WriteLine($"checked {history.Count} operations on one key in {stopwatch.Elapsed.TotalMilliseconds:0} ms: {result.Verdict}");
        Assert.Equal(Verdict.Valid, result.Verdict);
        // About 1.5 s on an idle core; the bound leaves room for a loaded machine.
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(30), $"took {stopwatch.Elapsed}");
    }

    [Fact]
    public void CorruptingOneReadOfALargeHistoryIsFoundQuickly()
    {
        var history = HistoryGenerator.Generate(new GeneratorOptions { Operations = 10_000, Seed = 5 });
        var victim = history.Where(o => o.Kind == OpKind.Read && o.Status == OpStatus.Ok).ElementAt(4_000);
        var corrupted = history.Select(o => o.Id == victim.Id ? o with { Output = "never-written" } : o).ToList();

        var stopwatch = Stopwatch.StartNew();
        var result = LinearizabilityChecker.Check(corrupted, TimeSpan.FromSeconds(60));
        stopwatch.Stop();

        output.WriteLine($"found the corrupted read in {stopwatch.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(Verdict.Invalid, result.Verdict);
        Assert.Equal(victim.Key, result.InvalidKey);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(20), $"took {stopwatch.Elapsed}");
    }

    [Fact]
    public void BenchmarkModeTimesEveryStandardShapeAndFindsThemValid()
    {
        foreach (var shape in CheckerBenchmark.StandardShapes())
        {
            var result = CheckerBenchmark.Run(shape, TimeSpan.FromSeconds(60));
            output.WriteLine(result.ToString());
            Assert.Equal(shape.Operations, result.Operations);
            Assert.Equal(Verdict.Valid, result.LinearizabilityVerdict);
            Assert.Equal(Verdict.Valid, result.DuplicateVerdict);
        }
    }

    [Fact]
    public void PathologicalHistoryYieldsUnknownWithinItsBudget()
    {
        // 64 mutually concurrent writes followed by a read of a value nobody wrote: proving this invalid means
        // trying every subset of the writes (2^64 memo states), so the checker must give up at its budget.
        // A normal key beside it is still judged.
        const int writers = 64;
        var history = new List<Operation>();
        for (var i = 0; i < writers; i++)
        {
            history.Add(Ops.Write(i, "hot", $"v{i}", i, 10_000 + i, client: i));
            history.Add(Ops.Read(1_000 + i, "hot", $"v{i}", 20_000 + i, 30_000 + i, client: i));
        }

        history.Add(Ops.Read(writers, "hot", "never-written", 40_000, 40_001, client: writers));
        history.Add(Ops.Write(5_000, "calm", "a", 0, 1));
        history.Add(Ops.Read(5_001, "calm", "a", 2, 3));

        var budget = TimeSpan.FromSeconds(2);
        var stopwatch = Stopwatch.StartNew();
        var result = LinearizabilityChecker.Check(history, budget);
        stopwatch.Stop();

        output.WriteLine($"pathological history: {result.Verdict} after {stopwatch.Elapsed.TotalMilliseconds:0} ms (budget {budget.TotalMilliseconds:0} ms)");
        Assert.Equal(Verdict.Unknown, result.Verdict);
        Assert.Equal(Verdict.Unknown, result.Keys["hot"].Verdict);
        Assert.Equal(Verdict.Valid, result.Keys["calm"].Verdict);
        Assert.True(stopwatch.Elapsed >= budget, "gave up before its budget");
        Assert.True(stopwatch.Elapsed < budget + TimeSpan.FromSeconds(3), $"overran its budget: {stopwatch.Elapsed}");
    }
}
