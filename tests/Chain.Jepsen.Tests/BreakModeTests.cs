using Chain.Client;
using Chain.Consistency;
using Chain.Harness.Faults;
using Xunit.Abstractions;

namespace Chain.Jepsen.Tests;

/// <summary>
/// The same short register run as the valid ones, against nodes started with a test-only broken mode
/// (<c>--unsafe-test-break</c>): the runner must find the anomaly and exit 1.
/// </summary>
[Trait("Category", "Integration")]
[Collection(RealClusters.Name)]
public sealed class BreakModeTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"chain-jepsen-breaks-{Guid.NewGuid():N}");
    private string? _clusterDirectory;

    [Theory]
    // Every replica answers reads from its local state: a read at the head sees a write the tail has not got yet.
    [InlineData("dirty-reads", ReadTarget.AnyReplica)]
    // The head acknowledges before the tail has the write: a read at the tail after the ack misses it.
    [InlineData("ack-before-tail", ReadTarget.Tail)]
    public async Task A_broken_store_is_caught_as_invalid(string testBreak, ReadTarget readFrom)
    {
        var spec = new RunSpec
        {
            Seed = 15,
            Workload = Workload.Register,
            Clients = 4,
            Keys = 4,
            KeyWeights = new[] { 1, 1, 1, 1 },
            OpsPerKey = 30,
            Ops = 20_000,
            TimeLimit = TimeSpan.FromSeconds(8),
            Mix = new OpMix(3, 2, 0),
            ReadFrom = readFrom,
            TestBreaks = testBreak,
            // Longer than a lease, shorter than the failure timeout: the chains through node 2 stall behind it.
            Faults = new[] { new ScheduledFault(TimeSpan.FromSeconds(2), new Fault(FaultKind.PauseNode, 1, TimeSpan.FromSeconds(2.5))) },
        };

        RunResult result = await Runner.RunAsync(spec, new RunnerOptions { OutputDirectory = _directory, CheckBudget = TimeSpan.FromSeconds(20) });
        _clusterDirectory = result.ClusterDirectory;
        output.WriteLine(result.Summary());
        foreach (string line in result.Check.Problems.Concat(result.Notes))
            output.WriteLine(line);

        Assert.Equal(Verdict.Invalid, result.Verdict);
        Assert.Equal(1, result.ExitCode);
    }

    public void Dispose()
    {
        foreach (string? directory in new[] { _directory, _clusterDirectory })
        {
            try
            {
                if (directory is not null)
                    Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
