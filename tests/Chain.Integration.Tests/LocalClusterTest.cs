using Chain.Harness;

namespace Chain.Integration.Tests;

/// <summary>Base of tests that each start their own cluster of real processes in a fresh directory.</summary>
public abstract class LocalClusterTest : IAsyncLifetime
{
    protected LocalClusterTest(string name) =>
        RootDirectory = Path.Combine(Path.GetTempPath(), $"chain-{name}-" + Guid.NewGuid().ToString("N"));

    protected string RootDirectory { get; }
    protected LocalCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync() =>
        Cluster = await LocalCluster.StartAsync(new LocalClusterOptions { Nodes = 3, DataDirectory = Path.Combine(RootDirectory, "cluster") }, CancellationToken.None);

    public async Task DisposeAsync()
    {
        await Cluster.DisposeAsync();
        try
        {
            Directory.Delete(RootDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
