using System.Buffers.Binary;
using System.Text;
using Chain.Protocol.V1;
using Chain.Storage;
using Chain.Storage.Memory;
using Chain.Storage.RocksDb;
using Google.Protobuf;

namespace Chain.Node;

/// <summary>Result a write produced, kept per request id so a retried write is answered without applying it twice.</summary>
internal readonly record struct DedupRecord(ulong Version, bool Existed);

/// <summary>
/// The node's data layout over the key-value engine. Every chain's data is prefixed by its id, so a chain's
/// state can be copied or dropped as one key range.
///   objects: chain | bucket | 0x00 | key  -> ObjectMeta
///   chunks:  chain | sha256               -> chunk bytes (immutable, content-addressed; RocksDB blob files)
///   chunkinfo: chain | sha256             -> last-touch time (unix ms, u64 BE) | size (u32 BE): presence without
///                                            reading the data, and the age garbage collection goes by
///   log:     chain | seq                  -> Update without chunk data (re-sent to a successor after reconnects)
///   dedup:   chain | request id           -> DedupRecord
///   meta:    "applied" | chain            -> last applied sequence number
///            "node-id"                    -> the id this data directory belongs to
///            "config"                     -> the last cluster config this node saw
/// </summary>
internal sealed class NodeStore
{
    public const string Objects = "objects";
    public const string Chunks = "chunks";
    public const string ChunkInfo = "chunkinfo";
    public const string Log = "log";
    public const string Dedup = "dedup";
    public const string Meta = "meta";
    public static readonly string[] ColumnFamilies = { Objects, Chunks, ChunkInfo, Log, Dedup, Meta };
    /// <summary>Column families whose values go to RocksDB blob files: large, written once, never rewritten by compaction.</summary>
    public static readonly string[] BlobColumnFamilies = { Chunks };

    private static readonly byte[] NodeIdKey = "node-id"u8.ToArray();
    private static readonly byte[] ConfigKey = "config"u8.ToArray();

    public NodeStore(IKvEngine engine)
    {
        foreach (string cf in ColumnFamilies)
            if (!engine.ColumnFamilies.Contains(cf))
                throw new ArgumentException($"engine lacks column family '{cf}'", nameof(engine));
        Engine = engine;
    }

    public IKvEngine Engine { get; }

    // ---- identity and config ----

    public string? LoadNodeId() => Engine.Get(Meta, NodeIdKey) is { } b ? Encoding.UTF8.GetString(b) : null;

    public ValueTask SaveNodeIdAsync(string nodeId) =>
        Engine.WriteAsync(new KvBatch().Put(Meta, NodeIdKey, Encoding.UTF8.GetBytes(nodeId)));

    public ClusterConfig? LoadConfig() => Engine.Get(Meta, ConfigKey) is { } b ? ClusterConfig.Parser.ParseFrom(b) : null;

    public ValueTask SaveConfigAsync(ClusterConfig config) =>
        Engine.WriteAsync(new KvBatch().Put(Meta, ConfigKey, config.ToByteArray()));

    public ulong LoadApplied(uint chainId) =>
        Engine.Get(Meta, AppliedKey(chainId)) is { } b ? BinaryPrimitives.ReadUInt64BigEndian(b) : 0;

    // ---- keys ----

    public static byte[] ChainPrefix(uint chainId)
    {
        var k = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(k, chainId);
        return k;
    }

    public static byte[] AppliedKey(uint chainId)
    {
        var k = new byte[11];
        "applied"u8.CopyTo(k);
        BinaryPrimitives.WriteUInt32BigEndian(k.AsSpan(7), chainId);
        return k;
    }

    public static byte[] ObjectKey(uint chainId, string bucket, ReadOnlySpan<byte> key)
    {
        int bucketBytes = Encoding.UTF8.GetByteCount(bucket);
        var k = new byte[4 + bucketBytes + 1 + key.Length];
        BinaryPrimitives.WriteUInt32BigEndian(k, chainId);
        Encoding.UTF8.GetBytes(bucket, k.AsSpan(4));
        k[4 + bucketBytes] = 0;
        key.CopyTo(k.AsSpan(5 + bucketBytes));
        return k;
    }

    /// <summary>Length of the chain|bucket|0x00 prefix of an object key.</summary>
    public static int ObjectKeyPrefixLength(string bucket) => 4 + Encoding.UTF8.GetByteCount(bucket) + 1;

