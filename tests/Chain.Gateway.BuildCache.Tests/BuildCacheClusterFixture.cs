using Chain.Client;
using Chain.Harness;
using Xunit;

namespace Chain.Gateway.BuildCache.Tests;

/// <summary>One single-node cluster of real processes on loopback and a build-cache host in front of it.</summary>
public sealed class BuildCacheClusterFixture : IAsyncLifetime
{
    public const long MaxEntryBytes = 24L * 1024 * 1024;

    private readonly string _root = Path.Combine(Path.GetTempPath(), "chain-buildcache-" + Guid.NewGuid().ToString("N"));

    public LocalCluster Cluster { get; private set; } = null!;

    public BuildCacheHost Host { get; private set; } = null!;

    public ChainClient Client { get; private set; } = null!;

    public BuildCacheOptions Options { get; } = new() { Bucket = "build-cache", KeyPrefix = "bc/", MaxEntryBytes = MaxEntryBytes };

    /// <summary>The cache's base URL, ending in '/': entries are relative to it.</summary>
    public Uri CacheUrl => new(Host.Address, "/cache/");

    public string Root => _root;

    public async Task InitializeAsync()
    {
        Cluster = await LocalCluster.StartAsync(new LocalClusterOptions
        {
            Nodes = 1,
            DataDirectory = Path.Combine(_root, "cluster"),
            DeleteDataOnDispose = true,
        }, CancellationToken.None);
        Client = Cluster.CreateClient();
        await Client.CreateBucketAsync(Options.Bucket); // first-use creation has its own test, with its own bucket
        Host = await BuildCacheHost.StartAsync("http://127.0.0.1:0", Cluster.MasterAddress, Options);
    }

    public Task<BuildCacheHost> StartHostAsync(BuildCacheOptions options) =>
        BuildCacheHost.StartAsync("http://127.0.0.1:0", Cluster.MasterAddress, options);

    public async Task DisposeAsync()
    {
        await Host.DisposeAsync();
        await Client.DisposeAsync();
        await Cluster.DisposeAsync();
        LocalCluster.TryDeleteDirectory(_root);
    }
}

[CollectionDefinition(Name)]
public sealed class BuildCacheCollection : ICollectionFixture<BuildCacheClusterFixture>
{
    public const string Name = "build-cache cluster";
}
