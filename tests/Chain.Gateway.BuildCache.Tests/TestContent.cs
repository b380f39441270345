using System.Net;
using System.Security.Cryptography;

namespace Chain.Gateway.BuildCache.Tests;

internal static class TestContent
{
    public static byte[] Random(int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static string Sha256Hex(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    /// <summary>A ccache-shaped key: 4 hex digits and 29 base32hex characters.</summary>
    public static string CcacheKey(int seed)
    {
        const string base32hex = "0123456789abcdefghijklmnopqrstuv";
        var random = new Random(seed);
        var chars = new char[33];
        for (int i = 0; i < chars.Length; i++)
            chars[i] = i < 4 ? "0123456789abcdef"[random.Next(16)] : base32hex[random.Next(32)];
        return new string(chars);
    }
}

/// <summary>A body sent with chunked transfer encoding (no Content-Length), in pieces.</summary>
internal sealed class ChunkedContent(byte[] data, Func<int, Task>? beforePiece = null) : HttpContent
{
    private const int Piece = 64 * 1024;

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        for (int offset = 0, index = 0; offset < data.Length; offset += Piece, index++)
        {
            if (beforePiece is not null)
                await beforePiece(index);
            await stream.WriteAsync(data.AsMemory(offset, Math.Min(Piece, data.Length - offset)));
            await stream.FlushAsync();
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
