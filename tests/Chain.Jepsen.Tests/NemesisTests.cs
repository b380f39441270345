using Chain.Harness.Faults;

namespace Chain.Jepsen.Tests;

public sealed class NemesisTests
{
    private sealed class FakeNemesis(string name, params FaultKind[] kinds) : INemesis
    {
        public List<string> Calls { get; } = new();

        public bool Supports(FaultKind kind) => kinds.Contains(kind);

        public Task<string> InjectAsync(Fault fault, CancellationToken cancellationToken)
        {
            Calls.Add($"inject {fault.Kind}");
            return Task.FromResult($"{name}: {fault.Kind}");
        }

        public Task HealAsync(Fault fault, CancellationToken cancellationToken)
        {
            Calls.Add($"heal {fault.Kind}");
            return Task.CompletedTask;
        }

        public Task HealAllAsync(CancellationToken cancellationToken)
        {
            Calls.Add("heal all");
            return Task.CompletedTask;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task Each_kind_goes_to_the_first_nemesis_that_supports_it()
    {
        var process = new FakeNemesis("process", FaultKind.KillNode, FaultKind.PauseNode);
        var network = new FakeNemesis("network", FaultKind.KillNode, FaultKind.PartitionHalves);
        await using var composite = new CompositeNemesis(new INemesis[] { process, network });

        Assert.Equal("process: KillNode", await composite.InjectAsync(new Fault(FaultKind.KillNode, 0, TimeSpan.FromSeconds(1)), default));
        Assert.Equal("network: PartitionHalves", await composite.InjectAsync(new Fault(FaultKind.PartitionHalves, 0, TimeSpan.FromSeconds(1)), default));
        Assert.False(composite.Supports(FaultKind.DiskFull));
        await Assert.ThrowsAsync<NotSupportedException>(() => composite.InjectAsync(new Fault(FaultKind.DiskFull, 0, TimeSpan.FromSeconds(1)), default));

        await composite.HealAllAsync(default);
        Assert.Equal(new[] { "inject KillNode", "heal all" }, process.Calls);
        Assert.Equal(new[] { "inject PartitionHalves", "heal all" }, network.Calls);
    }

    [Fact]
    public void Nemesis_names_parse_and_unbuilt_kinds_are_refused()
    {
        Assert.Equal(new[] { FaultKind.KillNode, FaultKind.PauseNode, FaultKind.KillMaster }, NemesisCatalog.Parse("kill, pause,kill-master,kill"));
        Assert.Empty(NemesisCatalog.Parse("none"));
        Assert.Throws<ArgumentException>(() => NemesisCatalog.Parse("kill,gremlins"));
        var onlyProcess = new[] { new NemesisFactory("process", new[] { FaultKind.KillNode }, _ => throw new InvalidOperationException()) };
        Assert.Throws<ArgumentException>(() => NemesisCatalog.Parse("partition", onlyProcess));
    }
}

public sealed class NemesisPreparationTests
{
    [Fact]
    public void Only_the_nemeses_a_spec_uses_prepare_the_cluster()
    {
        var prepared = new List<string>();
        NemesisFactory[] factories =
        {
            new("process", new[] { FaultKind.KillNode }, _ => throw new InvalidOperationException(), _ => prepared.Add("process")),
            new("network", new[] { FaultKind.PartitionHalves }, _ => throw new InvalidOperationException(), o => { prepared.Add("network"); o.Chains = 7; }),
        };
        var options = new Chain.Harness.LocalClusterOptions { DataDirectory = "/tmp/unused" };
        NemesisCatalog.PrepareCluster(options, new[] { FaultKind.PartitionHalves }, factories);
        Assert.Equal(new[] { "network" }, prepared);
        Assert.Equal(7, options.Chains);
    }
}
