using System.Security.Cryptography;
using Chain.Client;
using Chain.Harness;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Agent.Tests;

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "agent-cluster";
}

/// <summary>A three-node cluster of real processes on loopback (the store), shared by the swarm tests.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public const string Bucket = "swarm";
    /// <summary>Small chunks so that a test object of a few MiB has many.</summary>
    public const int ChunkBytes = 256 * 1024;

    private readonly string _root = Path.Combine(Path.GetTempPath(), "chain-agent-" + Guid.NewGuid().ToString("N"));
    private LocalCluster? _cluster;

    public LocalCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync()
    {
        _cluster = await LocalCluster.StartAsync(new LocalClusterOptions { Nodes = 3, Chains = 4, DataDirectory = Path.Combine(_root, "cluster") });
        await using var client = Cluster.CreateClient();
        await client.CreateBucketAsync(Bucket);
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync();
        if (Environment.GetEnvironmentVariable("CHAIN_KEEP_TEST_DATA") != "1")
            LocalCluster.TryDeleteDirectory(_root);
    }

    public string NewDir(string name)
    {
        string path = Path.Combine(_root, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Stores random content of <paramref name="size"/> bytes under a fresh key (chunks of <see cref="ChunkBytes"/>).</summary>
    public async Task<(string Key, byte[] Content)> PutObjectAsync(int seed, int size)
    {
        var content = new byte[size];
        new Random(seed).NextBytes(content);
        string key = $"obj-{seed}-{Guid.NewGuid():N}";
        await using var client = Cluster.CreateClient(o => o with { ChunkBytes = ChunkBytes });
        await client.PutAsync(Bucket, key, content);
        return (key, content);
    }

    public PeerAgentOptions AgentOptions(string name, Uri? tracker) => new()
    {
        Master = Cluster.MasterAddress,
        Tracker = tracker,
        CacheDirectory = NewDir(name),
        ChunkTimeout = TimeSpan.FromSeconds(20),
        TrackerTimeout = TimeSpan.FromSeconds(3),
    };

    /// <summary>Fetches through the agent's Agent service (as `chain get --p2p` does): the bytes, the meta and the last progress message.</summary>
    public static async Task<(byte[] Data, ObjectMeta Meta, FetchProgress Progress)> FetchAsync(Uri agent, string key, TimeSpan timeout)
    {
        using var channel = new RpcChannel(agent);
        using var buffer = new MemoryStream();
        ObjectMeta? meta = null;
        FetchProgress? progress = null;
        await foreach (var message in channel.ServerStreamingAsync(AgentMethods.Fetch,
                           new FetchRequest { Bucket = Bucket, Key = ByteString.CopyFrom(Validation.EncodeKey(key)) }, new CallOptions { Timeout = timeout }))
        {
            switch (message.PartCase)
            {
                case FetchResponse.PartOneofCase.Progress: progress = message.Progress; break;
                case FetchResponse.PartOneofCase.Meta: meta = message.Meta; break;
                case FetchResponse.PartOneofCase.Data: buffer.Write(message.Data.Span); break;
            }
        }
        Assert.NotNull(meta);
        Assert.NotNull(progress);
        return (buffer.ToArray(), meta, progress);
    }

    /// <summary>Fills a seeder's cache with every chunk of the object, from the store (no tracker).</summary>
    public static async Task SeedAsync(PeerAgent seeder, string key)
    {
        var download = await seeder.DownloadAsync(Bucket, key);
        await download.Completion.WaitAsync(TimeSpan.FromSeconds(60));
    }

    /// <summary>Waits (bounded) until the condition holds; fails with <paramref name="what"/> otherwise.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out after {timeout} waiting for: {what}");
            await Task.Delay(20);
        }
    }

    public static string Sha(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));
}
