using System.Buffers.Binary;
using Chain.Protocol.Backup;
using Chain.Protocol.V1;
using Chain.Storage;

namespace Chain.Node;

/// <summary>What laying out one node's data from a backup wrote.</summary>
public sealed record NodeRestoreStats(string NodeId, int Chains, long Records, long Bytes);

/// <summary>
/// Offline restore of one storage node's data directory from a backup (<c>Chain.Server restore-node</c>): every chain
/// the node is a member of in the backup's table gets that chain's snapshot (records, then chunks), and the chain's
/// applied sequence number is set to the larger of the two parts' — the same on every member, with an empty log, so
/// the members start equal and the prefix property holds. The layout is the node store's own.
/// </summary>
public static class NodeRestore
{
    private const long BatchBytes = 16L << 20;
    private const int BatchRecords = 4096;

    public static async Task<NodeRestoreStats> RestoreAsync(IKvEngine engine, string backupDirectory, string nodeId, CancellationToken cancellationToken = default)
    {
        var store = new NodeStore(engine);
        if (store.LoadNodeId() is { } owner)
            throw new InvalidOperationException($"the data directory already belongs to node '{owner}'; restore needs an empty one");
        foreach (string cf in new[] { NodeStore.Objects, NodeStore.ChunkInfo, NodeStore.Meta })
        {
            using IKvIterator it = engine.Iterate(cf, null, null);
            it.SeekToFirst();
            if (it.Valid)
                throw new InvalidOperationException($"the data directory is not empty (column family '{cf}' holds data); restore needs an empty one");
        }
        BackupManifest manifest = BackupManifest.Load(backupDirectory);
        ClusterConfig config = ClusterConfig.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(backupDirectory, BackupManifest.ConfigFileName)));
        if (!config.Nodes.Any(n => n.Node.NodeId == nodeId))
            throw new ArgumentException($"node '{nodeId}' is not in the backup (its nodes: {string.Join(", ", config.Nodes.Select(n => n.Node.NodeId))})");
        var entries = manifest.Chains.ToDictionary(c => c.ChainId);
        int chains = 0;
        long records = 0, bytes = 0;
        foreach (ChainInfo chain in config.Chains.Where(c => c.Nodes.Contains(nodeId)))
        {
            if (!entries.TryGetValue(chain.ChainId, out ChainEntry? entry))
                throw new InvalidDataException($"the backup's manifest has no snapshot of chain {chain.ChainId}");
            (long r1, long b1) = await ImportAsync(engine, backupDirectory, entry.Records.File, chain.ChainId, SnapshotKind.Records, cancellationToken);
            (long r2, long b2) = await ImportAsync(engine, backupDirectory, entry.Chunks.File, chain.ChainId, SnapshotKind.Chunks, cancellationToken);
            ulong applied = Math.Max(entry.Records.AppliedSeq, entry.Chunks.AppliedSeq);
            var seq = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(seq, applied);
            await engine.WriteAsync(new KvBatch().Put(NodeStore.Meta, NodeStore.AppliedKey(chain.ChainId), seq), cancellationToken);
            chains++;
            records += r1 + r2;
            bytes += b1 + b2;
        }
        // Last: a directory with the node id is a finished restore.
        await store.SaveNodeIdAsync(nodeId);
        return new NodeRestoreStats(nodeId, chains, records, bytes);
    }

    private static async Task<(long Records, long Bytes)> ImportAsync(IKvEngine engine, string backupDirectory, string file, uint chainId, SnapshotKind kind,
        CancellationToken cancellationToken)
    {
        string path = Path.Combine(backupDirectory, file);
        using var reader = new SnapshotFileReader(path);
        if (reader.Header.ChainId != chainId || reader.Header.Kind != kind)
            throw new InvalidDataException($"{path} holds the {reader.Header.Kind} of chain {reader.Header.ChainId}, expected the {kind} of chain {chainId}");
        byte[] prefix = NodeStore.ChainPrefix(chainId);
        var batch = new KvBatch();
        long records = 0, bytes = 0;
        // One batch in the engine while the next is read: reading and verifying overlap with the synced write.
        Task inFlight = Task.CompletedTask;
        try
        {
            while (reader.Read(out SnapshotRecord record))
            {
                if (!record.Key.AsSpan().StartsWith(prefix) || !NodeStore.ColumnFamilies.Contains(record.ColumnFamily))
                    throw new InvalidDataException($"{path}: a record of another chain or column family ({record.ColumnFamily})");
                if (record.ColumnFamily == NodeStore.Chunks && !Digests.Matches(record.Value, record.Key.AsSpan(4)))
                    throw new InvalidDataException($"{path}: chunk {Convert.ToHexStringLower(record.Key.AsSpan(4))} does not match its SHA-256");
                batch.Put(record.ColumnFamily, record.Key, record.Value);
                records++;
                bytes += record.Key.Length + record.Value.Length;
                if (batch.ByteSize >= BatchBytes || batch.Count >= BatchRecords)
                {
                    await inFlight;
                    inFlight = engine.WriteAsync(batch, cancellationToken).AsTask();
                    batch = new KvBatch();
                }
            }
        }
        catch
        {
            // The file is bad: the failure to report is the reader's, not a write's still in flight.
            _ = inFlight.ContinueWith(t => t.Exception, TaskScheduler.Default);
            throw;
        }
        await inFlight;
        if (batch.Count > 0)
            await engine.WriteAsync(batch, cancellationToken);
        return (records, bytes);
    }
}
