using System.Security.Cryptography;
using Chain.Protocol;
using Chain.Protocol.V1;
using Google.Protobuf;

namespace Chain.Client;

/// <summary>One chunk of an object's layout: its content address, size and the chain that stores it.</summary>
public sealed record ObjectChunk(ReadOnlyMemory<byte> Sha256, int Size, uint ChainId)
{
    public string Sha256Hex => Convert.ToHexStringLower(Sha256.Span);
}

/// <summary>
/// An object's content as chunks in order (the distribution tier's unit of transfer). A distributed object's chunks are
/// its manifest's; an inline object is one chunk: its whole content on the key's chain, named by the object's SHA-256.
/// </summary>
public sealed record ObjectLayout(ObjectInfo Info, IReadOnlyList<ObjectChunk> Chunks, bool Inline);

/// <summary>The distribution tier's reads: an object's layout, and one verified chunk of it from the store.</summary>
public sealed partial class ChainClient
{
    /// <summary>The object's metadata and its chunks in order (one record read at the key's chain).</summary>
    public async Task<ObjectLayout> GetLayoutAsync(string bucket, string key, CancellationToken cancellationToken = default)
    {
        var keyBytes = CheckObjectArgs(bucket, key);
        var meta = await GetRecordAsync(bucket, key, keyBytes, Stream.Null, 0, null, null, metaOnly: true, cancellationToken).ConfigureAwait(false);
        var snapshot = await _retry.RunAsync("get config", (_, ct) => _config.GetAsync(fresh: false, ct), cancellationToken).ConfigureAwait(false);
        var info = ToObjectInfo(meta, bucket, key);
        if (!meta.Distributed)
        {
            uint chain = Placement.ChainFor(bucket, keyBytes, snapshot.ChainCount);
            return new ObjectLayout(info, [new ObjectChunk(meta.Sha256.ToByteArray(), checked((int)meta.Size), chain)], Inline: true);
        }
        var chunks = new List<ObjectChunk>(meta.Chunks.Count);
        long total = 0;
        foreach (var chunk in meta.Chunks)
        {
            if (chunk.Sha256.Length != SHA256.HashSizeInBytes)
                throw new ChainException($"protocol error: '{bucket}/{key}' lists a chunk id of {chunk.Sha256.Length} bytes");
            chunks.Add(new ObjectChunk(chunk.Sha256.ToByteArray(), (int)chunk.Size, Placement.ChainForChunk(chunk.Sha256.Span, snapshot.ChainCount)));
            total += chunk.Size;
        }
        if (total != info.Size)
            throw new IntegrityException($"'{bucket}/{key}': its chunks add up to {total} bytes, but the object has {info.Size}");
        return new ObjectLayout(info, chunks, Inline: false);
    }

    /// <summary>
    /// Chunk <paramref name="index"/> of the layout from the store (any replica of its chain; an inline object: the object
    /// itself), verified against its SHA-256. An inline object overwritten since the layout was read fails with
    /// <see cref="IntegrityException"/> (its content no longer matches the layout).
    /// </summary>
    public async Task<ReadOnlyMemory<byte>> ReadChunkAsync(ObjectLayout layout, int index, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, layout.Chunks.Count);
        var chunk = layout.Chunks[index];
        string bucket = layout.Info.Bucket, key = layout.Info.Key;
        if (!layout.Inline)
        {
            var reference = new ChunkRef { Sha256 = UnsafeByteOperations.UnsafeWrap(chunk.Sha256), Size = (uint)chunk.Size };
            return await FetchChunkAsync(bucket, key, reference, cancellationToken).ConfigureAwait(false);
        }
        var keyBytes = CheckObjectArgs(bucket, key);
        using var buffer = new MemoryStream(chunk.Size);
        await GetCoreAsync(bucket, key, keyBytes, buffer, 0, null, null, cancellationToken).ConfigureAwait(false);
        var data = buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
        if (data.Length != chunk.Size || !SHA256.HashData(data.Span).AsSpan().SequenceEqual(chunk.Sha256.Span))
            throw new IntegrityException($"'{bucket}/{key}' changed since its layout was read (its content no longer matches SHA-256 {chunk.Sha256Hex})");
        return data;
    }
}