    public static byte[] ChunkKey(uint chainId, ReadOnlySpan<byte> sha256)
    {
        var k = new byte[4 + sha256.Length];
        BinaryPrimitives.WriteUInt32BigEndian(k, chainId);
        sha256.CopyTo(k.AsSpan(4));
        return k;
    }

    public static byte[] LogKey(uint chainId, ulong seq)
    {
        var k = new byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(k, chainId);
        BinaryPrimitives.WriteUInt64BigEndian(k.AsSpan(4), seq);
        return k;
    }

    public static byte[] DedupKey(uint chainId, ReadOnlySpan<byte> requestId)
    {
        var k = new byte[4 + requestId.Length];
        BinaryPrimitives.WriteUInt32BigEndian(k, chainId);
        requestId.CopyTo(k.AsSpan(4));
        return k;
    }

    // ---- reads ----

    public ObjectMeta? GetObject(uint chainId, string bucket, ReadOnlySpan<byte> key) =>
        Engine.Get(Objects, ObjectKey(chainId, bucket, key)) is { } b ? ObjectMeta.Parser.ParseFrom(b) : null;

    public byte[]? GetChunk(uint chainId, ReadOnlySpan<byte> sha256, IKvSnapshot? snapshot = null) =>
        Engine.Get(Chunks, ChunkKey(chainId, sha256), snapshot);

    /// <summary>
    /// Reads a chunk and checks it against its id. A read error of the engine (e.g. a blob file failing its own
    /// checksum) counts as corrupt, like a digest mismatch.
    /// </summary>
    public ChunkRead ReadChunkVerified(uint chainId, ReadOnlySpan<byte> sha256, IKvSnapshot? snapshot = null)
    {
        byte[]? data;
        try
        {
            data = GetChunk(chainId, sha256, snapshot);
        }
        catch (StorageException e)
        {
            return new ChunkRead(ChunkState.Corrupt, null, e.Message);
        }
        if (data is null)
            return new ChunkRead(ChunkState.Missing, null, null);
        if (!Digests.Matches(data, sha256))
            return new ChunkRead(ChunkState.Corrupt, null, "data does not match its SHA-256");
        return new ChunkRead(ChunkState.Ok, data, null);
    }

    public bool HasChunk(uint chainId, ReadOnlySpan<byte> sha256) => GetChunkInfo(chainId, sha256) is not null;

    public ChunkInfoRecord? GetChunkInfo(uint chainId, ReadOnlySpan<byte> sha256) =>
        Engine.Get(ChunkInfo, ChunkKey(chainId, sha256)) is { } b ? ChunkInfoRecord.Decode(b) : null;

    /// <summary>Writes a verified copy of a chunk fetched from a peer over a damaged local one (repair).</summary>
    public ValueTask RewriteChunkAsync(uint chainId, ReadOnlySpan<byte> sha256, byte[] data) =>
        Engine.WriteAsync(new KvBatch().Put(Chunks, ChunkKey(chainId, sha256), data));

    public DedupRecord? GetDedup(uint chainId, ReadOnlySpan<byte> requestId)
    {
        byte[]? b = Engine.Get(Dedup, DedupKey(chainId, requestId));
        if (b is null || b.Length != 9)
            return null;
        return new DedupRecord(BinaryPrimitives.ReadUInt64BigEndian(b), b[8] != 0);
    }

    /// <summary>Reads the update with sequence number <paramref name="seq"/> from the log, with chunk data restored.</summary>
    public Update? ReadLoggedUpdate(uint chainId, ulong seq)
    {
        byte[]? b = Engine.Get(Log, LogKey(chainId, seq));
        if (b is null)
            return null;
        Update u = Update.Parser.ParseFrom(b);
        ChunkWrite? chunk = u.OpCase switch
        {
            Update.OpOneofCase.Chunk when !u.Chunk.TouchOnly => u.Chunk,
            Update.OpOneofCase.Object => u.Object.LastChunk,
            _ => null,
        };
        if (chunk is not null)
        {
            byte[] data = GetChunk(chainId, chunk.Sha256.Span)
                ?? throw new InvalidOperationException($"chain {chainId}: logged chunk of update {seq} is missing");
            chunk.Data = ByteString.CopyFrom(data);
        }
        return u;
    }

