using System.Security.Cryptography;

namespace Chain.Integration.Tests;

/// <summary>Deterministic test payloads and short digests for messages.</summary>
internal static class TestData
{
    public static byte[] Content(int seed, int size)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static string Hex(byte[] data) => Convert.ToHexString(SHA256.HashData(data))[..16];
}
