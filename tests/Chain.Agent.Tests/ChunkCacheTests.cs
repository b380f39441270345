using System.Security.Cryptography;

namespace Chain.Agent.Tests;

public sealed class ChunkCacheTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "chain-cache-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    private static (byte[] Sha, byte[] Data) Chunk(int seed, int size)
    {
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        return (SHA256.HashData(data), data);
    }

    private static string Hex(byte[] sha) => Convert.ToHexStringLower(sha);

    [Fact]
    public async Task Evicts_least_recently_used_by_bytes_and_never_exceeds_the_cap()
    {
        var cache = ChunkCache.Open(_dir, capacityBytes: 3000);
        var evicted = new List<string>();
        cache.Evicted += evicted.Add;
        var a = Chunk(1, 1000);
        var b = Chunk(2, 1000);
        var c = Chunk(3, 1000);
        var d = Chunk(4, 1500);
        Assert.True(await cache.PutAsync(a.Sha, a.Data));
        Assert.True(await cache.PutAsync(b.Sha, b.Data));
        Assert.True(await cache.PutAsync(c.Sha, c.Data));
        cache.Pin(Hex(a.Sha))!.Dispose(); // a is now the most recently used; b the least
        Assert.True(await cache.PutAsync(d.Sha, d.Data)); // needs 1500: evicts b, then c
        Assert.Equal([Hex(b.Sha), Hex(c.Sha)], evicted);
        Assert.True(cache.Contains(Hex(a.Sha)));
        Assert.True(cache.Contains(Hex(d.Sha)));
        Assert.Equal(2500, cache.UsedBytes);
        Assert.True(cache.UsedBytes <= cache.CapacityBytes);
        Assert.Equal(2, Directory.EnumerateFiles(_dir).Count(f => ChunkCache.IsChunkName(Path.GetFileName(f))));
    }

    [Fact]
    public async Task A_chunk_that_cannot_fit_is_refused_not_stored_over_the_cap()
    {
        var cache = ChunkCache.Open(_dir, capacityBytes: 2000);
        var a = Chunk(1, 1500);
        var big = Chunk(2, 2500);
        Assert.True(await cache.PutAsync(a.Sha, a.Data));
        await Assert.ThrowsAsync<CacheFullException>(() => cache.PutAsync(big.Sha, big.Data));
        // A pinned chunk is never evicted to make room.
        using (cache.Pin(Hex(a.Sha)))
        {
            var b = Chunk(3, 1000);
            await Assert.ThrowsAsync<CacheFullException>(() => cache.PutAsync(b.Sha, b.Data));
            Assert.True(cache.Contains(Hex(a.Sha)));
            Assert.Equal(1500, cache.UsedBytes);
        }
        var c = Chunk(4, 1000);
        Assert.True(await cache.PutAsync(c.Sha, c.Data)); // unpinned now: a goes
        Assert.False(cache.Contains(Hex(a.Sha)));
        Assert.Equal(1000, cache.UsedBytes);
    }

    [Fact]
    public async Task Data_not_matching_its_digest_is_not_stored()
    {
        var cache = ChunkCache.Open(_dir, capacityBytes: 10_000);
        var a = Chunk(1, 1000);
        var flipped = (byte[])a.Data.Clone();
        flipped[10] ^= 1;
        Assert.False(await cache.PutAsync(a.Sha, flipped));
        Assert.False(cache.Contains(Hex(a.Sha)));
        Assert.Equal(0, cache.UsedBytes);
    }

    [Fact]
    public async Task Restart_reverifies_every_file_and_deletes_damaged_and_partial_ones()
    {
        var cache = ChunkCache.Open(_dir, capacityBytes: 10_000);
        var good = Chunk(1, 1000);
        var bad = Chunk(2, 1000);
        Assert.True(await cache.PutAsync(good.Sha, good.Data));
        Assert.True(await cache.PutAsync(bad.Sha, bad.Data));
        string badPath = Path.Combine(_dir, Hex(bad.Sha));
        var bytes = await File.ReadAllBytesAsync(badPath);
        bytes[500] ^= 0x40;
        await File.WriteAllBytesAsync(badPath, bytes);
        await File.WriteAllBytesAsync(Path.Combine(_dir, Hex(good.Sha) + ".1234.tmp"), [1, 2, 3]);

        var reopened = ChunkCache.Open(_dir, capacityBytes: 10_000);
        Assert.True(reopened.Contains(Hex(good.Sha)));
        Assert.False(reopened.Contains(Hex(bad.Sha)));
        Assert.False(File.Exists(badPath));
        Assert.Equal(1, reopened.DiscardedAtStart);
        Assert.Equal(1000, reopened.UsedBytes);
        Assert.Empty(Directory.EnumerateFiles(_dir, "*.tmp"));
    }

    [Fact]
    public async Task Restart_with_a_smaller_capacity_evicts_down_to_it()
    {
        var cache = ChunkCache.Open(_dir, capacityBytes: 10_000);
        for (int i = 0; i < 5; i++)
        {
            var c = Chunk(i, 1000);
            Assert.True(await cache.PutAsync(c.Sha, c.Data));
        }
        var reopened = ChunkCache.Open(_dir, capacityBytes: 2500);
        Assert.Equal(2, reopened.Count);
        Assert.True(reopened.UsedBytes <= 2500);
        Assert.Equal(2, Directory.EnumerateFiles(_dir).Count(f => ChunkCache.IsChunkName(Path.GetFileName(f))));
    }
}
