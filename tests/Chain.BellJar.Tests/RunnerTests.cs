using Chain.Harness.BellJar;

namespace Chain.BellJar.Tests;

/// <summary>Scenario names and sets, and the report's table (no root needed).</summary>
public sealed class RunnerTests
{
    [Fact]
    public void Sets_name_the_scenarios_and_an_unknown_name_lists_the_known_ones()
    {
        Assert.Equal(new[] { "cold-start", "master-sealed-away", "neighbours-only", "restore-from-backup" }, DrillRunner.Resolve("short").Select(s => s.Name));
        Assert.Equal(new[] { "cold-start", "master-sealed-away", "neighbours-only", "region-loss", "restore-from-backup", "bootstrap-from-nothing" },
            DrillRunner.Resolve("full").Select(s => s.Name));
        var e = Assert.Throws<ArgumentException>(() => DrillRunner.Resolve("earthquake"));
        Assert.Contains("region-loss", e.Message, StringComparison.Ordinal);
        Assert.All(DrillRunner.Scenarios, s => Assert.True(s.Budget > TimeSpan.Zero));
    }

    [Fact]
    public void The_report_has_one_row_per_scenario_and_role_and_escapes_html()
    {
        var attempt = new UndeclaredAttempt("node2", "node", "192.0.2.53", "outside the cluster", 53, "udp", 2, 4, Declared: false);
        var rows = new[]
        {
            new RoleRow("s<1>", "master", "node:rpc", Array.Empty<UndeclaredAttempt>(), "1.00 s", "3/3 identical", DrillStatus.Pass),
            new RoleRow("s<1>", "node", "master:rpc, node:rpc", new[] { attempt }, "2.00 s", "3/3 identical", DrillStatus.Fail),
        };
        var result = new ScenarioResult("s<1>", "d", DrillStatus.Fail, "undeclared", TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(9), rows,
            new[] { ("m", "v") }, Array.Empty<string>(), new[] { attempt });
        string table = DrillReport.MarkdownTable(new[] { result });
        Assert.Equal(4, table.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Contains("| s<1> | node | master:rpc, node:rpc | node2 (node) -> 192.0.2.53:53 udp/53 (outside the cluster): 2 attempt(s), 4 packet(s) | 2.00 s | 3/3 identical | FAIL |", table, StringComparison.Ordinal);
        string html = DrillReport.Html(new[] { result }, 1, DateTimeOffset.UnixEpoch);
        Assert.Contains("s&lt;1&gt;", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<td>s<1>", html, StringComparison.Ordinal);
    }

    [Fact]
    public void A_hashlimit_entry_parses_into_protocol_destination_port_and_packets()
    {
        var v4 = SealedNetwork.ParseEntry("/proc/net/ipt_hashlimit/bjtcp:86399 0.0.0.0:43120->10.9.9.9:53 1876908091398778880 3855474310982565888 494780230800000000");
        Assert.Equal(("tcp", "10.9.9.9", (int?)53, 4L), v4);
        var v6 = SealedNetwork.ParseEntry("/proc/net/ip6t_hashlimit/bj6udp:100 0000:0000:0000:0000:0000:0000:0000:0000:5353->fd00:0000:0000:0000:0000:0000:0000:0001:53 10 30 10");
        Assert.Equal(("udp6", "fd00:0000:0000:0000:0000:0000:0000:0001", (int?)53, 2L), v6);
        Assert.Null(SealedNetwork.ParseEntry("/proc/net/ipt_hashlimit/other:1 a->b 1 2 3"));
    }
}
