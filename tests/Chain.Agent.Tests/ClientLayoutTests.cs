using Chain.Client;

namespace Chain.Agent.Tests;

/// <summary>The client library's layout and single-chunk reads (what the agent builds on).</summary>
[Collection(ClusterCollection.Name)]
public sealed class ClientLayoutTests(ClusterFixture fixture)
{
    [Fact]
    public async Task A_distributed_objects_layout_lists_its_chunks_and_each_reads_back_verified()
    {
        var (key, content) = await fixture.PutObjectAsync(seed: 21, size: 3 * ClusterFixture.ChunkBytes + 123);
        await using var client = fixture.Cluster.CreateClient();
        var layout = await client.GetLayoutAsync(ClusterFixture.Bucket, key);
        Assert.False(layout.Inline);
        Assert.Equal(content.Length, layout.Info.Size);
        Assert.Equal([ClusterFixture.ChunkBytes, ClusterFixture.ChunkBytes, ClusterFixture.ChunkBytes, 123], layout.Chunks.Select(c => c.Size));
        var status = await client.GetStatusAsync();
        using var joined = new MemoryStream();
        for (int i = 0; i < layout.Chunks.Count; i++)
        {
            var chunk = layout.Chunks[i];
            Assert.Equal(Chain.Protocol.Placement.ChainForChunk(chunk.Sha256.Span, status.Chains.Count), chunk.ChainId);
            var data = await client.ReadChunkAsync(layout, i);
            Assert.Equal(chunk.Sha256Hex, ClusterFixture.Sha(data.ToArray()));
            joined.Write(data.Span);
        }
        Assert.Equal(ClusterFixture.Sha(content), ClusterFixture.Sha(joined.ToArray()));
    }

    [Fact]
    public async Task An_inline_object_is_one_chunk_named_by_its_digest_and_a_changed_one_is_refused()
    {
        var (key, content) = await fixture.PutObjectAsync(seed: 22, size: 1000);
        await using var client = fixture.Cluster.CreateClient();
        var layout = await client.GetLayoutAsync(ClusterFixture.Bucket, key);
        Assert.True(layout.Inline);
        var only = Assert.Single(layout.Chunks);
        Assert.Equal(ClusterFixture.Sha(content), only.Sha256Hex);
        Assert.Equal(1000, only.Size);
        Assert.Equal(content, (await client.ReadChunkAsync(layout, 0)).ToArray());

        await client.PutAsync(ClusterFixture.Bucket, key, new byte[] { 1, 2, 3 });
        await Assert.ThrowsAsync<IntegrityException>(() => client.ReadChunkAsync(layout, 0));
    }
}
