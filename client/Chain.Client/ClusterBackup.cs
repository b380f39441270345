using System.Collections.Concurrent;
using System.Diagnostics;
using Chain.Protocol;
using Chain.Protocol.Backup;
using Chain.Protocol.V1;
using Google.Protobuf;

namespace Chain.Client;

/// <summary>What a backup wrote.</summary>
public sealed record BackupStats(int Chains, long Files, long Bytes, long Objects, long ObjectBytes, long Chunks, long ChunkBytes, TimeSpan Elapsed,
    DateTimeOffset Started)
{
    public double Seconds => Elapsed.TotalSeconds;
}

/// <summary>A backup that cannot be consistent (a manifest's chunk is missing from it); nothing usable was written.</summary>
public sealed class BackupIncompleteException(string message) : ChainException(message);

/// <summary>
/// Consistent backup of a live cluster, writes going on (<c>chain backup DIR</c>). Every chain is read from its tail
/// (which holds exactly what the chain committed), one engine snapshot per chain and part, so the backup is 1x the
/// data. Two passes, so that no object record is in the backup without its chunks: pass 1 = every chain's object and
/// dedup records (with its applied sequence number), pass 2 — begun after pass 1 finished on every chain — every
/// chain's chunk records and chunks. Then every object record's chunks are checked to be in the backup (a missing
/// one fails the backup, naming the object). Files: <c>nodes/&lt;node&gt;/chain-&lt;id&gt;.records.snap</c> and
/// <c>.chunks.snap</c> (<see cref="SnapshotFile"/>), <c>config.pb</c> (the master's config at the start),
/// <c>manifest.json</c> last (<see cref="BackupManifest"/>): a directory without a manifest is not a backup.
/// Every write acknowledged before <see cref="RunAsync(ChainClient, string, CancellationToken)"/> began is in it.
/// </summary>
public static class ClusterBackup
{
    /// <summary>Chains copied at once.</summary>
    public const int Parallelism = 4;

    private static readonly string[] RecordFamilies = { "objects", "dedup" };
    private static readonly string[] ChunkFamilies = { "chunkinfo", "chunks" };

