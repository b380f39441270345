using System.Security.Cryptography;
using System.Text;
using Chain.Client;
using Chain.Node;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Storage;
using Chain.Storage.Memory;
using Chain.Storage.RocksDb;

namespace Chain.Server.Tests;

/// <summary>The normal-case chain protocol on an in-process cluster of three nodes over real loopback sockets.</summary>
public class ReplicationTests
{
    private static byte[] Key(string k) => Encoding.UTF8.GetBytes(k);

    private static ObjectMeta? ObjectOn(InProcessCluster c, int node, string bucket, string key)
    {
        uint chain = Placement.ChainFor(bucket, Key(key), c.Master.Current.Chains.Count);
        byte[]? bytes = c.Engines[node].Get("objects", NodeStoreKeys.Object(chain, bucket, Key(key)));
        return bytes is null ? null : ObjectMeta.Parser.ParseFrom(bytes);
    }

    [Fact]
    public async Task Acknowledged_write_is_readable_at_the_tail_and_durable_on_every_node()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync();
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("photos");
        byte[] value = RandomNumberGenerator.GetBytes(3 * Limits.StreamFrameBytes + 12345);

        PutResult put = await client.PutAsync("photos", "2026/cat.jpg", value);

        Assert.Equal(value.Length, put.Size);
        Assert.Equal(value, await client.GetBytesAsync("photos", "2026/cat.jpg"));
        uint chain = Placement.ChainFor("photos", Key("2026/cat.jpg"), c.Master.Current.Chains.Count);
        foreach (int node in c.ChainNodes(chain))
        {
            ObjectMeta? meta = ObjectOn(c, node, "photos", "2026/cat.jpg");
            Assert.NotNull(meta);
            Assert.Equal(put.Version, meta!.Version);
            Assert.Equal(4, meta.Chunks.Count);
            foreach (ChunkRef chunk in meta.Chunks)
                Assert.NotNull(c.Engines[node].Get("chunks", NodeStoreKeys.Chunk(chain, chunk.Sha256.ToByteArray())));
        }
        // Nodes outside the chain hold nothing of it (3 nodes, 3 replicas: there are none).
        Assert.Equal(3, c.ChainNodes(chain).Length);
    }

    [Fact]
    public async Task Sequence_order_holds_under_concurrent_writers()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 1);
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("order");
        const int writers = 16, perWriter = 25;
        var versions = new System.Collections.Concurrent.ConcurrentBag<(string Key, ulong Version, byte[] Value)>();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            for (int i = 0; i < perWriter; i++)
            {
                // Writers share keys so that order decides the final value.
                string key = $"k{i % 5}";
                byte[] value = Encoding.UTF8.GetBytes($"w{w}-i{i}");
                PutResult r = await client.PutAsync("order", key, value);
                versions.Add((key, r.Version, value));
            }
        })));

        // Every acknowledged write got its own sequence number.
        Assert.Equal(writers * perWriter, versions.Select(v => v.Version).Distinct().Count());
        ulong maxVersion = versions.Max(v => v.Version);
        foreach (int node in c.ChainNodes(0))
        {
            // Every node applied exactly the same prefix, and the same final value per key: the one with the highest version.
            Assert.True(ReadApplied(c.Engines[node], 0) >= maxVersion);
            foreach (var group in versions.GroupBy(v => v.Key))
            {
                var winner = group.MaxBy(v => v.Version);
                ObjectMeta? meta = ObjectOn(c, node, "order", group.Key);
                Assert.NotNull(meta);
                Assert.Equal(winner.Version, meta!.Version);
            }
        }
        Assert.Equal(Digest(c.Engines[0]), Digest(c.Engines[1]));
        Assert.Equal(Digest(c.Engines[1]), Digest(c.Engines[2]));
        foreach (var group in versions.GroupBy(v => v.Key))
            Assert.Equal(group.MaxBy(v => v.Version).Value, await client.GetBytesAsync("order", group.Key));
    }

    [Fact]
    public async Task A_retried_write_is_not_applied_twice()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync();
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("retry");
        ClusterConfig config = c.Master.Current;
        byte[] key = Key("same");
        uint chain = Placement.ChainFor("retry", key, config.Chains.Count);
        int head = c.ChainNodes(chain)[0];
        using RpcChannel channel = c.Channel(head);
        byte[] requestId = RawCalls.NewRequestId();
        byte[] data = Encoding.UTF8.GetBytes("payload");

        PutResponse first = await RawCalls.PutBytesAsync(channel, RawCalls.Header(config, "retry", key, requestId), data);
        ulong appliedAfterFirst = ReadApplied(c.Engines[head], chain);
        PutResponse second = await RawCalls.PutBytesAsync(channel, RawCalls.Header(config, "retry", key, requestId), data);

        Assert.False(first.Deduplicated);
        Assert.True(second.Deduplicated);
        Assert.Equal(first.Version, second.Version);
        Assert.Equal(appliedAfterFirst, ReadApplied(c.Engines[head], chain));

        // Concurrent duplicates: one applies, the others wait for it.
        byte[] rid = RawCalls.NewRequestId();
        PutResponse[] all = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ =>
            RawCalls.PutBytesAsync(channel, RawCalls.Header(config, "retry", key, rid), data)));
        Assert.Single(all.Select(r => r.Version).Distinct());
        Assert.Equal(7, all.Count(r => r.Deduplicated));
        Assert.Equal(appliedAfterFirst + 1, ReadApplied(c.Engines[head], chain));

        // The dedup record is on every node, so a future head can answer the retry too.
        foreach (int node in c.ChainNodes(chain))
            Assert.NotNull(c.Engines[node].Get("dedup", NodeStoreKeys.Dedup(chain, requestId)));
    }

    [Fact]
    public async Task Deletes_replicate_and_report_whether_the_object_existed()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync();
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("del");
        await client.PutAsync("del", "a", Encoding.UTF8.GetBytes("x"));
        Assert.True(await client.DeleteAsync("del", "a"));
        Assert.False(await client.DeleteAsync("del", "a"));
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.GetBytesAsync("del", "a"));
        uint chain = Placement.ChainFor("del", Key("a"), c.Master.Current.Chains.Count);
        foreach (int node in c.ChainNodes(chain))
            Assert.Null(ObjectOn(c, node, "del", "a"));
    }

    [Fact]
    public async Task Listing_merges_chains_in_key_order()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 4);
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("list");
        var keys = Enumerable.Range(0, 60).Select(i => $"dir/{i:D3}").Append("other/x").ToList();
        foreach (string k in keys)
            await client.PutAsync("list", k, Encoding.UTF8.GetBytes(k));

        var listed = new List<string>();
        await foreach (ObjectInfo o in client.ListAsync("list", "dir/"))
            listed.Add(o.Key);
        Assert.Equal(keys.Where(k => k.StartsWith("dir/", StringComparison.Ordinal)).OrderBy(k => k, StringComparer.Ordinal), listed);

        var after = new List<string>();
        await foreach (ObjectInfo o in client.ListAsync("list", "", startAfter: "dir/049"))
            after.Add(o.Key);
        Assert.Equal(keys.Where(k => string.CompareOrdinal(k, "dir/049") > 0).OrderBy(k => k, StringComparer.Ordinal), after);
        Assert.True(c.Master.Current.Chains.Count == 4);
    }

    [Fact]
    public async Task Empty_objects_and_exact_chunk_multiples_round_trip()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync();
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("sizes");
        foreach (int size in new[] { 0, 1, Limits.ChunkBytes, 2 * Limits.ChunkBytes, Limits.ChunkBytes + 1 })
        {
            byte[] value = RandomNumberGenerator.GetBytes(size);
            await client.PutAsync("sizes", $"s{size}", value);
            Assert.Equal(value, await client.GetBytesAsync("sizes", $"s{size}"));
            ObjectInfo info = await client.StatAsync("sizes", $"s{size}");
            Assert.Equal(size, info.Size);
            Assert.Equal(Convert.ToHexString(SHA256.HashData(value)), info.Sha256Hex, ignoreCase: true);
        }
    }

    [Fact]
    public async Task Acknowledged_writes_survive_restarting_every_node_on_rocksdb()
    {
        // Restart every node of a RocksDB-backed cluster in place (same engines reopened from disk) and read back.
        await using InProcessCluster c = await InProcessCluster.StartAsync(rocksDb: true);
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("durable");
        var written = new Dictionary<string, byte[]>();
        for (int i = 0; i < 30; i++)
        {
            byte[] v = RandomNumberGenerator.GetBytes(100 + i);
            await client.PutAsync("durable", $"k{i}", v);
            written[$"k{i}"] = v;
        }
        await c.RestartAllNodesAsync();

        foreach (int node in Enumerable.Range(0, 3))
            foreach (var (k, v) in written)
                Assert.Equal((ulong)v.Length, ObjectOn(c, node, "durable", k)!.Size);
        using ChainClient after = c.CreateClient();
        foreach (var (k, v) in written)
            Assert.Equal(v, await after.GetBytesAsync("durable", k));
        // The chain keeps working after the restart: sequence numbers continue, replication flows.
        PutResult next = await after.PutAsync("durable", "after-restart", Encoding.UTF8.GetBytes("yes"));
        uint chain = Placement.ChainFor("durable", Key("after-restart"), c.Master.Current.Chains.Count);
        foreach (int node in c.ChainNodes(chain))
            Assert.Equal(next.Version, ObjectOn(c, node, "durable", "after-restart")!.Version);
    }

    internal static ulong ReadApplied(IKvEngine engine, uint chain)
    {
        byte[]? b = engine.Get("meta", NodeStoreKeys.Applied(chain));
        return b is null ? 0 : System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(b);
    }

    /// <summary>Digest of the objects column family: identical replicas give identical digests.</summary>
    internal static string Digest(IKvEngine engine)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using IKvIterator it = engine.Iterate("objects");
        for (it.SeekToFirst(); it.Valid; it.Next())
        {
            hash.AppendData(it.Key);
            hash.AppendData(it.Value);
        }
        return Convert.ToHexString(hash.GetHashAndReset());
    }
}

/// <summary>The node's key layout, re-derived here so tests read replicas directly.</summary>
internal static class NodeStoreKeys
{
    public static byte[] Object(uint chain, string bucket, byte[] key) => NodeStore.ObjectKey(chain, bucket, key);
    public static byte[] Chunk(uint chain, byte[] sha) => NodeStore.ChunkKey(chain, sha);
    public static byte[] Dedup(uint chain, byte[] rid) => NodeStore.DedupKey(chain, rid);
    public static byte[] Applied(uint chain) => NodeStore.AppliedKey(chain);
}
