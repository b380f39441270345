using Chain.Client;
using Xunit;

namespace Chain.Cli.Tests;

public class StatusViewTests
{
    private static readonly DateTimeOffset Now = new(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);

    private static ClusterStatus Sample() => new(
        ConfigVersion: 7,
        Replicas: 3,
        Chains: new[]
        {
            new ChainView(0, 2, new[] { "node1", "node2", "node3" }),
            new ChainView(1, 1, new[] { "node2", "node3", "node1" }),
            new ChainView(2, 5, new[] { "node3" }),
        },
        Nodes: new[]
        {
            new NodeView("node1", "http://127.0.0.1:7401", true, Now.AddSeconds(-1)),
            new NodeView("node2", "http://127.0.0.1:7402", true, Now.AddSeconds(-2)),
            new NodeView("node3", "http://127.0.0.1:7403", false, null),
        },
        Buckets: new[] { new BucketInfo("demo", Now.AddDays(-1)) });

    [Fact]
    public void Summary_counts_chains_nodes_and_buckets()
    {
        Assert.Equal("config version 7: 3 chains, 3 replicas, 2/3 nodes alive, 1 buckets", StatusView.Summary(Sample()));
    }

    [Fact]
    public void Render_shows_every_chain_with_head_middle_and_tail()
    {
        var output = new StringWriter();
        StatusView.Render(CliIo.PlainConsole(output), Sample(), Now, includeBuckets: true);
        string text = output.ToString();
        string[] lines = text.Split('\n');

        string chain0 = Assert.Single(lines, l => Cells(l) is [ "0", "2", ..]);
        Assert.Equal(new[] { "0", "2", "node1", "node2", "node3 (down)" }, Cells(chain0));
        string chain2 = Assert.Single(lines, l => Cells(l) is [ "2", "5", ..]);
        Assert.Equal(new[] { "2", "5", "node3 (down)", "-", "node3 (down)" }, Cells(chain2));
        Assert.Contains("http://127.0.0.1:7402", text);
        Assert.Contains("never", text);
        Assert.Contains("demo", text);
        Assert.Contains("2025-01-02 03:04:04Z (1.0s ago)", text);
    }

    [Fact]
    public void Render_shows_a_zone_column_only_when_nodes_have_zones()
    {
        var plain = new StringWriter();
        StatusView.Render(CliIo.PlainConsole(plain), Sample(), Now, includeBuckets: false);
        Assert.DoesNotContain(plain.ToString().Split('\n'), l => Cells(l) is ["node", "zone", ..]);

        ClusterStatus zoned = Sample() with
        {
            Nodes = Sample().Nodes.Select((n, i) => i == 2 ? n : n with { Zone = "rack-" + (i + 1) }).ToArray(),
        };
        var output = new StringWriter();
        StatusView.Render(CliIo.PlainConsole(output), zoned, Now, includeBuckets: false);
        string[] lines = output.ToString().Split('\n');
        Assert.Single(lines, l => Cells(l) is ["node", "zone", "address", ..]);
        Assert.Single(lines, l => Cells(l) is ["node1", "rack-1", "http://127.0.0.1:7401", ..]);
        Assert.Single(lines, l => Cells(l) is ["node3", "-", "http://127.0.0.1:7403", ..]);
    }

    /// <summary>The cells of a table row ('│ a │ b │'), or empty for other lines.</summary>
    private static string[] Cells(string line)
    {
        string trimmed = line.Trim();
        if (!trimmed.StartsWith('│') && !trimmed.StartsWith('|'))
            return Array.Empty<string>();
        return trimmed.Split('│', '|').Select(c => c.Trim()).Where(c => c.Length > 0).ToArray();
    }
}
