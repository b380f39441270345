using Chain.Client.Internal;
using Chain.Protocol;
using Chain.Protocol.V1;

namespace Chain.Client.Tests;

public class ConfigCacheTests
{
    [Fact]
    public async Task Concurrent_refreshes_are_coalesced_into_one_fetch()
    {
        var release = new TaskCompletionSource<ClusterConfig>(TaskCreationOptions.RunContinuationsAsynchronously);
        int fetches = 0;
        var cache = new ConfigCache(_ =>
        {
            Interlocked.Increment(ref fetches);
            return release.Task;
        });

        var waiters = Enumerable.Range(0, 20).Select(i => cache.GetAsync(fresh: i % 2 == 0, CancellationToken.None)).ToList();
        release.SetResult(FakeTransport.Cluster(2, 3, version: 4));
        var snapshots = await Task.WhenAll(waiters);

        Assert.Equal(1, fetches);
        Assert.All(snapshots, s => Assert.Equal(4ul, s.Version));
    }

    [Fact]
    public async Task Invalidation_with_an_older_version_than_cached_does_not_refetch()
    {
        ulong version = 1;
        int fetches = 0;
        var cache = new ConfigCache(_ =>
        {
            fetches++;
            return Task.FromResult(FakeTransport.Cluster(1, 1, version: version));
        });

        Assert.Equal(1ul, (await cache.GetAsync(false, CancellationToken.None)).Version);
        Assert.Equal(1ul, (await cache.GetAsync(false, CancellationToken.None)).Version);
        Assert.Equal(1, fetches);

        version = 2;
        cache.Invalidate(1);
        Assert.Equal(2ul, (await cache.GetAsync(false, CancellationToken.None)).Version);
        Assert.Equal(2, fetches);

        cache.Invalidate(1); // someone who routed with version 1 failed; 2 is already cached
        Assert.Equal(2ul, (await cache.GetAsync(false, CancellationToken.None)).Version);
        Assert.Equal(2, fetches);
    }

    [Fact]
    public async Task A_failed_fetch_reaches_the_waiters_and_the_next_call_fetches_again()
    {
        int fetches = 0;
        var cache = new ConfigCache(_ =>
        {
            fetches++;
            return fetches == 1
                ? Task.FromException<ClusterConfig>(FakeTransport.Error(Chain.Rpc.StatusCode.Unavailable, null))
                : Task.FromResult(FakeTransport.Cluster(1, 1));
        });

        await Assert.ThrowsAsync<Chain.Rpc.RpcException>(() => cache.GetAsync(false, CancellationToken.None));
        Assert.NotNull(await cache.GetAsync(false, CancellationToken.None));
        Assert.Equal(2, fetches);
    }

    [Fact]
    public async Task A_waiter_that_gives_up_does_not_cancel_the_shared_fetch()
    {
        var release = new TaskCompletionSource<ClusterConfig>(TaskCreationOptions.RunContinuationsAsynchronously);
        var cache = new ConfigCache(_ => release.Task);
        using var cts = new CancellationTokenSource();

        var impatient = cache.GetAsync(false, cts.Token);
        var patient = cache.GetAsync(false, CancellationToken.None);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => impatient);
        release.SetResult(FakeTransport.Cluster(1, 1, version: 9));

        Assert.Equal(9ul, (await patient).Version);
    }

    [Fact]
    public async Task A_stale_table_is_still_served_while_the_master_is_unreachable_and_replaced_once_it_answers()
    {
        bool masterUp = true;
        ulong version = 1;
        int fetches = 0;
        var cache = new ConfigCache(_ =>
        {
            Interlocked.Increment(ref fetches);
            return masterUp
                ? Task.FromResult(FakeTransport.Cluster(1, 1, version: version))
                : Task.FromException<ClusterConfig>(FakeTransport.Error(Chain.Rpc.StatusCode.Unavailable, null));
        });
        Assert.Equal(1ul, (await cache.GetAsync(false, CancellationToken.None)).Version);

        masterUp = false;
        cache.Invalidate(1);
        // The first caller after the invalidation learns that the master is away ...
        await Assert.ThrowsAsync<Chain.Rpc.RpcException>(() => cache.GetAsync(false, CancellationToken.None));
        // ... later callers route with the table they have, without waiting for the master.
        for (int i = 0; i < 100; i++)
            Assert.Equal(1ul, (await cache.GetAsync(false, CancellationToken.None)).Version);
        Assert.True(fetches <= 3, $"background fetches are paced while the master is away, not one per call ({fetches})");
        // An explicit fresh request still needs the master.
        await Assert.ThrowsAsync<Chain.Rpc.RpcException>(() => cache.GetAsync(true, CancellationToken.None));

        masterUp = true;
        version = 2;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while ((await cache.GetAsync(false, CancellationToken.None)).Version != 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "the master's new table was never fetched after it came back");
            await Task.Delay(20);
        }
    }

    [Fact]
    public void Offer_takes_only_newer_configs()
    {
        var cache = new ConfigCache(_ => Task.FromResult(new ClusterConfig()));
        cache.Offer(FakeTransport.Cluster(1, 1, version: 5));
        cache.Offer(FakeTransport.Cluster(1, 1, version: 3));
        Assert.Equal(5ul, cache.Current!.Version);
    }

    [Fact]
    public void Writes_route_to_the_head_and_reads_to_the_tail_of_the_keys_chain()
    {
        var snapshot = new ClusterSnapshot(FakeTransport.Cluster(chains: 4, replicas: 3, epoch: 17));
        for (int i = 0; i < 50; i++)
        {
            var key = Validation.EncodeKey($"key-{i}");
            uint chain = Placement.ChainFor("bkt", key, 4);

            var write = snapshot.RouteKey("bkt", key, write: true);
            var read = snapshot.RouteKey("bkt", key, write: false);

            Assert.Equal(chain, write.ChainId);
            Assert.Equal(chain, read.ChainId);
            Assert.Equal(17ul, write.Epoch);
            Assert.Equal($"n{chain * 3}", write.NodeId);
            Assert.Equal($"n{chain * 3 + 2}", read.NodeId);
            Assert.Equal(FakeTransport.Address((int)chain * 3), write.Address);
            Assert.Equal(FakeTransport.Address((int)chain * 3 + 2), read.Address);
        }
    }

    [Fact]
    public void A_cluster_without_chains_or_with_unknown_nodes_is_not_ready()
    {
        var empty = new ClusterSnapshot(new ClusterConfig { Version = 1 });
        Assert.Throws<ClusterNotReadyException>(() => empty.RouteKey("bkt", "k"u8, write: true));

        var config = FakeTransport.Cluster(1, 2);
        config.Nodes.RemoveAt(1); // the tail's address is unknown
        var missing = new ClusterSnapshot(config);
        Assert.Equal("n0", missing.RouteKey("bkt", "k"u8, write: true).NodeId);
        Assert.Throws<ClusterNotReadyException>(() => missing.RouteKey("bkt", "k"u8, write: false));
    }
}
