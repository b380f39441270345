using Chain.Master;

namespace Chain.Server.Tests;

public class ChainTableTests
{
    [Theory]
    [InlineData(3, 3, 3)]
    [InlineData(5, 5, 3)]
    [InlineData(4, 8, 3)]
    [InlineData(6, 12, 2)]
    public void Every_node_takes_head_and_tail_roles_in_balance(int nodes, int chains, int replicas)
    {
        string[] ids = Enumerable.Range(1, nodes).Select(i => $"n{i}").ToArray();
        var table = ChainTable.Build(ids, chains, replicas);

        Assert.Equal(chains, table.Count);
        Assert.All(table, c => Assert.Equal(replicas, c.Nodes.Count));
        Assert.All(table, c => Assert.Equal(replicas, c.Nodes.Distinct().Count()));
        var heads = ids.Select(id => table.Count(c => c.Nodes[0] == id)).ToArray();
        var tails = ids.Select(id => table.Count(c => c.Nodes[^1] == id)).ToArray();
        Assert.True(heads.Max() - heads.Min() <= 1, $"heads unbalanced: {string.Join(',', heads)}");
        Assert.True(tails.Max() - tails.Min() <= 1, $"tails unbalanced: {string.Join(',', tails)}");
        Assert.All(table, c => Assert.Equal(1UL, c.Epoch));
    }

    [Fact]
    public void Three_nodes_three_chains_gives_each_node_head_middle_and_tail()
    {
        var table = ChainTable.Build(new[] { "a", "b", "c" }, 3, 3);
        foreach (string id in new[] { "a", "b", "c" })
        {
            var positions = table.Select(c => c.Nodes.IndexOf(id)).OrderBy(p => p).ToArray();
            Assert.Equal(new[] { 0, 1, 2 }, positions);
        }
    }

    [Fact]
    public void Replicas_beyond_node_count_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ChainTable.Build(new[] { "a", "b" }, 2, 3));
    }
}
