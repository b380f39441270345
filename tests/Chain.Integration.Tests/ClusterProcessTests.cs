using System.Security.Cryptography;
using System.Text;
using Chain.Client;
using Chain.Harness;

namespace Chain.Integration.Tests;

/// <summary>The chain protocol with real processes: one master and three storage nodes on loopback.</summary>
[Trait("Category", "Integration")]
public sealed class ClusterProcessTests : LocalClusterTest
{
    public ClusterProcessTests() : base("it")
    {
    }


    [Fact]
    public async Task Status_shows_every_chain_with_head_middle_and_tail()
    {
        using ChainClient client = Cluster.CreateClient();
        ClusterStatus status = await client.GetStatusAsync();
        Assert.Equal(3, status.Chains.Count);
        Assert.All(status.Chains, c => Assert.Equal(3, c.NodeIds.Count));
        Assert.All(status.Chains, c => Assert.Equal(3, c.NodeIds.Distinct().Count()));
        Assert.All(status.Nodes, n => Assert.True(n.Alive));
        // Each node is head of one chain and tail of another.
        Assert.Equal(3, status.Chains.Select(c => c.NodeIds[0]).Distinct().Count());
        Assert.Equal(3, status.Chains.Select(c => c.NodeIds[^1]).Distinct().Count());
    }

    [Fact]
    public async Task Large_file_streams_through_the_chain_byte_identical()
    {
        using ChainClient client = Cluster.CreateClient();
        await client.CreateBucketAsync("files");
        string source = Path.Combine(RootDirectory, "source.bin");
        string copy = Path.Combine(RootDirectory, "copy.bin");
        WriteRandomFile(source, 24 * 1024 * 1024 + 777);

        await using (FileStream input = File.OpenRead(source))
            await client.PutAsync("files", "dir/big.bin", input);
        await using (FileStream output = File.Create(copy))
            await client.GetAsync("files", "dir/big.bin", output);

        Assert.Equal(Sha256Of(source), Sha256Of(copy));
        ObjectInfo info = await client.StatAsync("files", "dir/big.bin");
        Assert.Equal(new FileInfo(source).Length, info.Size);
        Assert.Equal(Sha256Of(source), info.Sha256Hex, ignoreCase: true);
    }

    [Fact]
    public async Task Acknowledged_objects_survive_stopping_and_restarting_every_process()
    {
        var written = new Dictionary<string, byte[]>();
        using (ChainClient client = Cluster.CreateClient())
        {
            await client.CreateBucketAsync("keep");
            for (int i = 0; i < 40; i++)
            {
                byte[] value = RandomNumberGenerator.GetBytes(512 + i * 100);
                await client.PutAsync("keep", $"obj/{i}", value);
                written[$"obj/{i}"] = value;
            }
        }

        // Graceful stop of everything, then start again from disk.
        await Cluster.StopAllAsync();
        await Cluster.StartMasterAsync();
        for (int i = 0; i < Cluster.Nodes.Count; i++)
            await Cluster.StartNodeAsync(i);
        await AssertAllReadableAsync(written);

        // Hard kill of every node (no chance to flush anything), then start again.
        using (ChainClient client = Cluster.CreateClient())
        {
            for (int i = 40; i < 60; i++)
            {
                byte[] value = RandomNumberGenerator.GetBytes(256);
                await client.PutAsync("keep", $"obj/{i}", value);
                written[$"obj/{i}"] = value;
            }
        }
        for (int i = 0; i < Cluster.Nodes.Count; i++)
            await Cluster.KillNodeAsync(i);
        for (int i = 0; i < Cluster.Nodes.Count; i++)
            await Cluster.StartNodeAsync(i);
        await AssertAllReadableAsync(written);

        // And the chains still take writes.
        using ChainClient after = Cluster.CreateClient();
        await after.PutAsync("keep", "after", Encoding.UTF8.GetBytes("restart"));
        Assert.Equal("restart", Encoding.UTF8.GetString(await after.GetBytesAsync("keep", "after")));
    }

    private async Task AssertAllReadableAsync(Dictionary<string, byte[]> written)
    {
        using ChainClient client = Cluster.CreateClient();
        foreach (var (key, value) in written)
            Assert.Equal(value, await client.GetBytesAsync("keep", key));
        var listed = new List<string>();
        await foreach (ObjectInfo o in client.ListAsync("keep", "obj/"))
            listed.Add(o.Key);
        Assert.Equal(written.Keys.OrderBy(k => k, StringComparer.Ordinal), listed);
    }

