using Chain.Harness;

namespace Chain.Integration.Tests;

/// <summary>Base of tests that each start their own cluster of real processes in a fresh directory.</summary>
public abstract class LocalClusterTest : IAsyncLifetime
{
    protected LocalClusterTest(string name) =>
        RootDirectory = Path.Combine(Path.GetTempPath(), $"chain-{name}-" + Guid.NewGuid().ToString("N"));

    protected string RootDirectory { get; }
    protected LocalCluster Cluster { get; private set; } = null!;

    /// <summary>The cluster's layout; override to change it.</summary>
    protected virtual LocalClusterOptions Options(string dataDirectory) => new() { Nodes = 3, DataDirectory = dataDirectory };

    public async Task InitializeAsync() =>
        Cluster = await LocalCluster.StartAsync(Options(Path.Combine(RootDirectory, "cluster")), CancellationToken.None);

    public async Task DisposeAsync()
    {
        await Cluster.DisposeAsync();
        if (Environment.GetEnvironmentVariable("CHAIN_KEEP_TEST_DATA") == "1")
            return; // keep the processes' logs for a look
        try
        {
            Directory.Delete(RootDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
