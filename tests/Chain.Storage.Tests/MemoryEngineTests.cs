using Chain.Storage.Memory;
using static Chain.Storage.Tests.TestUtil;

namespace Chain.Storage.Tests;

public sealed class MemoryEngineTests : EngineContract
{
    protected override IKvEngine CreateEngine(IReadOnlyList<string> columnFamilies, string directory) => new MemoryEngine(columnFamilies);

    protected override IKvEngine OpenCheckpoint(string directory, IReadOnlyList<string> columnFamilies) => Track(MemoryEngine.OpenCheckpoint(directory));

    protected override bool SharesSyncedWrites => false;

    [Fact]
    public void DefaultColumnFamilyAlwaysPresent()
    {
        using var engine = new MemoryEngine();
        Assert.Equal(new[] { "default" }, engine.ColumnFamilies);
        using var other = new MemoryEngine(["x", "default", "x"]);
        Assert.Equal(new[] { "default", "x" }, other.ColumnFamilies);
    }

    [Fact]
    public void MissingCheckpointIsStorageException()
    {
        Assert.Throws<StorageException>(() => MemoryEngine.OpenCheckpoint(Temp.Sub("nothing-here")));
    }

    [Fact]
    public async Task CorruptCheckpointIsStorageException()
    {
        using var engine = new MemoryEngine(["data"]);
        await engine.WriteAsync(new KvBatch().Put("data", S("key"), S("value")));
        string directory = Temp.Sub("chk");
        engine.Checkpoint(directory);
        string file = Directory.GetFiles(directory).Single();
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..^3]);
        Assert.Throws<StorageException>(() => MemoryEngine.OpenCheckpoint(directory));
    }
}
