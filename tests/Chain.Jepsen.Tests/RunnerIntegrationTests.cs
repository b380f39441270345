using System.Text;
using Chain.Client;
using Chain.Consistency;
using Chain.Harness.Faults;
using Xunit.Abstractions;

namespace Chain.Jepsen.Tests;

/// <summary>Short runs against real server processes with real faults: a correct cluster must come out valid.</summary>
[Trait("Category", "Integration")]
[Collection(RealClusters.Name)]
public sealed class RunnerIntegrationTests : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"chain-jepsen-tests-{Guid.NewGuid():N}");

    public RunnerIntegrationTests(ITestOutputHelper output) => _output = output;

    private RunnerOptions Options => new()
    {
        OutputDirectory = _directory,
        CheckBudget = TimeSpan.FromSeconds(20),
        Log = new OutputWriter(_output),
    };

    [Theory]
    // CRAQ (the default): reads at any member of the chain, redirected to the tail for objects with writes in flight.
    [InlineData(ReadTarget.AnyReplica)]
    [InlineData(ReadTarget.Tail)]
    public async Task A_register_run_with_kill_pause_and_master_kill_is_valid(ReadTarget readFrom)
    {
        var spec = new RunSpec
        {
            Seed = 11,
            ReadFrom = readFrom,
            Workload = Workload.Register,
            Clients = 4,
            Keys = 3,
            KeyWeights = new[] { 1, 1, 1 },
            OpsPerKey = 20,
            Ops = 20_000,
            TimeLimit = TimeSpan.FromSeconds(14),
            Mix = new OpMix(2, 2, 1),
            Faults = new[]
            {
                // Longer than a read lease (1.5 s), shorter than the failure timeout: the node stays in its chains.
                new ScheduledFault(TimeSpan.FromSeconds(1.5), new Fault(FaultKind.PauseNode, 2, TimeSpan.FromSeconds(2.5))),
                // Longer than the failure timeout: removed from its chains, then rejoins with a sync.
                new ScheduledFault(TimeSpan.FromSeconds(5), new Fault(FaultKind.KillNode, 0, TimeSpan.FromSeconds(4))),
                // Nodes keep serving with their last table until their leases run out, then wait for the new master.
                new ScheduledFault(TimeSpan.FromSeconds(10), new Fault(FaultKind.KillMaster, 0, TimeSpan.FromSeconds(2))),
            },
        };

        RunResult result = await Runner.RunAsync(spec, Options);
        Report(result);

        Assert.Null(result.Error);
        Assert.Equal(Verdict.Valid, result.Verdict);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(3, result.Faults.Count);
        Assert.StartsWith("SIGSTOP node3", result.Faults[0].Description, StringComparison.Ordinal);
        Assert.StartsWith("SIGKILL node1", result.Faults[1].Description, StringComparison.Ordinal);
        Assert.StartsWith("SIGKILL master", result.Faults[2].Description, StringComparison.Ordinal);
        Assert.All(result.Faults, f => Assert.True(f.EndTicks > f.StartTicks));
        Assert.True(result.Stats.Ok > 100, $"only {result.Stats.Ok} operations succeeded");
        Assert.Contains(result.History, o => o.Kind == OpKind.Cas && o.Status == OpStatus.Ok && o.Output == Operation.CasOk);
        Assert.Equal(result.History.Count, History.Load(result.HistoryPath).Count);
    }

    [Fact]
    public async Task A_set_run_with_kill_and_partition_is_valid()
    {
        var spec = new RunSpec
        {
            Seed = 12,
            Workload = Workload.Set,
            Clients = 3,
            Keys = 1,
            KeyWeights = new[] { 1 },
            Ops = 20_000,
            TimeLimit = TimeSpan.FromSeconds(11),
            Mix = new OpMix(0, 1, 0),
            Faults = new[]
            {
                new ScheduledFault(TimeSpan.FromSeconds(2), new Fault(FaultKind.KillNode, 1, TimeSpan.FromSeconds(4))),
                // Network namespaces and iptables as root, the harness's TCP proxies otherwise.
                new ScheduledFault(TimeSpan.FromSeconds(7), new Fault(FaultKind.PartitionHalves, 3, TimeSpan.FromSeconds(3))),
            },
        };

        RunResult result = await Runner.RunAsync(spec, Options);
        Report(result);

        Assert.Null(result.Error);
        Assert.Equal(Verdict.Valid, result.Verdict);
        Assert.NotNull(result.Check.Set);
        Assert.Empty(result.Check.Set!.Lost);
        Assert.Equal(2, result.Faults.Count);
        Assert.StartsWith("SIGKILL node2", result.Faults[0].Description, StringComparison.Ordinal);
        Assert.StartsWith("partitioned", result.Faults[1].Description, StringComparison.Ordinal);
        Assert.True(result.History.Count(o => o.Kind == OpKind.Write && o.Status == OpStatus.Ok) > 50);
    }

    [Fact]
    public async Task A_large_object_run_with_pause_is_valid()
    {
        var spec = new RunSpec
        {
            Seed = 14,
            Workload = Workload.Large,
            Clients = 3,
            Keys = 2,
            KeyWeights = new[] { 1, 1 },
            OpsPerKey = 6,
            Ops = 400,
            TimeLimit = TimeSpan.FromSeconds(8),
            Mix = new OpMix(1, 1, 0),
            ObjectBytes = 1536 * 1024, // two chunks
            Faults = new[] { new ScheduledFault(TimeSpan.FromSeconds(2), new Fault(FaultKind.PauseNode, 0, TimeSpan.FromSeconds(2))) },
        };

        RunResult result = await Runner.RunAsync(spec, Options);
        Report(result);

        Assert.Null(result.Error);
        Assert.Equal(Verdict.Valid, result.Verdict);
        Assert.StartsWith("SIGSTOP node1", Assert.Single(result.Faults).Description, StringComparison.Ordinal);
        Assert.True(result.History.Count(o => o.Kind == OpKind.Write && o.Status == OpStatus.Ok) > 5, "too few large writes succeeded");
        var written = result.History.Where(o => o.Kind == OpKind.Write && o.Status != OpStatus.Fail).Select(o => o.Input).ToHashSet();
        // Reads saw whole objects: every digest read is the digest of a write that may have taken effect.
        Assert.All(result.History.Where(o => o.Kind == OpKind.Read && o.Status == OpStatus.Ok && o.Output is not null),
            o => Assert.Contains(o.Output, written));
        Assert.Contains(result.History, o => o.Kind == OpKind.Read && o.Status == OpStatus.Ok && o.Output is not null);
        // Large writes and reads record the store's version as well.
        Assert.All(result.History.Where(o => o.Status == OpStatus.Ok && (o.Kind == OpKind.Write || o.Output is not null)),
            o => Assert.True(o.Version > 0, $"op {o.Id} ({o.Kind}) has no version"));
    }

    [Fact]
    public async Task A_register_run_records_the_stores_versions()
    {
        var spec = new RunSpec
        {
            Seed = 15,
            Workload = Workload.Register,
            Clients = 3,
            Keys = 2,
            KeyWeights = new[] { 1, 1 },
            OpsPerKey = 25,
            Ops = 400,
            TimeLimit = TimeSpan.FromSeconds(4),
            Mix = new OpMix(2, 2, 1),
            Faults = Array.Empty<ScheduledFault>(),
        };

        RunResult result = await Runner.RunAsync(spec, Options);
        Report(result);

        Assert.Null(result.Error);
        Assert.Equal(Verdict.Valid, result.Verdict);
        var ok = result.History.Where(o => o.Status == OpStatus.Ok).ToList();
        var acked = ok.Where(o => o.Kind == OpKind.Write || (o.Kind == OpKind.Cas && o.Output == Operation.CasOk)).ToList();
        var reads = ok.Where(o => o.Kind == OpKind.Read && o.Output is not null).ToList();
        Assert.True(acked.Count > 20, $"only {acked.Count} writes were acknowledged");
        Assert.True(reads.Count > 20, $"only {reads.Count} reads saw a value");
        Assert.Contains(acked, o => o.Kind == OpKind.Cas);
        // Every acknowledged write and successful CAS carries the version it was acknowledged with; versions of one key differ.
        Assert.All(acked, o => Assert.True(o.Version > 0, $"op {o.Id} ({o.Kind} {o.Input}) has no version"));
        Assert.All(acked.GroupBy(o => o.Key), key => Assert.Equal(key.Count(), key.Select(o => o.Version).Distinct().Count()));
        // Every read that saw a value carries that value's version, which is the one its write was acknowledged with.
        var versionOf = acked.ToDictionary(o => (o.Key, o.Input!), o => o.Version);
        int matched = 0;
        foreach (Operation read in reads)
        {
            Assert.True(read.Version > 0, $"read {read.Id} of {read.Output} has no version");
            if (versionOf.TryGetValue((read.Key, read.Output!), out long? written))
            {
                Assert.Equal(written, read.Version);
                matched++;
            }
        }
        Assert.True(matched > 10, $"only {matched} reads saw an acknowledged write");
        // Absent values and CAS that did not apply have no version; the history file keeps the versions.
        Assert.All(ok.Where(o => (o.Kind == OpKind.Read && o.Output is null) || (o.Kind == OpKind.Cas && o.Output == Operation.CasFail)),
            o => Assert.Null(o.Version));
        Assert.Equal(result.History.Select(o => o.Version), History.Load(result.HistoryPath).Select(o => o.Version));
    }

    private void Report(RunResult result)
    {
        _output.WriteLine(result.Summary());
        foreach (string line in result.Check.Problems.Concat(result.Notes))
            _output.WriteLine(line);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The runner's progress lines into the test output.</summary>
    private sealed class OutputWriter(ITestOutputHelper output) : TextWriter
    {
        public override Encoding Encoding => Encoding.UTF8;

        public override void WriteLine(string? value)
        {
            try
            {
                output.WriteLine(value ?? "");
            }
            catch (InvalidOperationException)
            {
                // The test has finished.
            }
        }
    }
}
