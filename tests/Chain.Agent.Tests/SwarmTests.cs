using Chain.Protocol.V1;
using Chain.Rpc;
using Kind = Chain.Protocol.V1.Outcome.Types.Kind;

namespace Chain.Agent.Tests;

/// <summary>Real agents (in process, real sockets) against a real cluster, directed by a scripted tracker.</summary>
[Collection(ClusterCollection.Name)]
public sealed class SwarmTests(ClusterFixture fixture)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    /// <summary>Both transports between peers: the data port (raw TCP, the default) and Peer.GetChunk over RPC.</summary>
    public static TheoryData<int> Transports => new() { 0, -1 };

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task A_corrupt_peer_never_makes_a_client_accept_bad_data_and_the_download_completes_from_the_store(int dataPort)
    {
        Environment.SetEnvironmentVariable("CHAIN_ALLOW_UNSAFE_TEST_BREAKS", "1");
        var (key, content) = await fixture.PutObjectAsync(seed: 11 + 100 * -dataPort, size: 2 * 1024 * 1024 + 1000);
        await using var tracker = await ScriptedTracker.StartAsync();
        // The seeder fills its cache through the tracker (from the store), so the tracker knows where it is.
        await using var corrupt = await PeerAgent.StartAsync(fixture.AgentOptions("corrupt", tracker.Address) with { UnsafeTestCorruptUploads = true, DataPort = dataPort });
        Assert.Equal(dataPort == 0, corrupt.DataEndPoint is not null);
        await ClusterFixture.SeedAsync(corrupt, key);
        // Every chunk's first source is the corrupt peer; any later one is the store.
        tracker.Choose = (_, _, attempt) => attempt == 0 ? corrupt.PeerId : "store";
        await using var client = await PeerAgent.StartAsync(fixture.AgentOptions("client", tracker.Address));

        var (data, meta, progress) = await ClusterFixture.FetchAsync(client.Address, key, Timeout);

        Assert.Equal(ClusterFixture.Sha(content), ClusterFixture.Sha(data));
        Assert.Equal(content.Length, data.Length);
        Assert.Equal(ClusterFixture.Sha(content), Convert.ToHexStringLower(meta.Sha256.Span));
        int chunks = (int)progress.ChunkCount;
        Assert.Equal(9, chunks);
        Assert.True(corrupt.BytesUploaded > 0, "the corrupt peer served nothing: the test did not exercise verification");
        Assert.Equal((uint)chunks, progress.RefetchedAfterVerification);
        Assert.Equal(0UL, progress.BytesFromPeers);
        Assert.Equal((ulong)content.Length, progress.BytesFromStore);
        Assert.True(client.Downloads.Single().UsedTrackerThroughout);
        var outcomes = tracker.Read(t => t.Outcomes.Where(o => o.Peer == client.PeerId).Select(o => o.Outcome).ToList());
        for (uint chunk = 0; chunk < chunks; chunk++)
        {
            var kinds = outcomes.Where(o => o.Chunk == chunk).Select(o => o.Kind).ToList();
            Assert.Equal([Kind.VerificationFailed, Kind.Done], kinds);
        }
        // Nothing unverified reached the cache: every file's content matches its name.
        foreach (var file in Directory.EnumerateFiles(client.Cache.Directory).Where(f => ChunkCache.IsChunkName(Path.GetFileName(f))))
            Assert.Equal(Path.GetFileName(file), ClusterFixture.Sha(await File.ReadAllBytesAsync(file)));
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task A_peer_killed_mid_transfer_does_not_stall_the_others(int dataPort)
    {
        var (key, content) = await fixture.PutObjectAsync(seed: 12 + 100 * -dataPort, size: 2 * 1024 * 1024);
        await using var tracker = await ScriptedTracker.StartAsync();
        // A slow seeder: 128 KiB/s over all its uploads, so transfers are surely in flight when it dies; upload slots
        // for both downloaders' four transfers each, so it serves both.
        var seeder = await PeerAgent.StartAsync(fixture.AgentOptions("seeder", tracker.Address) with
        {
            UploadBytesPerSecond = 128 * 1024, FrameBytes = 16 * 1024, DataPort = dataPort, MaxUploads = 8,
        });
        try
        {
            await ClusterFixture.SeedAsync(seeder, key);
            tracker.Choose = (_, _, attempt) => attempt == 0 ? seeder.PeerId : "store";
            await using var first = await PeerAgent.StartAsync(fixture.AgentOptions("first", tracker.Address));
            await using var second = await PeerAgent.StartAsync(fixture.AgentOptions("second", tracker.Address));
            var fetches = new[] { first, second }.Select(a => ClusterFixture.FetchAsync(a.Address, key, Timeout)).ToArray();

            await ClusterFixture.WaitUntilAsync(() => seeder.UploadsInFlight > 0 && seeder.BytesUploaded > 0 && ReceivingFromPeer(first) && ReceivingFromPeer(second),
                TimeSpan.FromSeconds(30), "both downloaders receiving chunk bytes from the seeder");
            long uploadedBeforeKill = seeder.BytesUploaded;
            await seeder.StopAsync(); // connections cut at once
            Assert.True(uploadedBeforeKill < 2L * content.Length, "the seeder had finished before it was killed");

            var results = await Task.WhenAll(fetches).WaitAsync(TimeSpan.FromSeconds(60));
            foreach (var (data, _, _) in results)
                Assert.Equal(ClusterFixture.Sha(content), ClusterFixture.Sha(data));
            Assert.True(first.Downloads.Single().UsedTrackerThroughout);
            Assert.True(second.Downloads.Single().UsedTrackerThroughout);
            var failed = tracker.Read(t => t.Outcomes.Where(o => o.Outcome.Kind == Kind.SourceFailed).Select(o => o.Peer).Distinct().ToList());
            Assert.Contains(first.PeerId, failed);
            Assert.Contains(second.PeerId, failed);
        }
        finally
        {
            await seeder.DisposeAsync();
        }
    }

    private static bool ReceivingFromPeer(PeerAgent agent) =>
        agent.Status().Downloads.Any(d => d.Waiting.Any(w => w.Source.StartsWith("peer ", StringComparison.Ordinal) && w.BytesReceived > 0));

    [Fact]
    public async Task A_resumed_download_fetches_only_missing_chunks()
    {
        var (key, content) = await fixture.PutObjectAsync(seed: 13, size: 2 * 1024 * 1024);
        var options = fixture.AgentOptions("resume", tracker: null);
        string peerId;
        const int Half = 4;
        await using (var tracker = await ScriptedTracker.StartAsync())
        {
            tracker.Choose = (_, chunk, _) => chunk < Half ? "store" : null; // the rest never gets a source: "interrupted"
            var agent = await PeerAgent.StartAsync(options with { Tracker = tracker.Address });
            peerId = agent.PeerId;
            var download = await agent.DownloadAsync(ClusterFixture.Bucket, key);
            await ClusterFixture.WaitUntilAsync(() => download.ChunksDone == Half, TimeSpan.FromSeconds(30), "the first half downloaded");
            await agent.DisposeAsync(); // interrupted
            Assert.False(download.Completion.IsCompletedSuccessfully);
        }

        await using var tracker2 = await ScriptedTracker.StartAsync();
        await using var restarted = await PeerAgent.StartAsync(options with { Tracker = tracker2.Address });
        Assert.Equal(peerId, restarted.PeerId);
        var (data, _, progress) = await ClusterFixture.FetchAsync(restarted.Address, key, Timeout);

        Assert.Equal(ClusterFixture.Sha(content), ClusterFixture.Sha(data));
        long half = Half * ClusterFixture.ChunkBytes;
        Assert.Equal((ulong)half, progress.BytesFromCache);
        Assert.Equal((ulong)(content.Length - half), progress.BytesFromStore);
        var assigned = tracker2.Read(t => t.Assigned.Select(a => a.Chunk).OrderBy(c => c).ToList());
        Assert.Equal([4u, 5u, 6u, 7u], assigned);
        var announced = tracker2.Read(t => t.Announces[0].Have.OrderBy(c => c).ToList());
        Assert.Equal([0u, 1u, 2u, 3u], announced);
        Assert.True(restarted.Downloads.Single().UsedTrackerThroughout);
    }

    [Fact]
    public async Task A_download_to_a_file_writes_fetched_and_already_cached_chunks_and_leaves_no_part_file()
    {
        var (key, content) = await fixture.PutObjectAsync(seed: 18, size: 2 * 1024 * 1024 + 99);
        var options = fixture.AgentOptions("to-file", tracker: null);
        const int Cached = 3;
        await using (var tracker = await ScriptedTracker.StartAsync())
        {
            tracker.Choose = (_, chunk, _) => chunk < Cached ? "store" : null; // the rest waits: interrupted below
            var agent = await PeerAgent.StartAsync(options with { Tracker = tracker.Address });
            var first = await agent.DownloadAsync(ClusterFixture.Bucket, key);
            await ClusterFixture.WaitUntilAsync(() => first.ChunksDone == Cached, TimeSpan.FromSeconds(30), "the first chunks cached");
            await agent.DisposeAsync();
        }

        await using var tracker2 = await ScriptedTracker.StartAsync();
        await using var restarted = await PeerAgent.StartAsync(options with { Tracker = tracker2.Address });
        string path = Path.Combine(fixture.NewDir("to-file-out"), "object.bin");
        using var timeout = new CancellationTokenSource(Timeout);
        var download = await restarted.DownloadToFileAsync(ClusterFixture.Bucket, key, path, timeout.Token);

        Assert.Equal(ClusterFixture.Sha(content), ClusterFixture.Sha(await File.ReadAllBytesAsync(path)));
        Assert.Equal(Cached * ClusterFixture.ChunkBytes, download.BytesFromCache); // copied from the cache, not fetched
        Assert.Equal(content.Length - Cached * ClusterFixture.ChunkBytes, download.BytesFromStore);
        Assert.False(File.Exists(path + ".part"));
    }

    [Fact]
    public async Task A_download_to_a_file_that_does_not_finish_leaves_nothing_at_the_path()
    {
        var (key, _) = await fixture.PutObjectAsync(seed: 19, size: 1024 * 1024);
        await using var tracker = await ScriptedTracker.StartAsync();
        tracker.Choose = (_, chunk, _) => chunk == 0 ? "store" : null; // never completes
        await using var agent = await PeerAgent.StartAsync(fixture.AgentOptions("to-file-cut", tracker.Address));
        string path = Path.Combine(fixture.NewDir("to-file-cut-out"), "object.bin");
        using var cut = new CancellationTokenSource();
        var copy = agent.DownloadToFileAsync(ClusterFixture.Bucket, key, path, cut.Token);
        await ClusterFixture.WaitUntilAsync(() => agent.Downloads.Any(d => d.ChunksDone == 1), TimeSpan.FromSeconds(30), "the first chunk written");
        Assert.True(File.Exists(path + ".part"));
        cut.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => copy);
        Assert.False(File.Exists(path));
        Assert.False(File.Exists(path + ".part"));
    }

    [Fact]
    public async Task Cache_eviction_keeps_within_its_byte_cap_and_tells_the_tracker()
    {
        var (key1, content1) = await fixture.PutObjectAsync(seed: 14, size: 1024 * 1024);
        var (key2, content2) = await fixture.PutObjectAsync(seed: 15, size: 1024 * 1024);
        var (key3, _) = await fixture.PutObjectAsync(seed: 16, size: 2 * 1024 * 1024);
        await using var tracker = await ScriptedTracker.StartAsync();
        long cap = 1536 * 1024;
        await using var agent = await PeerAgent.StartAsync(fixture.AgentOptions("evict", tracker.Address) with { CacheBytes = cap, SeedInterval = TimeSpan.FromMilliseconds(200) });
        long maxSeen = 0;
        using var stopSampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stopSampling.IsCancellationRequested)
            {
                maxSeen = Math.Max(maxSeen, agent.Cache.UsedBytes);
                await Task.Delay(2);
            }
        });

        var (data1, _, _) = await ClusterFixture.FetchAsync(agent.Address, key1, Timeout);
        var (data2, _, _) = await ClusterFixture.FetchAsync(agent.Address, key2, Timeout);
        // Larger than the whole cache: refused, and the cache still within its cap.
        var tooBig = await Assert.ThrowsAsync<RpcException>(() => ClusterFixture.FetchAsync(agent.Address, key3, Timeout));
        stopSampling.Cancel();
        await sampler;

        Assert.Equal(ClusterFixture.Sha(content1), ClusterFixture.Sha(data1));
        Assert.Equal(ClusterFixture.Sha(content2), ClusterFixture.Sha(data2));
        Assert.Contains("does not fit", tooBig.Message);
        Assert.True(maxSeen <= cap, $"cache held {maxSeen} bytes, cap {cap}");
        long onDisk = Directory.EnumerateFiles(agent.Cache.Directory).Where(f => ChunkCache.IsChunkName(Path.GetFileName(f))).Sum(f => new FileInfo(f).Length);
        Assert.True(onDisk <= cap, $"{onDisk} bytes of chunk files, cap {cap}");
        // The first object's least recently used chunks made room, and the tracker heard of each eviction.
        string swarm1 = ClusterFixture.Sha(content1);
        await ClusterFixture.WaitUntilAsync(() => tracker.Read(t => t.Outcomes.Count(o => o.Swarm == swarm1 && o.Outcome.Kind == Kind.Evicted)) >= 2,
            TimeSpan.FromSeconds(20), "EVICTED outcomes for the first object's chunks");
    }

    [Fact]
    public async Task An_unreachable_tracker_degrades_to_the_store()
    {
        var (key, content) = await fixture.PutObjectAsync(seed: 17, size: 1024 * 1024 + 7);
        // A port nothing listens on (bound then released).
        var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        int port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        await using var agent = await PeerAgent.StartAsync(fixture.AgentOptions("no-tracker", new Uri($"http://127.0.0.1:{port}")));
        var (data, _, progress) = await ClusterFixture.FetchAsync(agent.Address, key, Timeout);
        Assert.Equal(ClusterFixture.Sha(content), ClusterFixture.Sha(data));
        Assert.Equal((ulong)content.Length, progress.BytesFromStore);
        Assert.False(agent.Downloads.Single().UsedTrackerThroughout);
    }
}
