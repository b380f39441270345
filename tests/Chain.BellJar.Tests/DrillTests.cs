using Chain.Harness.BellJar;
using Xunit.Abstractions;

namespace Chain.BellJar.Tests;

/// <summary>The short drill set on real sealed clusters (root), and a drill that must fail on an undeclared dependency.</summary>
[Trait("Category", "Integration")]
public sealed class DrillTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "chain-belljar-drill-" + Guid.NewGuid().ToString("N"));
    private readonly ITestOutputHelper _output;

    public DrillTests(ITestOutputHelper output) => _output = output;

    public void Dispose()
    {
        if (Environment.GetEnvironmentVariable("CHAIN_KEEP_TEST_DATA") != "1" && Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }

    private async Task<ScenarioResult> RunAsync(string name, Func<DrillOptions, DrillOptions>? adjust = null)
    {
        Root.Require();
        var options = new DrillOptions { WorkDirectory = _root, Seed = 42, Log = new TestLog(_output) };
        if (adjust is not null)
            options = adjust(options);
        ScenarioResult result = Assert.Single(await DrillRunner.RunAsync(DrillRunner.Resolve(name), options));
        _output.WriteLine(DrillReport.Markdown(new[] { result }, options.Seed, DateTimeOffset.UtcNow));
        return result;
    }

    private static void AssertPassed(ScenarioResult result)
    {
        Assert.True(result.Status == DrillStatus.Pass, $"{result.Name}: {result.Status}: {result.Failure}");
        Assert.DoesNotContain(result.Attempts, a => !a.Declared);
        Assert.All(result.Roles, r => Assert.StartsWith(r.DataVerified.Split('/')[0] + "/", r.DataVerified, StringComparison.Ordinal));
        Assert.Contains(result.Measurements, m => m.Name == "data check" && m.Value.Contains("identical", StringComparison.Ordinal));
        Assert.Equal(new[] { "master", "node" }, result.Roles.Select(r => r.Role));
    }

    [Fact]
    public async Task Cold_start_in_random_order_serves_every_chain_with_every_write()
    {
        ScenarioResult result = await RunAsync("cold-start");
        AssertPassed(result);
        Assert.Contains(result.Measurements, m => m.Name.StartsWith("time until every chain serves", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Master_sealed_away_the_cluster_recovers_with_every_write()
    {
        ScenarioResult result = await RunAsync("master-sealed-away");
        AssertPassed(result);
        // Writes need no master: they keep working through the whole window. Reads stop once the read lease ends.
        Assert.Contains(result.Measurements, m => m.Name == "writes kept working after the master went away" && m.Value.StartsWith("the whole window", StringComparison.Ordinal));
        Assert.Contains(result.Measurements, m => m.Name == "reads kept working after the master went away");
        Assert.Contains(result.Measurements, m => m.Name.StartsWith("config change", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Restore_from_a_backup_taken_under_writes_brings_back_every_write_acknowledged_before_it_into_an_empty_sealed_cluster()
    {
        ScenarioResult result = await RunAsync("restore-from-backup");
        AssertPassed(result);
        Assert.Contains(result.Measurements, m => m.Name == "writes acknowledged while the backup ran" && int.Parse(m.Value, System.Globalization.CultureInfo.InvariantCulture) > 0);
        string verified = result.Measurements.Single(m => m.Name == "objects verified against the backup").Value;
        string[] counts = verified.Split(' ')[0].Split('/');
        Assert.Equal(counts[1], counts[0]);
        Assert.True(int.Parse(counts[1], System.Globalization.CultureInfo.InvariantCulture) > 0, verified);
        Assert.Contains(result.Measurements, m => m.Name.StartsWith("raw copy of the backup files", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Neighbours_only_node_restarts_and_catches_up_without_reaching_beyond_its_chains()
    {
        ScenarioResult result = await RunAsync("neighbours-only");
        AssertPassed(result);
        Assert.Contains(result.Measurements, m => m.Name == "attempts of the narrowed node outside its neighbours" && m.Value == "none");
        string victim = result.Measurements.Single(m => m.Name == "narrowed node").Value.Split(' ')[0];
        Assert.DoesNotContain(result.Attempts, a => a.From == victim);
        // The finding part: chain 0's head, narrowed the same way, cannot ask chain 1's head about a chunk.
        Assert.Contains(result.Findings, f => f.Contains("a head needs more than its neighbours", StringComparison.Ordinal));
        Assert.All(result.Attempts, a => Assert.True(a.Declared && a.Protocol == "tcp", a.ToString()));
    }

    [Fact]
    public async Task A_node_configured_with_a_host_name_fails_the_drill_naming_the_role_destination_and_port()
    {
        ScenarioResult result = await RunAsync("cold-start", o => o with { MisconfigureNodeMasterAsHostName = 0 });
        Assert.Equal(DrillStatus.Fail, result.Status);
        Assert.NotNull(result.Failure);
        _output.WriteLine(result.Failure);
        Assert.Contains("undeclared dependency", result.Failure, StringComparison.Ordinal);
        Assert.Contains("node1 (node)", result.Failure, StringComparison.Ordinal);
        Assert.Contains($"{SealedNetwork.ResolverAddress}:53", result.Failure, StringComparison.Ordinal);
        Assert.Contains("udp/53", result.Failure, StringComparison.Ordinal);
        RoleRow node = Assert.Single(result.Roles, r => r.Role == "node");
        Assert.Equal(DrillStatus.Fail, node.Status);
        Assert.Contains(node.Attempts, a => a.From == "node1" && a.Port == 53 && !a.Declared);
        Assert.Contains("node1", DrillReport.MarkdownTable(new[] { result }), StringComparison.Ordinal);
    }
}
