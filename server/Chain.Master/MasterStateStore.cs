using Chain.Protocol.V1;
using Chain.Storage;
using Chain.Storage.Memory;
using Chain.Storage.RocksDb;
using Google.Protobuf;

namespace Chain.Master;

/// <summary>
/// Durable home of the master's state (membership, chain table, buckets). Kept behind an interface so that a
/// replicated master can replace the single-process store without touching the master's logic.
/// </summary>
public interface IMasterStateStore : IDisposable
{
    /// <summary>The last saved state, or null on a fresh store.</summary>
    ClusterConfig? Load();

    /// <summary>Saves the state; durable when the task completes. Callers tell nobody about a state before that.</summary>
    ValueTask SaveAsync(ClusterConfig state, CancellationToken cancellationToken = default);
}

/// <summary>State in a key-value engine (RocksDB in production, memory in tests): one key holds the whole config.</summary>
public sealed class EngineMasterStateStore : IMasterStateStore
{
    public const string ColumnFamily = "master";
    private static readonly byte[] StateKey = "cluster-config"u8.ToArray();
    private readonly IKvEngine _engine;

    public EngineMasterStateStore(IKvEngine engine)
    {
        if (!engine.ColumnFamilies.Contains(ColumnFamily))
            throw new ArgumentException($"engine lacks column family '{ColumnFamily}'", nameof(engine));
        _engine = engine;
    }

    public ClusterConfig? Load()
    {
        byte[]? bytes = _engine.Get(ColumnFamily, StateKey);
        return bytes is null ? null : ClusterConfig.Parser.ParseFrom(bytes);
    }

    public ValueTask SaveAsync(ClusterConfig state, CancellationToken cancellationToken = default) =>
        _engine.WriteAsync(new KvBatch().Put(ColumnFamily, StateKey, state.ToByteArray()), cancellationToken);

    public void Dispose() => _engine.Dispose();
}
