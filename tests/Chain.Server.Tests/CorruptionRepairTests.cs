using System.Security.Cryptography;
using Chain.Client;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Server.Tests;

/// <summary>
/// A chunk damaged on one replica's disk (bytes flipped in its RocksDB files while the node was stopped): reads still
/// return the right data, the node reports the damage, and it repairs its copy from a healthy replica.
/// </summary>
public class CorruptionRepairTests
{
    private const int Chunk = Limits.ChunkBytesMin;

    /// <summary>Flips one byte of every occurrence of <paramref name="pattern"/> in the files of a directory; returns how many.</summary>
    private static int FlipBytes(string directory, byte[] pattern)
    {
        int flipped = 0;
        foreach (string file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories))
        {
            byte[] content = File.ReadAllBytes(file);
            int at = content.AsSpan().IndexOf(pattern);
            if (at < 0)
                continue;
            while (at >= 0)
            {
                content[at + pattern.Length / 2] ^= 0x5A;
                flipped++;
                int next = content.AsSpan(at + 1).IndexOf(pattern);
                at = next < 0 ? -1 : at + 1 + next;
            }
            File.WriteAllBytes(file, content);
        }
        return flipped;
    }

    private static async Task<HealthResponse> HealthAsync(InProcessCluster c, int node)
    {
        using RpcChannel channel = c.Channel(node);
        return await channel.UnaryAsync(AdminMethods.Health, new HealthRequest());
    }

    [Fact]
    public async Task A_chunk_flipped_on_disk_is_detected_skipped_for_reads_reported_and_repaired_from_a_healthy_replica()
    {
        await using var c = await InProcessCluster.StartAsync(nodes: 3, chains: 3, rocksDb: true);
        await using var client = c.CreateClient(chunkBytes: Chunk);
        await client.CreateBucketAsync("scrub");
        byte[] data = RandomNumberGenerator.GetBytes(4 * Chunk + 10);
        await client.PutAsync("scrub", "obj", data);

        // The first chunk: its chain, and one replica of it (not the head, to show any member can be damaged).
        byte[] first = data.AsSpan(0, Chunk).ToArray();
        byte[] id = SHA256.HashData(first);
        uint chain = Placement.ChainForChunk(id, c.Master.Current.Chains.Count);
        int victim = c.ChainNodes(chain)[^1];
        await c.StopNodeAsync(victim);
        int flipped = FlipBytes(c.NodeDirectory(victim)!, first.AsSpan(Chunk / 2, 64).ToArray());
        Assert.True(flipped >= 1, "the chunk's bytes were not found in the stopped node's files");
        await c.StartStoppedNodeAsync(victim);

        // Reads return the right data whichever replica they reach.
        for (int i = 0; i < 6; i++)
            Assert.Equal(data, await client.GetBytesAsync("scrub", "obj"));

        // Asked directly, the damaged replica refuses to serve its copy and reports it...
        using (RpcChannel direct = c.Channel(victim))
        {
            var request = new GetChunkRequest { ChainId = chain, Sha256 = ByteString.CopyFrom(id) };
            RpcException refused;
            try
            {
                await direct.UnaryAsync(StoreMethods.GetChunk, request);
                refused = null!;
            }
            catch (RpcException e)
            {
                refused = e;
            }
            // (a read above may already have repaired it: then the copy it serves must be intact)
            if (refused is not null)
            {
                Assert.Equal(StatusCode.DataLoss, refused.Status);
                Assert.Equal(ErrorKinds.CorruptReplica, refused.Trailers[ErrorTrailers.Kind]);
            }

            // ...and repairs it from a healthy replica.
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            HealthResponse health;
            while ((health = await HealthAsync(c, victim)).ChunksRepaired == 0)
                await Task.Delay(50, timeout.Token);
            Assert.True(health.CorruptChunksDetected >= 1);
            Assert.Contains(health.RecentCorruptions, line => line.Contains(Convert.ToHexStringLower(id)));
            GetChunkResponse repaired = await direct.UnaryAsync(StoreMethods.GetChunk, request);
            Assert.Equal(first, repaired.Data.ToByteArray());
        }

        // The other replicas never saw damage; a scrub of everything now finds nothing more.
        IReadOnlyList<NodeIntegrity> scrub = await client.CheckIntegrityAsync(scrub: true);
        Assert.All(scrub, n => Assert.Equal(0, n.ScrubCorrupt));
        Assert.Equal(3, scrub.Count);
        Assert.Equal(data, await client.GetBytesAsync("scrub", "obj"));
    }

    [Fact]
    public async Task A_scrub_finds_and_repairs_damage_no_read_has_touched()
    {
        await using var c = await InProcessCluster.StartAsync(nodes: 3, chains: 2, rocksDb: true);
        await using var client = c.CreateClient(chunkBytes: Chunk);
        await client.CreateBucketAsync("scrub");
        byte[] small = RandomNumberGenerator.GetBytes(20_000); // an inline object: its piece is on the key's chain
        await client.PutAsync("scrub", "small", small);
        uint chain = Placement.ChainFor("scrub", "small"u8, c.Master.Current.Chains.Count);
        int victim = c.ChainNodes(chain)[1];
        await c.StopNodeAsync(victim);
        Assert.True(FlipBytes(c.NodeDirectory(victim)!, small.AsSpan(5000, 64).ToArray()) >= 1);
        await c.StartStoppedNodeAsync(victim);

        IReadOnlyList<NodeIntegrity> scrub = await client.CheckIntegrityAsync(scrub: true);

        NodeIntegrity damaged = Assert.Single(scrub, n => n.ScrubCorrupt > 0);
        Assert.Equal(c.Nodes[victim].NodeId, damaged.NodeId);
        Assert.Equal(1, damaged.ScrubRepaired);
        IReadOnlyList<NodeIntegrity> again = await client.CheckIntegrityAsync(scrub: true);
        Assert.All(again, n => Assert.Equal(0, n.ScrubCorrupt));
        Assert.Equal(small, await client.GetBytesAsync("scrub", "small"));
    }
}
