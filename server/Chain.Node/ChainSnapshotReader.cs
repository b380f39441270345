using System.Buffers.Binary;
using Chain.Storage;
using Microsoft.Extensions.Logging;

namespace Chain.Node;

/// <summary>What one read of a chain's records out of an engine snapshot produced.</summary>
internal readonly record struct ChainSnapshotRead(long Bytes, int DamagedChunks);

/// <summary>
/// Reads one chain's records out of ONE engine snapshot, column family by column family: the bulk copy to a syncing
/// successor (<see cref="ChainReplica"/>) and the backup stream (<see cref="BackupService"/>) share it.
/// </summary>
internal static class ChainSnapshotReader
{
    /// <summary>What a sync copies: object and dedup records, chunk records, then the chunks.</summary>
    public static readonly string[] SyncColumnFamilies = { NodeStore.Objects, NodeStore.Dedup, NodeStore.ChunkInfo, NodeStore.Chunks };

    /// <summary>The column families a snapshot may be asked for (never the log or meta).</summary>
    public static readonly string[] Readable = SyncColumnFamilies;

    /// <summary>The chain's applied sequence number as of <paramref name="snapshot"/>.</summary>
    public static ulong Applied(NodeStore store, uint chainId, IKvSnapshot snapshot) =>
        store.Engine.Get(NodeStore.Meta, NodeStore.AppliedKey(chainId), snapshot) is { } b ? BinaryPrimitives.ReadUInt64BigEndian(b) : 0;

    /// <summary>
    /// Hands every record of the chain in <paramref name="columnFamilies"/> (in that order) to <paramref name="add"/>,
    /// which returns the bytes it took. Chunks are read one at a time by their chunk records (never a scan over the
    /// data) and verified against their ids: a damaged one is logged, counted and left out (read repair or scrub
    /// fetches it from another replica); one <paramref name="skipChunk"/> says the receiver holds is left out too.
    /// Holds one record at a time, whatever the chain's size.
    /// </summary>
    public static async Task<ChainSnapshotRead> ReadAsync(NodeStore store, uint chainId, IKvSnapshot snapshot, IEnumerable<string> columnFamilies,
        Func<string, byte[], byte[], Task<long>> add, Func<byte[], bool>? skipChunk, ILogger log, CancellationToken cancellationToken)
    {
        byte[] prefix = NodeStore.ChainPrefix(chainId);
        byte[]? upper = KvKeys.PrefixUpperBound(prefix);
        long bytes = 0;
        int damaged = 0;
        foreach (string cf in columnFamilies)
        {
            if (!Readable.Contains(cf))
                throw new ArgumentException($"column family '{cf}' cannot be read into a snapshot", nameof(columnFamilies));
            bool chunks = cf == NodeStore.Chunks;
            using IKvIterator it = store.Engine.Iterate(chunks ? NodeStore.ChunkInfo : cf, prefix, upper, snapshot);
            for (it.SeekToFirst(); it.Valid; it.Next())
            {
                cancellationToken.ThrowIfCancellationRequested();
                byte[] key = it.Key.ToArray();
                if (!chunks)
                {
                    bytes += await add(cf, key, it.Value.ToArray());
                    continue;
                }
                if (skipChunk?.Invoke(key) == true)
                    continue;
                ChunkRead read = store.ReadChunkVerified(chainId, key.AsSpan(4), snapshot);
                if (read.State != ChunkState.Ok)
                {
                    damaged++;
                    log.LogError("chain {Chain}: chunk {Chunk} is {State} here; left out of the snapshot: {Problem}",
                        chainId, Convert.ToHexStringLower(key.AsSpan(4)), read.State, read.Problem);
                    continue;
                }
                bytes += await add(NodeStore.Chunks, key, read.Data!);
            }
        }
        return new ChainSnapshotRead(bytes, damaged);
    }
}
