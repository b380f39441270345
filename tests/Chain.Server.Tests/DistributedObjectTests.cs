using System.Security.Cryptography;
using Chain.Client;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Server.Tests;

/// <summary>
/// Large objects: content-addressed chunks on the chains their SHA-256 picks, a manifest on the key's chain, ranged
/// reads across chunk boundaries, dedup, the manifest check, and garbage collection.
/// </summary>
public class DistributedObjectTests
{
    private const int Chunk = Limits.ChunkBytesMin; // 256 KiB: many chunks from a few MiB

    private static async Task<List<ChunkEntry>> AllChunksAsync(InProcessCluster c) => (await ChunksByChainAsync(c)).Select(e => e.Entry).ToList();

    private static async Task<List<(uint Chain, ChunkEntry Entry)>> ChunksByChainAsync(InProcessCluster c)
    {
        var all = new List<(uint, ChunkEntry)>();
        foreach (ChainInfo chain in c.Master.Current.Chains)
        {
            using RpcChannel head = c.Channel(c.ChainNodes(chain.ChainId)[0]);
            ListChunksResponse page = await head.UnaryAsync(AdminMethods.ListChunks,
                new ListChunksRequest { ChainId = chain.ChainId, Epoch = chain.Epoch, Limit = 10_000 });
            Assert.False(page.Truncated);
            all.AddRange(page.Chunks.Select(e => (chain.ChainId, e)));
        }
        return all;
    }

    private static async Task<ObjectMeta> RecordAsync(InProcessCluster c, string bucket, string key)
    {
        uint chain = Placement.ChainFor(bucket, System.Text.Encoding.UTF8.GetBytes(key), c.Master.Current.Chains.Count);
        using RpcChannel tail = c.Channel(c.ChainNodes(chain)[^1]);
        ReplicaStateResponse state = await tail.UnaryAsync(AdminMethods.ReplicaState,
            new ReplicaStateRequest { ChainId = chain, Bucket = bucket, Key = ByteString.CopyFromUtf8(key) });
        Assert.True(state.ObjectPresent);
        return state.Object;
    }

