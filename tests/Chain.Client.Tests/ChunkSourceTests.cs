using Chain.Client.Internal;
using Chain.Protocol;

namespace Chain.Client.Tests;

public class ChunkSourceTests
{
    private static async Task<List<byte[]>> ReadAll(ChunkSource source)
    {
        var chunks = new List<byte[]>();
        while (true)
        {
            var chunk = await source.ReadChunkAsync(CancellationToken.None);
            if (chunk.IsEmpty)
                return chunks;
            chunks.Add(chunk.ToArray());
        }
    }

    [Fact]
    public async Task Fills_every_chunk_completely_from_a_stream_that_returns_one_byte_per_read()
    {
        var data = TestData.Random(2 * Limits.ChunkBytes + 17);
        var stream = new TrickleStream(data, maxPerRead: 1, seekable: false);

        var chunks = await ReadAll(ChunkSource.For(stream));

        Assert.Equal(new[] { Limits.ChunkBytes, Limits.ChunkBytes, 17 }, chunks.Select(c => c.Length));
        Assert.Equal(data, chunks.SelectMany(c => c).ToArray());
        Assert.True(stream.Reads >= data.Length, "every byte came from its own read");
    }

    [Fact]
    public async Task An_exact_multiple_of_the_chunk_size_ends_without_an_empty_chunk()
    {
        var data = TestData.Random(3 * 1000);
        var chunks = await ReadAll(new StreamChunkSource(new TrickleStream(data, maxPerRead: 333), chunkBytes: 1000));
        Assert.Equal(new[] { 1000, 1000, 1000 }, chunks.Select(c => c.Length));
        Assert.Equal(data, chunks.SelectMany(c => c).ToArray());
    }

    [Fact]
    public async Task An_empty_stream_has_no_chunks_and_length_zero()
    {
        var source = ChunkSource.For(new MemoryStream());
        Assert.Equal(0, source.Length);
        Assert.Empty(await ReadAll(source));
    }

    [Fact]
    public async Task Chunks_are_not_reused_buffers()
    {
        var data = TestData.Random(2500);
        var source = new StreamChunkSource(new MemoryStream(data), chunkBytes: 1000);
        var first = await source.ReadChunkAsync(CancellationToken.None);
        var copy = first.ToArray();
        await source.ReadChunkAsync(CancellationToken.None);
        Assert.Equal(copy, first.ToArray());
    }

    [Fact]
    public async Task A_seekable_stream_rewinds_to_its_initial_position_not_to_zero()
    {
        var data = TestData.Random(5000);
        var stream = new MemoryStream(data) { Position = 1234 };
        var source = new StreamChunkSource(stream, chunkBytes: 1000);
        Assert.Equal(5000 - 1234, source.Length);

        var first = await ReadAll(source);
        Assert.True(source.Consumed);
        Assert.True(source.TryRewind());
        Assert.Equal(1234, stream.Position);
        var second = await ReadAll(source);

        Assert.Equal(data.AsSpan(1234).ToArray(), first.SelectMany(c => c).ToArray());
        Assert.Equal(first.SelectMany(c => c), second.SelectMany(c => c));
    }

    [Fact]
    public async Task A_non_seekable_stream_can_start_over_only_if_nothing_was_read()
    {
        var source = ChunkSource.For(new TrickleStream(TestData.Random(10), 4, seekable: false));
        Assert.Null(source.Length);
        Assert.True(source.TryRewind());
        await source.ReadChunkAsync(CancellationToken.None);
        Assert.False(source.TryRewind());
    }

    [Fact]
    public async Task Memory_content_is_cut_into_slices_and_always_rewinds()
    {
        var data = TestData.Random(2 * Limits.ChunkBytes + 1);
        var source = ChunkSource.For(data.AsMemory());
        Assert.Equal(data.Length, source.Length);

        var chunks = await ReadAll(source);
        Assert.Equal(new[] { Limits.ChunkBytes, Limits.ChunkBytes, 1 }, chunks.Select(c => c.Length));
        Assert.True(source.TryRewind());
        Assert.Equal(data, (await ReadAll(source)).SelectMany(c => c).ToArray());
    }
}