    internal static void WriteRandomFile(string path, long size)
    {
        using FileStream f = File.Create(path);
        byte[] buffer = new byte[1 << 20];
        long left = size;
        while (left > 0)
        {
            int n = (int)Math.Min(buffer.Length, left);
            RandomNumberGenerator.Fill(buffer.AsSpan(0, n));
            f.Write(buffer, 0, n);
            left -= n;
        }
    }

    internal static string Sha256Of(string path)
    {
        using FileStream f = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(f));
    }
}

/// <summary>
/// The normal-case protocol across real processes: acknowledged writes are on every node of their chain, and
/// under concurrent writers every node of a chain applies the same sequence (same applied sequence number,
/// same object digest), with one distinct version per acknowledged write.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ReplicaAgreementTests : LocalClusterTest
{
    public ReplicaAgreementTests() : base("agree")
    {
    }


    [Fact]
    public async Task Concurrent_writers_leave_every_replica_identical_and_every_acknowledged_write_everywhere()
    {
        const int writers = 8, perWriter = 30;
        var clients = Enumerable.Range(0, writers).Select(_ => Cluster.CreateClient()).ToArray();
        try
        {
            await clients[0].CreateBucketAsync("agree");
            var acked = new System.Collections.Concurrent.ConcurrentBag<(string Key, ulong Version)>();
            await Task.WhenAll(clients.Select((client, w) => Task.Run(async () =>
            {
                for (int i = 0; i < perWriter; i++)
                {
                    string key = $"k{i % 7}";
                    PutResult r = await client.PutAsync("agree", key, Encoding.UTF8.GetBytes($"{w}:{i}"));
                    acked.Add((key, r.Version));
                }
            })));

            ClusterStatus status = await clients[0].GetStatusAsync();
            var addresses = status.Nodes.ToDictionary(n => n.NodeId, n => new Uri(n.Address));
            foreach (ChainView chain in status.Chains)
            {
                var states = new List<Chain.Protocol.V1.ReplicaStateResponse>();
                foreach (string nodeId in chain.NodeIds)
                {
                    using var channel = new Chain.Rpc.RpcChannel(addresses[nodeId]);
                    states.Add(await channel.UnaryAsync(Chain.Protocol.AdminMethods.ReplicaState,
                        new Chain.Protocol.V1.ReplicaStateRequest { ChainId = chain.ChainId }));
                }
                // The tail answered every acknowledged write, so all nodes agree once the writers are done.
                Assert.Single(states.Select(s => s.AppliedSeq).Distinct());
                Assert.Single(states.Select(s => Convert.ToHexString(s.ObjectsSha256.ToByteArray())).Distinct());
                Assert.Equal(Enumerable.Range(0, chain.NodeIds.Count), states.Select(s => s.Position));
            }

            // Versions are per-chain sequence numbers: distinct within a chain.
            Assert.Equal(writers * perWriter, acked.Select(a =>
                (Chain.Protocol.Placement.ChainFor("agree", Encoding.UTF8.GetBytes(a.Key), status.Chains.Count), a.Version)).Distinct().Count());
            foreach (var group in acked.GroupBy(a => a.Key))
            {
                ulong newest = group.Max(a => a.Version);
                uint chainId = Chain.Protocol.Placement.ChainFor("agree", Encoding.UTF8.GetBytes(group.Key), status.Chains.Count);
                foreach (string nodeId in status.Chains[(int)chainId].NodeIds)
                {
                    using var channel = new Chain.Rpc.RpcChannel(addresses[nodeId]);
                    var state = await channel.UnaryAsync(Chain.Protocol.AdminMethods.ReplicaState, new Chain.Protocol.V1.ReplicaStateRequest
                    {
                        ChainId = chainId, Bucket = "agree", Key = Google.Protobuf.ByteString.CopyFromUtf8(group.Key),
                    });
                    Assert.True(state.ObjectPresent, $"{group.Key} missing on {nodeId}");
                    Assert.Equal(newest, state.Object.Version);
                }
            }
        }
        finally
        {
            foreach (ChainClient c in clients)
                await c.DisposeAsync();
        }
    }
}
