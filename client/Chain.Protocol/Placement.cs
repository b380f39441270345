using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Chain.Protocol;

/// <summary>
/// Stable placement of keys on chains: SHA-256 over (bucket, 0x00, key), first 8 bytes big-endian, modulo
/// the number of chains. Chains are numbered 0..count-1. Never use string.GetHashCode (randomized per process).
/// </summary>
public static class Placement
{
    public static uint ChainFor(string bucket, ReadOnlySpan<byte> key, int chainCount)
    {
        if (chainCount <= 0)
            throw new ArgumentOutOfRangeException(nameof(chainCount), "no chains");
        int bucketBytes = Encoding.UTF8.GetByteCount(bucket);
        byte[] input = new byte[bucketBytes + 1 + key.Length];
        Encoding.UTF8.GetBytes(bucket, input);
        input[bucketBytes] = 0;
        key.CopyTo(input.AsSpan(bucketBytes + 1));
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(input, digest);
        ulong h = BinaryPrimitives.ReadUInt64BigEndian(digest);
        return (uint)(h % (ulong)chainCount);
    }

    /// <summary>
    /// The chain a distributed chunk lives on: its SHA-256 (already uniform), first 8 bytes big-endian, modulo the
    /// number of chains. Identical chunks of any objects land on the same chain and are stored once.
    /// </summary>
    public static uint ChainForChunk(ReadOnlySpan<byte> sha256, int chainCount)
    {
        if (chainCount <= 0)
            throw new ArgumentOutOfRangeException(nameof(chainCount), "no chains");
        if (sha256.Length != 32)
            throw new ArgumentException("a chunk id is a 32-byte SHA-256", nameof(sha256));
        return (uint)(BinaryPrimitives.ReadUInt64BigEndian(sha256) % (ulong)chainCount);
    }
}
