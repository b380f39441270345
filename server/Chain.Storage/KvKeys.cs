using System.Buffers.Binary;

namespace Chain.Storage;

/// <summary>
/// Helpers to build ordered keys: big-endian integers sort numerically under byte-wise comparison, so
/// <c>Concat(prefix, EncodeUInt64(n))</c> keys iterate in numeric order of n.
/// </summary>
public static class KvKeys
{
    /// <summary>Byte-wise (unsigned lexicographic) ordering and equality of byte arrays, the engine key order.</summary>
    public static ByteArrayComparer Comparer { get; } = ByteArrayComparer.Instance;

    /// <summary>Byte-wise comparison (negative, zero, positive).</summary>
    public static int Compare(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right) => left.SequenceCompareTo(right);

    public static byte[] EncodeUInt32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return bytes;
    }

    public static byte[] EncodeUInt64(ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        return bytes;
    }

    public static void WriteUInt32(Span<byte> destination, uint value) => BinaryPrimitives.WriteUInt32BigEndian(destination, value);

    public static void WriteUInt64(Span<byte> destination, ulong value) => BinaryPrimitives.WriteUInt64BigEndian(destination, value);

    /// <summary>Reads a big-endian UInt32 from the first 4 bytes.</summary>
    public static uint DecodeUInt32(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt32BigEndian(source);

    /// <summary>Reads a big-endian UInt64 from the first 8 bytes.</summary>
    public static ulong DecodeUInt64(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt64BigEndian(source);

    /// <summary>Concatenates the parts into a new array.</summary>
    public static byte[] Concat(params ReadOnlySpan<byte[]> parts)
    {
        int length = 0;
        foreach (var part in parts)
        {
            ArgumentNullException.ThrowIfNull(part, nameof(parts));
            length = checked(length + part.Length);
        }

        var result = new byte[length];
        int offset = 0;
        foreach (var part in parts)
        {
            part.CopyTo(result, offset);
            offset += part.Length;
        }

        return result;
    }

    /// <summary>Concatenates two spans into a new array.</summary>
    public static byte[] Concat(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        var result = new byte[checked(first.Length + second.Length)];
        first.CopyTo(result);
        second.CopyTo(result.AsSpan(first.Length));
        return result;
    }

    /// <summary>True when <paramref name="key"/> starts with <paramref name="prefix"/>.</summary>
    public static bool HasPrefix(ReadOnlySpan<byte> key, ReadOnlySpan<byte> prefix) => key.StartsWith(prefix);

    /// <summary>
    /// The smallest key greater than every key that starts with <paramref name="prefix"/> (an exclusive upper bound for
    /// a prefix scan), or null when there is none (the prefix is empty or all 0xFF bytes).
    /// </summary>
    public static byte[]? PrefixUpperBound(ReadOnlySpan<byte> prefix)
    {
        int last = prefix.Length - 1;
        while (last >= 0 && prefix[last] == 0xFF)
        {
            last--;
        }

        if (last < 0)
        {
            return null;
        }

        var bound = prefix[..(last + 1)].ToArray();
        bound[last]++;
        return bound;
    }

    /// <summary>Overload for arrays (avoids ambiguity at call sites passing byte[]).</summary>
    public static byte[]? PrefixUpperBound(byte[] prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return PrefixUpperBound((ReadOnlySpan<byte>)prefix);
    }
}

/// <summary>Byte-wise (unsigned lexicographic) comparer and content equality for byte arrays.</summary>
public sealed class ByteArrayComparer : IComparer<byte[]>, IEqualityComparer<byte[]>
{
    public static ByteArrayComparer Instance { get; } = new();

    private ByteArrayComparer()
    {
    }

    public int Compare(byte[]? x, byte[]? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }

        if (x is null)
        {
            return -1;
        }

        if (y is null)
        {
            return 1;
        }

        return x.AsSpan().SequenceCompareTo(y);
    }

    public bool Equals(byte[]? x, byte[]? y)
    {
        if (ReferenceEquals(x, y))
        {
            return true;
        }

        return x is not null && y is not null && x.AsSpan().SequenceEqual(y);
    }

    public int GetHashCode(byte[] obj)
    {
        ArgumentNullException.ThrowIfNull(obj);
        var hash = new HashCode();
        hash.AddBytes(obj);
        return hash.ToHashCode();
    }
}
