using System.Text;

namespace Chain.Storage.Tests;

internal static class TestUtil
{
    public static byte[] B(params byte[] bytes) => bytes;

    public static byte[] S(string text) => Encoding.UTF8.GetBytes(text);

    public static string Hex(ReadOnlySpan<byte> bytes) => bytes.Length == 0 ? "<empty>" : Convert.ToHexString(bytes);

    /// <summary>All entries in [lower, upper) in forward order.</summary>
    public static List<(byte[] Key, byte[] Value)> ReadAll(IKvEngine engine, string cf, byte[]? lower = null, byte[]? upper = null, IKvSnapshot? snapshot = null)
    {
        var result = new List<(byte[], byte[])>();
        using var it = engine.Iterate(cf, lower, upper, snapshot);
        for (it.SeekToFirst(); it.Valid; it.Next())
        {
            result.Add((it.Key.ToArray(), it.Value.ToArray()));
        }

        return result;
    }

    /// <summary>All entries in [lower, upper) in backward order.</summary>
    public static List<(byte[] Key, byte[] Value)> ReadAllReverse(IKvEngine engine, string cf, byte[]? lower = null, byte[]? upper = null, IKvSnapshot? snapshot = null)
    {
        var result = new List<(byte[], byte[])>();
        using var it = engine.Iterate(cf, lower, upper, snapshot);
        for (it.SeekToLast(); it.Valid; it.Prev())
        {
            result.Add((it.Key.ToArray(), it.Value.ToArray()));
        }

        return result;
    }

    public static List<string> Keys(IEnumerable<(byte[] Key, byte[] Value)> entries) => entries.Select(e => Hex(e.Key)).ToList();

    public static int OpenFileDescriptors() => Directory.GetFileSystemEntries("/proc/self/fd").Length;
}

/// <summary>A fresh directory under the system temp directory, deleted on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "chain-storage-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
