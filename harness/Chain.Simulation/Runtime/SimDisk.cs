using Chain.Simulation.Runtime;
using Chain.Storage;

namespace Chain.Simulation;

/// <summary>
/// One process incarnation's view of its node's disk: a <see cref="Chain.Storage.Memory.MemoryEngine"/> that
/// outlives the process, with a random virtual write latency and, optionally, injected write errors. Durability
/// model: MemoryEngine makes a batch durable and visible at once when its WriteAsync runs, so a batch is durable
/// exactly when the write completed; a crash while a write is in its latency loses that batch (it never
/// completed, the caller was never told) and nothing else. There is no unsynced-but-acknowledged state to lose:
/// the node only ever writes synced batches, which is what this models.
/// </summary>
internal sealed class SimDisk(IKvEngine inner, SimProcess process, TimeSpan latencyMax, double errorRate, Func<bool> errorsArmed) : IKvEngine
{
    public IReadOnlyList<string> ColumnFamilies => inner.ColumnFamilies;

    public KvEngineStats Stats => inner.Stats;

    public long InjectedErrors { get; private set; }

    public byte[]? Get(string columnFamily, ReadOnlySpan<byte> key, IKvSnapshot? snapshot = null) => inner.Get(columnFamily, key, snapshot);

    public IKvIterator Iterate(string columnFamily, byte[]? lowerInclusive = null, byte[]? upperExclusive = null, IKvSnapshot? snapshot = null) =>
        inner.Iterate(columnFamily, lowerInclusive, upperExclusive, snapshot);

    public IKvSnapshot Snapshot() => inner.Snapshot();

    public async ValueTask WriteAsync(KvBatch batch, CancellationToken cancellationToken = default)
    {
        Random random = process.Executor.Random;
        var latency = TimeSpan.FromTicks(random.NextInt64(latencyMax.Ticks + 1));
        if (latency > TimeSpan.Zero)
            await Task.Delay(latency, process.Time, cancellationToken);
        if (errorRate > 0 && errorsArmed() && random.NextDouble() < errorRate)
        {
            InjectedErrors++;
            throw new StorageException("injected I/O error (simulation)");
        }
        await inner.WriteAsync(batch, cancellationToken);
    }

    public void Checkpoint(string directory) => throw new NotSupportedException("no checkpoints in the simulation");

    /// <summary>The disk outlives the process: disposing a process's view leaves the engine open.</summary>
    public void Dispose()
    {
    }
}