    /// <summary>Objects of one chain and bucket in key order, after <paramref name="startAfter"/>, with the key prefix.</summary>
    public List<ObjectMeta> List(uint chainId, string bucket, ReadOnlySpan<byte> prefix, ReadOnlySpan<byte> startAfter, int limit, out bool truncated)
    {
        byte[] lower = ObjectKey(chainId, bucket, prefix);
        byte[]? upper = KvKeys.PrefixUpperBound(lower);
        var result = new List<ObjectMeta>();
        truncated = false;
        using IKvIterator it = Engine.Iterate(Objects, lower, upper);
        if (!startAfter.IsEmpty)
        {
            byte[] after = ObjectKey(chainId, bucket, startAfter);
            it.Seek(after);
            if (it.Valid && it.Key.SequenceEqual(after))
                it.Next();
        }
        else
        {
            it.SeekToFirst();
        }
        for (; it.Valid; it.Next())
        {
            if (result.Count == limit)
            {
                truncated = true;
                break;
            }
            ObjectMeta meta = ObjectMeta.Parser.ParseFrom(it.Value);
            meta.Chunks.Clear();
            result.Add(meta);
        }
        return result;
    }

    // ---- writes ----

    /// <summary>
    /// Builds one atomic batch applying <paramref name="group"/> (consecutive sequence numbers, in order): each
    /// update's effect, its log entry, its dedup record, and the chain's applied sequence number. Sets
    /// <see cref="PendingUpdate.Existed"/> for deletes, seeing earlier updates of the same group.
    /// </summary>
    public KvBatch BuildApply(uint chainId, IReadOnlyList<PendingUpdate> group)
    {
        var batch = new KvBatch();
        Dictionary<string, bool>? touched = null;
        // Chunk records written by earlier updates of this group (null: deleted), so later ones see them.
        Dictionary<string, ChunkInfoRecord?>? chunkInfo = null;
        foreach (PendingUpdate p in group)
        {
            Update u = p.Update;
            switch (u.OpCase)
            {
                case Update.OpOneofCase.Chunk:
                {
                    ChunkWrite c = u.Chunk;
                    byte[] key = ChunkKey(chainId, c.Sha256.Span);
                    if (c.TouchOnly)
                    {
                        ChunkInfoRecord? info = CurrentChunkInfo(key, chunkInfo);
                        if (info is { } current && c.TouchedUnixMs > current.TouchedUnixMs)
                            PutChunkInfo(batch, ref chunkInfo, key, current with { TouchedUnixMs = c.TouchedUnixMs });
                    }
                    else
                    {
                        batch.Put(Chunks, key, ArrayOf(c.Data));
                        PutChunkInfo(batch, ref chunkInfo, key, new ChunkInfoRecord(c.TouchedUnixMs, (uint)c.Data.Length));
                    }
                    var logged = new Update { Seq = u.Seq, Epoch = u.Epoch, Chunk = new ChunkWrite { Sha256 = c.Sha256, TouchedUnixMs = c.TouchedUnixMs, TouchOnly = c.TouchOnly } };
                    batch.Put(Log, LogKey(chainId, u.Seq), logged.ToByteArray());
                    break;
                }
                case Update.OpOneofCase.ChunkDelete:
                {
                    foreach (ByteString id in u.ChunkDelete.Sha256)
                    {
                        byte[] key = ChunkKey(chainId, id.Span);
                        if (CurrentChunkInfo(key, chunkInfo) is { } info && info.TouchedUnixMs < u.ChunkDelete.OlderThanUnixMs)
                        {
                            batch.Delete(Chunks, key);
                            batch.Delete(ChunkInfo, key);
                            (chunkInfo ??= new())[Convert.ToBase64String(key)] = null;
                        }
                    }
                    batch.Put(Log, LogKey(chainId, u.Seq), u.ToByteArray());
                    break;
                }
                case Update.OpOneofCase.Object:
                {
                    ObjectMeta meta = u.Object.Meta;
                    byte[] key = ObjectKey(chainId, meta.Bucket, meta.Key.Span);
                    Update loggedObject = u;
                    if (u.Object.LastChunk is { } last)
                    {
                        byte[] chunkKey = ChunkKey(chainId, last.Sha256.Span);
                        batch.Put(Chunks, chunkKey, ArrayOf(last.Data));
                        PutChunkInfo(batch, ref chunkInfo, chunkKey, new ChunkInfoRecord((ulong)Math.Max(0, meta.CreatedUnixMs), (uint)last.Data.Length));
                        loggedObject = u.Clone();
                        loggedObject.Object.LastChunk.Data = ByteString.Empty;
                    }
                    batch.Put(Objects, key, meta.ToByteArray());
                    (touched ??= new())[Convert.ToBase64String(key)] = true;
                    batch.Put(Dedup, DedupKey(chainId, u.Object.RequestId.Span), EncodeDedup(u.Seq, false));
                    batch.Put(Log, LogKey(chainId, u.Seq), loggedObject.ToByteArray());
                    break;
                }
                case Update.OpOneofCase.Delete:
                {
                    byte[] key = ObjectKey(chainId, u.Delete.Bucket, u.Delete.Key.Span);
                    string k64 = Convert.ToBase64String(key);
                    bool existed = touched is not null && touched.TryGetValue(k64, out bool t) ? t : Engine.Get(Objects, key) is not null;
                    p.Existed = existed;
                    batch.Delete(Objects, key);
                    (touched ??= new())[k64] = false;
                    batch.Put(Dedup, DedupKey(chainId, u.Delete.RequestId.Span), EncodeDedup(u.Seq, existed));
                    batch.Put(Log, LogKey(chainId, u.Seq), u.ToByteArray());
                    break;
                }
                default:
                    throw new InvalidOperationException($"chain {chainId}: update {u.Seq} has no operation");
            }
        }
        var applied = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(applied, group[^1].Update.Seq);
        batch.Put(Meta, AppliedKey(chainId), applied);
        return batch;
    }

