using System.Security.Cryptography;
using System.Text;

namespace Chain.Jepsen;

/// <summary>Generated content of the large-object workload: unique per value, reproducible from (seed, value).</summary>
public static class LargeContent
{
    public static byte[] Generate(long seed, string value, int size)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        var content = new byte[size];
        byte[] tag = Encoding.UTF8.GetBytes($"{seed}:{value}:");
        ulong state = BitConverter.ToUInt64(SHA256.HashData(tag), 0) | 1;
        Span<byte> span = content;
        int i = 0;
        for (; i + 8 <= span.Length; i += 8)
        {
            // xorshift64*: cheap, and different for every (seed, value).
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            BitConverter.TryWriteBytes(span[i..], state * 0x2545F4914F6CDD1DUL);
        }
        for (; i < span.Length; i++)
            span[i] = (byte)i;
        tag.AsSpan(0, Math.Min(tag.Length, size)).CopyTo(span);
        return content;
    }
}