    [Fact]
    public async Task A_large_object_is_stored_as_chunks_on_the_chains_their_ids_pick_and_read_back_whole()
    {
        await using var c = await InProcessCluster.StartAsync(nodes: 3, chains: 8);
        await using var client = c.CreateClient(chunkBytes: Chunk);
        await client.CreateBucketAsync("big");
        byte[] data = RandomNumberGenerator.GetBytes(12 * Chunk + 12345);

        PutResult put = await client.PutAsync("big", "blob", data);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), put.Sha256Hex);
        Assert.Equal(data, await client.GetBytesAsync("big", "blob"));

        ObjectMeta meta = await RecordAsync(c, "big", "blob");
        Assert.True(meta.Distributed);
        Assert.Equal(13, meta.Chunks.Count);
        int chains = c.Master.Current.Chains.Count;
        var usedChains = new HashSet<uint>();
        for (int i = 0; i < meta.Chunks.Count; i++)
        {
            ChunkRef chunk = meta.Chunks[i];
            Assert.Equal(SHA256.HashData(data.AsSpan(i * Chunk, (int)chunk.Size)), chunk.Sha256.ToByteArray());
            uint home = Placement.ChainForChunk(chunk.Sha256.Span, chains);
            usedChains.Add(home);
            // Every member of the chunk's chain holds it; a node outside that chain's key range does not list it.
            foreach (int node in c.ChainNodes(home))
            {
                using RpcChannel channel = c.Channel(node);
                GetChunkResponse got = await channel.UnaryAsync(StoreMethods.GetChunk, new GetChunkRequest { ChainId = home, Sha256 = chunk.Sha256 });
                Assert.Equal(chunk.Size, (uint)got.Data.Length);
            }
        }
        Assert.True(usedChains.Count >= 3, $"13 chunks landed on only {usedChains.Count} of {chains} chains");
        var stored = await ChunksByChainAsync(c);
        Assert.Equal(13, stored.Count);
        Assert.All(stored, e => Assert.Equal(Placement.ChainForChunk(e.Entry.Sha256.Span, chains), e.Chain));
    }

    [Fact]
    public async Task Identical_chunks_are_stored_once_across_objects_and_within_one()
    {
        await using var c = await InProcessCluster.StartAsync(nodes: 3, chains: 6);
        await using var client = c.CreateClient(chunkBytes: Chunk);
        await client.CreateBucketAsync("dedup");
        byte[] data = RandomNumberGenerator.GetBytes(6 * Chunk);
        await client.PutAsync("dedup", "one", data);
        int afterFirst = (await AllChunksAsync(c)).Count;
        Assert.Equal(6, afterFirst);

        await client.PutAsync("dedup", "two", data);
        Assert.Equal(afterFirst, (await AllChunksAsync(c)).Count);

        byte[] zeros = new byte[5 * Chunk]; // five identical chunks
        await client.PutAsync("dedup", "zeros", zeros);
        Assert.Equal(afterFirst + 1, (await AllChunksAsync(c)).Count);
        Assert.Equal(zeros, await client.GetBytesAsync("dedup", "zeros"));
        Assert.Equal(data, await client.GetBytesAsync("dedup", "two"));
    }

    [Fact]
    public async Task Ranged_reads_cross_chunk_boundaries_of_distributed_and_inline_objects()
    {
        await using var c = await InProcessCluster.StartAsync(nodes: 3, chains: 4);
        await using var client = c.CreateClient(chunkBytes: Chunk);
        await client.CreateBucketAsync("range");
        byte[] large = RandomNumberGenerator.GetBytes(5 * Chunk + 777);
        byte[] small = RandomNumberGenerator.GetBytes(Chunk - 5); // inline, sent in stream frames
        byte[] framed = RandomNumberGenerator.GetBytes(Chunk); // inline
        await client.PutAsync("range", "large", large);
        await client.PutAsync("range", "small", small);
        await client.PutAsync("range", "framed", framed);
        var random = new Random(42);
        foreach ((string key, byte[] content) in new[] { ("large", large), ("small", small), ("framed", framed) })
        {
            var ranges = new List<(long Offset, long? Length)>
            {
                (0, null), (0, 1), (content.Length - 1, null), (content.Length, null), (Chunk - 3, 10), (Chunk, Chunk), (1, content.Length + 100),
            };
            for (int i = 0; i < 12; i++)
            {
                long offset = random.NextInt64(0, content.Length);
                ranges.Add((offset, random.NextInt64(0, 3L * Chunk)));
            }
            foreach ((long offset, long? length) in ranges.Where(r => r.Offset <= content.Length))
            {
                using var buffer = new MemoryStream();
                ObjectInfo info = await client.GetRangeAsync("range", key, buffer, offset, length);
                long end = length is { } n ? Math.Min(content.Length, offset + n) : content.Length;
                Assert.Equal(content.AsSpan((int)offset, (int)(end - offset)).ToArray(), buffer.ToArray());
                Assert.Equal(content.Length, info.Size);
            }
            await Assert.ThrowsAsync<ChainArgumentException>(() => client.GetRangeAsync("range", key, new MemoryStream(), content.Length + 1, null));
        }
    }

    [Fact]
    public async Task A_reader_sees_the_whole_old_or_the_whole_new_object_while_it_is_replaced()
    {
        await using var c = await InProcessCluster.StartAsync(nodes: 3, chains: 4);
        await using var client = c.CreateClient(chunkBytes: Chunk);
        await client.CreateBucketAsync("swap");
        byte[][] versions = Enumerable.Range(0, 2).Select(_ => RandomNumberGenerator.GetBytes(4 * Chunk + 99)).ToArray();
        var hashes = versions.Select(v => Convert.ToHexStringLower(SHA256.HashData(v))).ToHashSet();
        await client.PutAsync("swap", "k", versions[0]);
        using var done = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        int reads = 0;
        Task writer = Task.Run(async () =>
        {
            for (int i = 1; i <= 12; i++)
                await client.PutAsync("swap", "k", versions[i % 2]);
        });
        var readers = Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            while (!writer.IsCompleted && !done.IsCancellationRequested)
            {
                byte[] got = await client.GetBytesAsync("swap", "k", done.Token);
                Assert.Contains(Convert.ToHexStringLower(SHA256.HashData(got)), hashes);
                Interlocked.Increment(ref reads);
            }
        })).ToArray();
        await writer;
        await Task.WhenAll(readers);
        Assert.True(reads > 0);
        Assert.Equal(versions[0], await client.GetBytesAsync("swap", "k"));
    }

    private static async Task<RpcException> CommitManifestRawAsync(InProcessCluster c, string bucket, string key, IEnumerable<ChunkRef> chunks, ulong size)
    {
        ClusterConfig config = c.Master.Current;
        uint chain = Placement.ChainFor(bucket, System.Text.Encoding.UTF8.GetBytes(key), config.Chains.Count);
        using RpcChannel head = c.Channel(c.ChainNodes(chain)[0]);
        using var call = head.ClientStreaming(StoreMethods.Put);
        await call.RequestStream.WriteAsync(new PutRequest
        {
            Header = new PutHeader
            {
                Routing = new Routing { ChainId = chain, Epoch = config.Chains[(int)chain].Epoch },
                Bucket = bucket,
                Key = ByteString.CopyFromUtf8(key),
                RequestId = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(16)),
            },
        });
        var commit = new PutCommit { Size = size, Sha256 = ByteString.CopyFrom(new byte[32]) };
        commit.Chunks.AddRange(chunks);
        await call.RequestStream.WriteAsync(new PutRequest { Commit = commit });
        await call.RequestStream.CompleteAsync();
        return await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
    }

    [Fact]
    public async Task A_manifest_naming_a_chunk_its_chain_does_not_hold_is_refused_and_nothing_becomes_visible()
    {
        await using var c = await InProcessCluster.StartAsync(nodes: 3, chains: 4);
        await using var client = c.CreateClient(chunkBytes: Chunk);
        await client.CreateBucketAsync("mani");
        var chunk = new ChunkRef { Sha256 = ByteString.CopyFrom(RandomNumberGenerator.GetBytes(32)), Size = 1000 };

        RpcException error = await CommitManifestRawAsync(c, "mani", "ghost", new[] { chunk }, 1000);

        Assert.Equal(StatusCode.FailedPrecondition, error.Status);
        Assert.Equal(ErrorKinds.MissingChunk, error.Trailers[ErrorTrailers.Kind]);
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.StatAsync("mani", "ghost"));
    }

    private static async Task<ByteString> PutChunkRawAsync(InProcessCluster c, byte[] data)
    {
        ClusterConfig config = c.Master.Current;
        byte[] id = SHA256.HashData(data);
        uint chain = Placement.ChainForChunk(id, config.Chains.Count);
        using RpcChannel head = c.Channel(c.ChainNodes(chain)[0]);
        PutChunkResponse response = await head.UnaryAsync(StoreMethods.PutChunk, new PutChunkRequest
        {
            Routing = new Routing { ChainId = chain, Epoch = config.Chains[(int)chain].Epoch },
            Sha256 = ByteString.CopyFrom(id),
            Data = ByteString.CopyFrom(data),
        });
        Assert.True(response.Present);
        return ByteString.CopyFrom(id);
    }

    [Fact]
    public async Task Garbage_collection_drops_unreferenced_chunks_after_the_grace_and_spares_referenced_and_young_ones()
    {
        TimeSpan grace = TimeSpan.FromSeconds(1);
        await using var c = await InProcessCluster.StartAsync(nodes: 3, chains: 4, chunkGcGrace: grace);
        await using var client = c.CreateClient(chunkBytes: Chunk);
        await client.CreateBucketAsync("gcb");
        byte[] doomed = RandomNumberGenerator.GetBytes(3 * Chunk);
        byte[] kept = RandomNumberGenerator.GetBytes(3 * Chunk + 1);
        byte[] small = RandomNumberGenerator.GetBytes(1000); // inline: its piece lives on the key's chain
        await client.PutAsync("gcb", "doomed", doomed);
        await client.PutAsync("gcb", "kept", kept);
        await client.PutAsync("gcb", "small", small);
        Assert.True(await client.DeleteAsync("gcb", "doomed"));
        int before = (await AllChunksAsync(c)).Count;
        Assert.Equal(3 + 4 + 1, before);

        // Young chunks survive even when nothing references them.
        GcReport first = await client.CollectGarbageAsync();
        Assert.Equal(3, first.Candidates);
        Assert.Equal(0, first.Deleted);

        // After the grace, the deleted object's chunks go; the others stay and read back.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        GcReport report;
        do
        {
            await Task.Delay(200, timeout.Token);
            report = await client.CollectGarbageAsync(timeout.Token);
        } while (report.Deleted == 0);
        Assert.Equal(3, report.Deleted);
        Assert.Equal(before - 3, (await AllChunksAsync(c)).Count);
        Assert.Equal(kept, await client.GetBytesAsync("gcb", "kept"));
        Assert.Equal(small, await client.GetBytesAsync("gcb", "small"));

        // An upload in flight: its chunk is young when the collection runs, and it commits afterwards.
        byte[] piece = RandomNumberGenerator.GetBytes(Chunk);
        ByteString id = await PutChunkRawAsync(c, piece);
        GcReport during = await client.CollectGarbageAsync();
        Assert.Equal(0, during.Deleted);
        Assert.Contains(await AllChunksAsync(c), e => e.Sha256 == id);

        // A chunk last touched more than half the grace ago is refused by a commit (a collection may take it).
        await Task.Delay(grace / 2 + TimeSpan.FromMilliseconds(200));
        RpcException stale = await CommitManifestRawAsync(c, "gcb", "late", new[] { new ChunkRef { Sha256 = id, Size = (uint)piece.Length } }, (ulong)piece.Length);
        Assert.Equal(ErrorKinds.MissingChunk, stale.Trailers[ErrorTrailers.Kind]);
        // The client's put of the same bytes touches or re-sends it and commits.
        byte[] twice = piece.Concat(piece).ToArray();
        await client.PutAsync("gcb", "late", twice);
        Assert.Equal(twice, await client.GetBytesAsync("gcb", "late"));
    }
}
