using Chain.Consistency;
using Chain.Harness;
using Chain.Harness.Faults;
using Xunit.Abstractions;

namespace Chain.Jepsen.Tests;

/// <summary>
/// The runner must catch real anomalies from real processes, not only pass correct runs. This sabotage is outside
/// the fault model on purpose: every node is SIGKILLed and loses its whole disk at once, so acknowledged writes are
/// gone, and the same run that passes under the model's faults must come out invalid (exit code 1).
/// </summary>
[Trait("Category", "Integration")]
[Trait("Category", "Slow")] // on demand: the break-mode tests cover "a broken store exits 1" within the CI budget
[Collection(RealClusters.Name)]
public sealed class SabotageTests : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"chain-jepsen-sabotage-{Guid.NewGuid():N}");

    public SabotageTests(ITestOutputHelper output) => _output = output;

    /// <summary>Routes <see cref="FaultKind.Corrupt"/> to "kill every node, delete its data, start it again".</summary>
    private sealed class WipeEveryNodeNemesis(LocalCluster cluster) : INemesis
    {
        public bool Supports(FaultKind kind) => kind == FaultKind.Corrupt;

        public async Task<string> InjectAsync(Fault fault, CancellationToken cancellationToken)
        {
            await Task.WhenAll(cluster.Nodes.Select((_, i) => cluster.KillNodeAsync(i)));
            foreach (NodeProcess node in cluster.Nodes)
                Directory.Delete(node.DataDirectory, recursive: true);
            for (int i = 0; i < cluster.Nodes.Count; i++)
                await cluster.StartNodeAsync(i, cancellationToken);
            return "wiped every node's data";
        }

        public Task HealAsync(Fault fault, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task HealAllAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Losing_every_replica_is_caught_as_invalid()
    {
        var spec = new RunSpec
        {
            Seed = 13,
            Workload = Workload.Set,
            Clients = 2,
            Keys = 1,
            KeyWeights = new[] { 1 },
            Ops = 20_000,
            TimeLimit = TimeSpan.FromSeconds(8),
            Mix = new OpMix(0, 1, 0),
            Faults = new[] { new ScheduledFault(TimeSpan.FromSeconds(4), new Fault(FaultKind.Corrupt, 0, TimeSpan.FromMilliseconds(500))) },
        };
        var options = new RunnerOptions
        {
            OutputDirectory = _directory,
            Nemeses = NemesisCatalog.Factories
                .Append(new NemesisFactory("wipe", new[] { FaultKind.Corrupt }, c => new WipeEveryNodeNemesis(c)))
                .ToArray(),
        };

        RunResult result = await Runner.RunAsync(spec, options);
        _clusterDirectory = result.ClusterDirectory;
        _output.WriteLine(result.Summary());
        foreach (string line in result.Check.Problems.Concat(result.Notes))
            _output.WriteLine(line);

        Assert.Equal(Verdict.Invalid, result.Verdict);
        Assert.Equal(1, result.ExitCode);
        Assert.NotEmpty(result.Check.Set!.Lost);
        Assert.Contains(result.Check.Problems, p => p.Contains("missing from the final read", StringComparison.Ordinal));
    }

    private string? _clusterDirectory;

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