    /// <summary>
    /// The bytes of a chunk as an array without copying when the ByteString owns exactly one (a parsed message's
    /// does): chunks are large, and the engine copies a batch's values anyway. ByteStrings are immutable, and the
    /// batch only reads the array.
    /// </summary>
    private static byte[] ArrayOf(ByteString data) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(data.Memory, out ArraySegment<byte> segment)
        && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : data.ToByteArray();

    private ChunkInfoRecord? CurrentChunkInfo(byte[] key, Dictionary<string, ChunkInfoRecord?>? inGroup)
    {
        if (inGroup is not null && inGroup.TryGetValue(Convert.ToBase64String(key), out ChunkInfoRecord? pending))
            return pending;
        return Engine.Get(ChunkInfo, key) is { } b ? ChunkInfoRecord.Decode(b) : null;
    }

    private static void PutChunkInfo(KvBatch batch, ref Dictionary<string, ChunkInfoRecord?>? inGroup, byte[] key, ChunkInfoRecord info)
    {
        batch.Put(ChunkInfo, key, info.Encode());
        (inGroup ??= new())[Convert.ToBase64String(key)] = info;
    }

    /// <summary>Drops log entries up to and including <paramref name="seq"/> (they are on every node of the chain).</summary>
    public ValueTask PruneLogAsync(uint chainId, ulong seq) =>
        Engine.WriteAsync(new KvBatch().DeleteRange(Log, LogKey(chainId, 0), LogKey(chainId, seq + 1)));

    private static byte[] EncodeDedup(ulong version, bool existed)
    {
        var b = new byte[9];
        BinaryPrimitives.WriteUInt64BigEndian(b, version);
        b[8] = existed ? (byte)1 : (byte)0;
        return b;
    }
}

/// <summary>A chunk's record beside its data: when it was last written or touched (head's clock) and its size.</summary>
internal readonly record struct ChunkInfoRecord(ulong TouchedUnixMs, uint Size)
{
    public byte[] Encode()
    {
        var b = new byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(b, TouchedUnixMs);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(8), Size);
        return b;
    }

    public static ChunkInfoRecord? Decode(ReadOnlySpan<byte> b) =>
        b.Length == 12 ? new ChunkInfoRecord(BinaryPrimitives.ReadUInt64BigEndian(b), BinaryPrimitives.ReadUInt32BigEndian(b[8..])) : null;
}

internal enum ChunkState { Ok, Missing, Corrupt }

/// <summary>A chunk read from the local store: its data when intact, or why not.</summary>
internal readonly record struct ChunkRead(ChunkState State, byte[]? Data, string? Problem);
