using Chain.Master;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Storage;
using Chain.Storage.Memory;
using Chain.Storage.RocksDb;
using Microsoft.Extensions.Logging.Abstractions;

namespace Chain.Server.Tests;

public class MasterStateTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "chain-master-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    private MasterService Open(out IKvEngine engine)
    {
        engine = RocksDbEngine.Open(_dir, new RocksDbOptions { ColumnFamilies = new[] { EngineMasterStateStore.ColumnFamily } });
        return new MasterService(new EngineMasterStateStore(engine), new MasterOptions { ExpectNodes = 3 }, TimeProvider.System, NullLogger<MasterService>.Instance);
    }

    private static RegisterRequest Node(string id, int port) => new() { Node = new NodeInfo { NodeId = id, Address = $"http://127.0.0.1:{port}" } };

    [Fact]
    public async Task Chain_table_and_buckets_survive_a_master_restart()
    {
        MasterService master = Open(out IKvEngine engine);
        await master.RegisterAsync(Node("n1", 1001), default);
        await master.RegisterAsync(Node("n2", 1002), default);
        Assert.Empty(master.Current.Chains);
        await master.RegisterAsync(Node("n3", 1003), default);
        Assert.Equal(3, master.Current.Chains.Count);
        await master.CreateBucketAsync(new BucketRequest { Name = "builds" }, default);
        ClusterConfig before = master.Current.Clone();
        engine.Dispose();

        MasterService reopened = Open(out IKvEngine engine2);
        using (engine2)
        {
            Assert.Equal(before, reopened.Current);
            Assert.Contains(reopened.Current.Buckets, b => b.Name == "builds");
            // A node re-registering at the same address changes nothing.
            ulong version = reopened.Current.Version;
            await reopened.RegisterAsync(Node("n2", 1002), default);
            Assert.Equal(version, reopened.Current.Version);
        }
    }

    [Fact]
    public async Task Every_change_bumps_the_version_and_bucket_creation_is_idempotent()
    {
        MasterService master = Open(out IKvEngine engine);
        using (engine)
        {
            ulong v0 = master.Current.Version;
            BucketResponse first = await master.CreateBucketAsync(new BucketRequest { Name = "alpha" }, default);
            Assert.False(first.Existed);
            Assert.Equal(v0 + 1, master.Current.Version);
            BucketResponse again = await master.CreateBucketAsync(new BucketRequest { Name = "alpha" }, default);
            Assert.True(again.Existed);
            Assert.Equal(v0 + 1, master.Current.Version);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("ab")]
    [InlineData("Upper")]
    [InlineData("has space")]
    [InlineData("-dash")]
    public async Task Invalid_bucket_names_are_rejected(string name)
    {
        MasterService master = Open(out IKvEngine engine);
        using (engine)
        {
            var e = await Assert.ThrowsAsync<RpcException>(() => master.CreateBucketAsync(new BucketRequest { Name = name }, default));
            Assert.Equal(StatusCode.InvalidArgument, e.Status);
            Assert.Empty(master.Current.Buckets);
        }
    }

    [Fact]
    public async Task Unknown_node_heartbeat_asks_to_register()
    {
        MasterService master = Open(out IKvEngine engine);
        using (engine)
        {
            var e = Assert.Throws<RpcException>(() => master.Heartbeat(new HeartbeatRequest { NodeId = "ghost" }));
            Assert.Equal(StatusCode.FailedPrecondition, e.Status);
            await Task.CompletedTask;
        }
    }
}
