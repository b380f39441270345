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
///   chunks:  chain | sha256               -> chunk bytes (immutable, content-addressed)
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
    public const string Log = "log";
    public const string Dedup = "dedup";
    public const string Meta = "meta";
    public static readonly string[] ColumnFamilies = { Objects, Chunks, Log, Dedup, Meta };

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

    public byte[]? GetChunk(uint chainId, ReadOnlySpan<byte> sha256) => Engine.Get(Chunks, ChunkKey(chainId, sha256));

    public bool HasChunk(uint chainId, ReadOnlySpan<byte> sha256) => GetChunk(chainId, sha256) is not null;

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
            Update.OpOneofCase.Chunk => u.Chunk,
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
        foreach (PendingUpdate p in group)
        {
            Update u = p.Update;
            switch (u.OpCase)
            {
                case Update.OpOneofCase.Chunk:
                    batch.Put(Chunks, ChunkKey(chainId, u.Chunk.Sha256.Span), u.Chunk.Data.ToByteArray());
                    var logged = new Update { Seq = u.Seq, Epoch = u.Epoch, Chunk = new ChunkWrite { Sha256 = u.Chunk.Sha256 } };
                    batch.Put(Log, LogKey(chainId, u.Seq), logged.ToByteArray());
                    break;
                case Update.OpOneofCase.Object:
                {
                    ObjectMeta meta = u.Object.Meta;
                    byte[] key = ObjectKey(chainId, meta.Bucket, meta.Key.Span);
                    Update loggedObject = u;
                    if (u.Object.LastChunk is { } last)
                    {
                        batch.Put(Chunks, ChunkKey(chainId, last.Sha256.Span), last.Data.ToByteArray());
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
