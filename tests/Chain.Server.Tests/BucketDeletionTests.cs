using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Chain.Client;
using Chain.Master;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Storage.Memory;
using Microsoft.Extensions.Logging.Abstractions;

namespace Chain.Server.Tests;

/// <summary>DeleteBucket removes a bucket only when no chain holds an object of it, counting puts heads have sequenced.</summary>
public class BucketDeletionTests
{
    private static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>Waits until <paramref name="condition"/> holds; fails after <paramref name="timeout"/>.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(sw.Elapsed < timeout, $"timed out waiting until {what}");
            await Task.Delay(10);
        }
    }

    private static async Task<List<string>> ListKeysAsync(ChainClient client, string bucket)
    {
        var keys = new List<string>();
        await foreach (ObjectInfo o in client.ListAsync(bucket))
            keys.Add(o.Key);
        return keys;
    }

    [Fact]
    public async Task Deleting_a_bucket_that_holds_objects_fails_and_loses_nothing()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 4);
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("full");
        var keys = Enumerable.Range(0, 20).Select(i => $"obj-{i}").ToList();
        foreach (string k in keys)
            await client.PutAsync("full", k, Bytes("value of " + k));

        var error = await Assert.ThrowsAsync<BucketNotEmptyException>(() => client.DeleteBucketAsync("full"));

        Assert.Contains("not empty", error.Message);
        Assert.Equal("full", error.Bucket);
        ClusterConfig state = c.Master.Current;
        Assert.Equal(BucketState.BucketActive, state.Buckets.Single(b => b.Name == "full").State);
        foreach (string k in keys)
            Assert.Equal(Bytes("value of " + k), await client.GetBytesAsync("full", k));
        // Back to active: new puts are accepted again.
        await WaitUntilAsync(() => c.Nodes.All(n => n.Config!.Version == c.Master.Current.Version), TimeSpan.FromSeconds(5), "every node runs the revert");
        await client.PutAsync("full", "after", Bytes("x"));
    }

    [Fact]
    public async Task Deleting_a_bucket_after_removing_every_object_succeeds_and_a_recreated_bucket_is_empty()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 4);
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("tmp");
        await client.CreateBucketAsync("other");
        var keys = Enumerable.Range(0, 12).Select(i => $"k{i}").ToList();
        foreach (string k in keys)
            await client.PutAsync("tmp", k, Bytes(k));
        await client.PutAsync("other", "stays", Bytes("stays"));
        foreach (string k in keys)
            Assert.True(await client.DeleteAsync("tmp", k));

        Assert.True(await client.DeleteBucketAsync("tmp"));

        Assert.DoesNotContain(c.Master.Current.Buckets, b => b.Name == "tmp");
        // A head still running the deleting config refuses puts as deleting; once it runs the newer one, as unknown.
        await WaitUntilAsync(() => c.Nodes.All(n => n.Config!.Version == c.Master.Current.Version), TimeSpan.FromSeconds(5), "every node runs the removal");
        await Assert.ThrowsAsync<BucketNotFoundException>(() => client.PutAsync("tmp", "late", Bytes("late")));
        Assert.False(await client.DeleteBucketAsync("tmp"));
        Assert.Equal(Bytes("stays"), await client.GetBytesAsync("other", "stays"));
        Assert.True(await client.CreateBucketAsync("tmp"));
        Assert.Empty(await ListKeysAsync(client, "tmp"));
    }

    [Fact]
    public async Task While_a_head_cannot_be_asked_the_bucket_is_deleting_then_back_to_active_and_the_delete_is_unavailable()
    {
        // Without a failure detector the crashed node stays head of its chain, so the delete cannot complete.
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 3);
        using ChainClient client = c.CreateClient(TimeSpan.FromSeconds(5));
        await client.CreateBucketAsync("bkt");
        string crashed = c.Nodes[2].NodeId;
        await c.CrashNodeAsync(2);
        // A key whose chain's head is still up.
        string key = Enumerable.Range(0, 1000).Select(i => $"key{i}")
            .First(k => c.Master.Current.Chains[(int)Placement.ChainFor("bkt", Bytes(k), 3)].Nodes[0] != crashed);

        Task<BucketResponse> delete = c.Master.DeleteBucketAsync(new BucketRequest { Name = "bkt" }, CancellationToken.None);
        await WaitUntilAsync(() => c.Master.Current.Buckets.Single(b => b.Name == "bkt").State == BucketState.BucketDeleting,
            TimeSpan.FromSeconds(5), "the bucket is marked deleting");
        Assert.False(delete.IsCompleted);

        // Meanwhile: the name cannot be created again, a second delete is refused, and the live head refuses puts
        // once it runs the config that marks the bucket deleting.
        await Assert.ThrowsAsync<BucketDeletingException>(() => client.CreateBucketAsync("bkt"));
        await Assert.ThrowsAsync<BucketDeletingException>(() => client.DeleteBucketAsync("bkt"));
        ulong marked = c.Master.Current.Version;
        int head = c.Nodes.FindIndex(n => n.NodeId == c.Master.Current.Chains[(int)Placement.ChainFor("bkt", Bytes(key), 3)].Nodes[0]);
        await WaitUntilAsync(() => c.Nodes[head].Config!.Version >= marked, TimeSpan.FromSeconds(5), "the head runs the deleting config");
        await Assert.ThrowsAsync<BucketDeletingException>(() => client.PutAsync("bkt", key, Bytes("refused")));

        var error = await Assert.ThrowsAsync<RpcException>(() => delete);
        Assert.Equal(StatusCode.Unavailable, error.Status);
        Assert.Contains(crashed, error.Detail);
        Assert.Equal(BucketState.BucketActive, c.Master.Current.Buckets.Single(b => b.Name == "bkt").State);
        Assert.True(c.Master.Current.Version > marked);
    }

    [Fact]
    public async Task A_master_restarted_with_a_bucket_stuck_deleting_puts_it_back_to_active()
    {
        var engine = new MemoryEngine(new[] { EngineMasterStateStore.ColumnFamily });
        var store = new EngineMasterStateStore(engine);
        var saved = new ClusterConfig { Version = 7, Replicas = 3 };
        saved.Buckets.Add(new Chain.Protocol.V1.BucketInfo { Name = "stuck", CreatedUnixMs = 1, State = BucketState.BucketDeleting });
        saved.Buckets.Add(new Chain.Protocol.V1.BucketInfo { Name = "fine", CreatedUnixMs = 2 });
        await store.SaveAsync(saved);

        var master = new MasterService(store, new MasterOptions { ExpectNodes = 3 }, TimeProvider.System, NullLogger<MasterService>.Instance);

        Assert.All(master.Current.Buckets, b => Assert.Equal(BucketState.BucketActive, b.State));
        Assert.Equal(new[] { "stuck", "fine" }, master.Current.Buckets.Select(b => b.Name));
        Assert.Equal(8UL, master.Current.Version);
        // Usable at once: creating it is idempotent (it exists), not refused as deleting.
        Assert.True((await master.CreateBucketAsync(new BucketRequest { Name = "stuck" }, default)).Existed);
    }

    /// <summary>
    /// Writers put keys while DeleteBucket runs, in three modes: (0) some keys stay, so the delete must fail; (1) every
    /// key is deleted right after its put, so the delete can succeed once heads refuse new puts; (2) writers only put,
    /// starting a little after the delete, so a put that a head still sequences after the emptiness check would stay
    /// behind. If the delete succeeded, no put survived it: every acknowledged put had been deleted, and the bucket
    /// created again under the same name is empty. If it failed, the bucket holds exactly the acknowledged puts whose
    /// delete had not started, each readable with its value.
    /// </summary>
    [Fact]
    public async Task Concurrent_puts_either_make_the_bucket_delete_fail_or_are_refused()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 4);
        using ChainClient client = c.CreateClient(TimeSpan.FromSeconds(10));
        // (mode, delay in ms): modes 0 and 1 start the delete that long after the writers, mode 2 the writers that
        // long after the delete — spread around the time heads take to learn that the bucket is deleting.
        (int Mode, int DelayMs)[] rounds = [(0, 20), (0, 50), (1, 20), (1, 50), (1, 80), (2, 5), (2, 20), (2, 40), (2, 70), (2, 100), (2, 140)];
        const int Writers = 8, OpsPerWriterMax = 400;
        int succeeded = 0, failed = 0, refusedPuts = 0;
        for (int round = 0; round < rounds.Length; round++)
        {
            (int mode, int delayMs) = rounds[round];
            string bucket = $"race-{round}";
            await client.CreateBucketAsync(bucket);
            var live = new ConcurrentDictionary<string, string>(); // acknowledged and not (yet) being deleted
            using var stop = new CancellationTokenSource();
            async Task WriteAsync(int w)
            {
                for (int i = 0; i < OpsPerWriterMax && !stop.IsCancellationRequested; i++)
                {
                    string key = $"w{w}/k{i}", value = $"{bucket}/{key}";
                    try
                    {
                        await client.PutAsync(bucket, key, Bytes(value));
                    }
                    catch (Exception e) when (e is BucketDeletingException or BucketNotFoundException)
                    {
                        Interlocked.Increment(ref refusedPuts);
                        if (e is BucketNotFoundException)
                            return;
                        continue;
                    }
                    live[key] = value;
                    if (mode == 2 || (mode == 0 && (i + w) % 7 == 0))
                        continue;
                    live.TryRemove(key, out _);
                    await client.DeleteAsync(bucket, key);
                }
            }
            List<Task> writers;
            Task<bool> delete;
            if (mode == 2)
            {
                delete = client.DeleteBucketAsync(bucket);
                await Task.Delay(delayMs);
                writers = Enumerable.Range(0, Writers).Select(w => Task.Run(() => WriteAsync(w))).ToList();
            }
            else
            {
                writers = Enumerable.Range(0, Writers).Select(w => Task.Run(() => WriteAsync(w))).ToList();
                await Task.Delay(delayMs);
                delete = client.DeleteBucketAsync(bucket);
            }
            bool deleted;
            try
            {
                deleted = await delete;
            }
            catch (BucketNotEmptyException)
            {
                deleted = false;
            }
            stop.Cancel();
            await Task.WhenAll(writers);
            if (deleted)
            {
                succeeded++;
                Assert.Empty(live);
                Assert.True(await client.CreateBucketAsync(bucket));
                Assert.Empty(await ListKeysAsync(client, bucket));
            }
            else
            {
                failed++;
                foreach (var (key, value) in live)
                    Assert.Equal(Bytes(value), await client.GetBytesAsync(bucket, key));
                Assert.Equal(live.Keys.Order(StringComparer.Ordinal), (await ListKeysAsync(client, bucket)).Order(StringComparer.Ordinal));
            }
        }
        Console.WriteLine($"bucket delete race: {succeeded} deleted, {failed} refused as not empty, {refusedPuts} puts refused");
        Assert.Equal(rounds.Length, succeeded + failed);
    }
}