    /// <summary>Backs up the cluster of <paramref name="master"/> into <paramref name="directory"/>.</summary>
    public static async Task<BackupStats> RunAsync(Uri master, string directory, CancellationToken cancellationToken = default)
    {
        await using var client = new ChainClient(new ChainClientOptions { Master = master });
        return await RunAsync(client, directory, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Backs up the cluster <paramref name="client"/> talks to into <paramref name="directory"/> (new or empty). A
    /// backup that fails removes what it wrote (the directory is left empty).
    /// </summary>
    public static async Task<BackupStats> RunAsync(ChainClient client, string directory, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        string root = Path.GetFullPath(directory);
        if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
            throw new ChainArgumentException($"backup directory {root} is not empty");
        Directory.CreateDirectory(root);
        try
        {
            return await BackUpAsync(client, root, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Only what this backup wrote: the directory was empty when it began.
            foreach (string entry in Directory.EnumerateFileSystemEntries(root))
            {
                if (Directory.Exists(entry))
                    Directory.Delete(entry, recursive: true);
                else
                    File.Delete(entry);
            }
            throw;
        }
    }

    private static async Task<BackupStats> BackUpAsync(ChainClient client, string root, CancellationToken cancellationToken)
    {
        DateTimeOffset started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();

        ClusterConfig config = await client.CurrentConfigAsync(cancellationToken).ConfigureAwait(false);
        if (config.Chains.Count == 0)
            throw new ChainArgumentException("the cluster has no chain table yet: nothing to back up");
        var chains = config.Chains.Select(c => c.ChainId).OrderBy(c => c).ToArray();

        var records = new ConcurrentDictionary<uint, PartResult>();
        await Parallel.ForEachAsync(chains, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
            async (chain, ct) => records[chain] = await CopyPartAsync(client, root, chain, SnapshotKind.Records, RecordFamilies, null, ct).ConfigureAwait(false))
            .ConfigureAwait(false);
        // Pass 2 only now: every record of pass 1 was committed before this point, so were its chunks (a manifest
        // commits after its chunks), and a chunk a committed record references is never collected.
        var present = new ConcurrentDictionary<ChunkAddress, byte>();
        var chunks = new ConcurrentDictionary<uint, PartResult>();
        await Parallel.ForEachAsync(chains, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
            async (chain, ct) => chunks[chain] = await CopyPartAsync(client, root, chain, SnapshotKind.Chunks, ChunkFamilies, present, ct).ConfigureAwait(false))
            .ConfigureAwait(false);

        // Every object record's chunks must be in the backup; count the objects on the way.
        var entries = new List<ChainEntry>();
        long objects = 0, objectBytes = 0;
        foreach (uint chain in chains)
        {
            (long count, long bytes) = CheckChunksPresent(root, records[chain], chain, chains.Length, present);
            objects += count;
            objectBytes += bytes;
            entries.Add(new ChainEntry(chain, records[chain].Part, chunks[chain].Part, count, bytes, chunks[chain].Chunks, chunks[chain].ChunkBytes));
        }

        string configPath = Path.Combine(root, BackupManifest.ConfigFileName);
        WriteDurably(configPath, config.ToByteArray());
        var files = new List<BackupFile> { Describe(root, BackupManifest.ConfigFileName) };
        foreach (uint chain in chains)
        {
            files.Add(records[chain].File);
            files.Add(chunks[chain].File);
        }
        var manifest = new BackupManifest
        {
            Started = started,
            Finished = DateTimeOffset.UtcNow,
            ConfigVersion = config.Version,
            ChainCount = chains.Length,
            Replicas = (int)config.Replicas,
            Nodes = config.Nodes.Select(n => n.Node.NodeId).ToList(),
            Buckets = config.Buckets.Select(b => b.Name).ToList(),
            Objects = objects,
            ObjectBytes = objectBytes,
            Chunks = chunks.Values.Sum(c => c.Chunks),
            ChunkBytes = chunks.Values.Sum(c => c.ChunkBytes),
            Files = files,
            Chains = entries,
        };
        manifest.Save(root);
        long total = files.Sum(f => f.Bytes) + new FileInfo(Path.Combine(root, BackupManifest.FileName)).Length;
        return new BackupStats(chains.Length, files.Count + 1, total, objects, objectBytes, manifest.Chunks, manifest.ChunkBytes, clock.Elapsed, started);
    }

    private static async Task<PartResult> CopyPartAsync(ChainClient client, string root, uint chain, SnapshotKind kind, string[] families,
        ConcurrentDictionary<ChunkAddress, byte>? present, CancellationToken ct)
    {
        PartSink? done = null;
        await client.SnapshotChainAsync(chain, families, (node, applied) =>
        {
            string relative = Path.Combine("nodes", node, $"chain-{chain}.{(kind == SnapshotKind.Records ? "records" : "chunks")}.snap");
            return done = new PartSink(root, relative, new SnapshotHeader(chain, kind, applied, node));
        }, ct).ConfigureAwait(false);
        PartSink sink = done ?? throw new InvalidOperationException($"chain {chain}: the snapshot completed without a sink");
        if (present is not null)
        {
            foreach (ChunkAddress id in sink.ChunkIds)
                present[id] = 0;
        }
        var part = new ChainPart(sink.Relative, sink.Header.SourceNode, sink.Header.AppliedSeq, sink.Records, sink.FileBytes);
        return new PartResult(part, new BackupFile(sink.Relative, sink.FileBytes, sink.Sha256Hex), sink.ChunkIds.Count, sink.ChunkBytes);
    }

    /// <summary>Reads a chain's object records from the backup and checks each one's chunks are in it; returns objects and their bytes.</summary>
    private static (long Objects, long Bytes) CheckChunksPresent(string root, PartResult part, uint chain, int chainCount,
        ConcurrentDictionary<ChunkAddress, byte> present)
    {
        long objects = 0, bytes = 0;
        using var reader = new SnapshotFileReader(Path.Combine(root, part.Part.File));
        while (reader.Read(out SnapshotRecord record))
        {
            if (record.ColumnFamily != "objects")
                continue;
            ObjectMeta meta = ObjectMeta.Parser.ParseFrom(record.Value);
            objects++;
            bytes += (long)meta.Size;
            foreach (ChunkRef chunk in meta.Chunks)
            {
                uint holder = meta.Distributed ? Placement.ChainForChunk(chunk.Sha256.Span, chainCount) : chain;
                if (!present.ContainsKey(ChunkAddress.Of(holder, chunk.Sha256.Span)))
                    throw new BackupIncompleteException(
                        $"object '{meta.Bucket}/{meta.Key.ToStringUtf8()}' (chain {chain}) references chunk {Convert.ToHexStringLower(chunk.Sha256.Span)} " +
                        $"that is not in the backup's copy of chain {holder}; the backup is not usable (no manifest written)");
            }
        }
        return (objects, bytes);
    }

    private static void WriteDurably(string path, byte[] data)
    {
        string temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(data);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        SnapshotFile.SyncDirectory(Path.GetDirectoryName(path)!);
    }

    private static BackupFile Describe(string root, string relative)
    {
        (long bytes, byte[] sha) = SnapshotFile.HashFile(Path.Combine(root, relative));
        return new BackupFile(relative, bytes, Convert.ToHexStringLower(sha));
    }

    private sealed record PartResult(ChainPart Part, BackupFile File, long Chunks, long ChunkBytes);

    /// <summary>A chunk's place: its chain and id (the key of its chunk record without the prefix).</summary>
    internal readonly record struct ChunkAddress(uint Chain, ulong A, ulong B, ulong C, ulong D)
    {
        public static ChunkAddress Of(uint chain, ReadOnlySpan<byte> id) => id.Length != 32
            ? new ChunkAddress(chain, 0, 0, 0, (ulong)id.Length)
            : new ChunkAddress(chain, BitConverter.ToUInt64(id), BitConverter.ToUInt64(id[8..]), BitConverter.ToUInt64(id[16..]), BitConverter.ToUInt64(id[24..]));
    }

    /// <summary>One attempt's file: counts what it holds; deleted unless completed.</summary>
    private sealed class PartSink(string root, string relative, SnapshotHeader header) : ISnapshotSink
    {
        private readonly SnapshotFileWriter _writer = new(Path.Combine(root, relative), header);

        public string Relative => relative;
        public SnapshotHeader Header => header;
        public long Records => _writer.Records;
        public List<ChunkAddress> ChunkIds { get; } = new();
        public long ChunkBytes { get; private set; }
        public long FileBytes { get; private set; }
        public string Sha256Hex { get; private set; } = "";

        public ValueTask AddAsync(string columnFamily, ByteString key, ByteString value, CancellationToken cancellationToken)
        {
            if (key.Length < 4 || System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(key.Span) != header.ChainId)
                throw new ChainException($"protocol error: node '{header.SourceNode}' sent a record of another chain in chain {header.ChainId}'s snapshot");
            if (columnFamily == "chunks")
            {
                ChunkIds.Add(ChunkAddress.Of(header.ChainId, key.Span[4..]));
                ChunkBytes += value.Length;
            }
            return _writer.AddAsync(columnFamily, key.Memory, value.Memory, cancellationToken);
        }

        public async Task CompleteAsync(CancellationToken cancellationToken)
        {
            (long bytes, byte[] sha) = await _writer.CompleteAsync(cancellationToken).ConfigureAwait(false);
            FileBytes = bytes;
            Sha256Hex = Convert.ToHexStringLower(sha);
        }

        public ValueTask DisposeAsync() => _writer.DisposeAsync();
    }
}
