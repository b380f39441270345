using Chain.Client;
using Chain.Master;
using Chain.Node;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Storage;
using Chain.Storage.Memory;
using Microsoft.Extensions.Logging.Abstractions;

namespace Chain.Server.Tests;

/// <summary>
/// Backup and restore on an in-process cluster: the tail-only snapshot RPC, the node layout a restore writes (equal to
/// the tails' committed state, applied sequence numbers included), the restored master state, and the master taking
/// a known node id at a new address.
/// </summary>
public sealed class BackupRestoreUnitTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "chain-backup-unit-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static Dictionary<string, string> Range(IKvEngine engine, string cf, uint chain)
    {
        byte[] prefix = NodeStore.ChainPrefix(chain);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        using IKvIterator it = engine.Iterate(cf, prefix, KvKeys.PrefixUpperBound(prefix));
        for (it.SeekToFirst(); it.Valid; it.Next())
            result[Convert.ToHexString(it.Key)] = Convert.ToHexString(it.Value);
        return result;
    }

    [Fact]
    public async Task Restored_node_data_equals_the_tails_committed_state_with_equal_applied_sequence_numbers()
    {
        await using InProcessCluster cluster = await InProcessCluster.StartAsync(nodes: 3, chains: 4);
        await using ChainClient client = cluster.CreateClient(chunkBytes: Limits.ChunkBytesMin);
        await client.CreateBucketAsync("bkt");
        var random = new Random(5);
        for (int i = 0; i < 30; i++)
        {
            var value = new byte[i % 6 == 0 ? Limits.ChunkBytesMin * 2 + i : 10 + i * 100];
            random.NextBytes(value);
            await client.PutAsync("bkt", $"k{i}", value);
        }
        await client.DeleteAsync("bkt", "k3");

        BackupStats stats = await ClusterBackup.RunAsync(client, _dir);
        Assert.Equal(29, stats.Objects);
        Assert.True(stats.Chunks > 0);

        ClusterConfig config = cluster.Master.Current;
        foreach (StorageNode node in cluster.Nodes)
        {
            var engine = new MemoryEngine(StorageNode.ColumnFamilies);
            NodeRestoreStats restored = await NodeRestore.RestoreAsync(engine, _dir, node.NodeId);
            Assert.Equal(config.Chains.Count(c => c.Nodes.Contains(node.NodeId)), restored.Chains);
            var store = new NodeStore(engine);
            Assert.Equal(node.NodeId, store.LoadNodeId());
            foreach (ChainInfo chain in config.Chains.Where(c => c.Nodes.Contains(node.NodeId)))
            {
                IKvEngine tail = cluster.Engines[cluster.Nodes.FindIndex(n => n.NodeId == chain.Nodes[^1])];
                foreach (string cf in new[] { NodeStore.Objects, NodeStore.Dedup, NodeStore.ChunkInfo, NodeStore.Chunks })
                    Assert.Equal(Range(tail, cf, chain.ChainId), Range(engine, cf, chain.ChainId));
                Assert.Empty(Range(engine, NodeStore.Log, chain.ChainId));
                Assert.Equal(new NodeStore(tail).LoadApplied(chain.ChainId), store.LoadApplied(chain.ChainId));
            }
            // Restoring over data is refused.
            await Assert.ThrowsAsync<InvalidOperationException>(() => NodeRestore.RestoreAsync(engine, _dir, node.NodeId));
        }
        await Assert.ThrowsAsync<ArgumentException>(() => NodeRestore.RestoreAsync(new MemoryEngine(StorageNode.ColumnFamilies), _dir, "nobody"));
    }

    [Fact]
    public async Task Only_the_tail_with_the_current_epoch_answers_a_snapshot()
    {
        await using InProcessCluster cluster = await InProcessCluster.StartAsync(nodes: 3, chains: 1);
        ChainInfo chain = cluster.Master.Current.Chains[0];
        var request = new SnapshotChainRequest { ChainId = 0, Epoch = chain.Epoch, ColumnFamilies = { "objects" } };

        async Task<RpcException> RefusedAsync(string nodeId, SnapshotChainRequest r)
        {
            using RpcChannel channel = cluster.Channel(cluster.Nodes.FindIndex(n => n.NodeId == nodeId));
            return await Assert.ThrowsAsync<RpcException>(async () =>
            {
                await foreach (SnapshotChainResponse _ in channel.ServerStreamingAsync(AdminMethods.SnapshotChain, r))
                {
                }
            });
        }

        Assert.Equal(StatusCode.FailedPrecondition, (await RefusedAsync(chain.Nodes[0], request)).Status);
        Assert.Equal(StatusCode.FailedPrecondition, (await RefusedAsync(chain.Nodes[1], request)).Status);
        Assert.Equal(StatusCode.FailedPrecondition, (await RefusedAsync(chain.Nodes[^1], new SnapshotChainRequest { ChainId = 0, Epoch = chain.Epoch + 5, ColumnFamilies = { "objects" } })).Status);
        Assert.Equal(StatusCode.InvalidArgument, (await RefusedAsync(chain.Nodes[^1], new SnapshotChainRequest { ChainId = 0, Epoch = chain.Epoch, ColumnFamilies = { "log" } })).Status);

        using RpcChannel tail = cluster.Channel(cluster.Nodes.FindIndex(n => n.NodeId == chain.Nodes[^1]));
        var messages = new List<SnapshotChainResponse>();
        await foreach (SnapshotChainResponse m in tail.ServerStreamingAsync(AdminMethods.SnapshotChain, request))
            messages.Add(m);
        Assert.True(messages[^1].Done);
    }

    [Fact]
    public void Restored_master_state_bumps_epochs_drops_syncing_and_former_nodes_and_takes_new_addresses()
    {
        var backup = new ClusterConfig { Version = 41, Replicas = 2 };
        backup.Chains.Add(new ChainInfo { ChainId = 0, Epoch = 7, Nodes = { "a", "bkt" }, Syncing = { "c" }, Former = { "c" } });
        backup.Chains.Add(new ChainInfo { ChainId = 1, Epoch = 3, Nodes = { "bkt", "c" } });
        foreach (string id in new[] { "a", "bkt", "c" })
            backup.Nodes.Add(new NodeStatus { Node = new NodeInfo { NodeId = id, Address = "http://10.0.0.1:1", Zone = "z" + id }, Alive = true, LastHeartbeatUnixMs = 5 });
        backup.Buckets.Add(new Chain.Protocol.V1.BucketInfo { Name = "x", State = BucketState.BucketDeleting });

        ClusterConfig restored = MasterRestore.Restored(backup, new Dictionary<string, string> { ["a"] = "http://127.0.0.1:9001", ["c"] = "http://127.0.0.1:9003" });

        Assert.Equal(7 + MasterRestore.EpochBump, restored.Chains[0].Epoch);
        Assert.Equal(3 + MasterRestore.EpochBump, restored.Chains[1].Epoch);
        Assert.Equal(new[] { "a", "bkt" }, restored.Chains[0].Nodes);
        Assert.Empty(restored.Chains[0].Syncing);
        Assert.Empty(restored.Chains[0].Former);
        Assert.Equal("http://127.0.0.1:9001", restored.Nodes[0].Node.Address);
        Assert.Equal("http://10.0.0.1:1", restored.Nodes[1].Node.Address);
        Assert.Equal("zc", restored.Nodes[2].Node.Zone);
        Assert.All(restored.Nodes, n => Assert.False(n.Alive));
        Assert.Equal(BucketState.BucketActive, restored.Buckets[0].State);
        Assert.True(restored.Version > backup.Version);
        Assert.Throws<ArgumentException>(() => MasterRestore.Restored(backup, new Dictionary<string, string> { ["zz"] = "http://127.0.0.1:1" }));
    }

    [Fact]
    public async Task Master_accepts_a_known_node_id_at_a_new_address_and_keeps_its_chains()
    {
        var master = new MasterService(new EngineMasterStateStore(new MemoryEngine(new[] { EngineMasterStateStore.ColumnFamily })),
            new MasterOptions { ExpectNodes = 1, Chains = 2 }, TimeProvider.System, NullLogger<MasterService>.Instance);
        await master.RegisterAsync(new RegisterRequest { Node = new NodeInfo { NodeId = "n1", Address = "http://127.0.0.1:7001" } }, CancellationToken.None);
        ClusterConfig before = master.Current;
        Assert.Equal(2, before.Chains.Count);

        await master.RegisterAsync(new RegisterRequest { Node = new NodeInfo { NodeId = "n1", Address = "http://127.0.0.1:8001" } }, CancellationToken.None);
        ClusterConfig after = master.Current;
        Assert.Single(after.Nodes);
        Assert.Equal("http://127.0.0.1:8001", after.Nodes[0].Node.Address);
        Assert.True(after.Version > before.Version);
        Assert.Equal(before.Chains, after.Chains);
    }
}
