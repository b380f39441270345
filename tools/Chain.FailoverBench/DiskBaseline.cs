using System.Diagnostics;

namespace Chain.FailoverBench;

/// <summary>A timed copy: bytes and files copied, and the elapsed time including the fsyncs.</summary>
public sealed record CopyResult(long Bytes, int Files, TimeSpan Elapsed)
{
    /// <summary>MB/s with MB = 10^6 bytes.</summary>
    public double MBps => Elapsed > TimeSpan.Zero ? Bytes / 1e6 / Elapsed.TotalSeconds : double.NaN;
}

/// <summary>
/// The raw local rate of the work a sync does on the joiner's side: copying data on the same file system and
/// making it durable. The source is written and fsynced first and the page cache is left alone, so the source
/// is read from memory, as a tail mostly reads its recent data.
/// </summary>
public static class DiskBaseline
{
    private const int BufferBytes = 1024 * 1024;

    /// <summary>Writes a file of <paramref name="bytes"/> random bytes (fsynced), then times File.Copy of it plus fsync of the copy.</summary>
    public static CopyResult FileCopy(string directory, long bytes)
    {
        Directory.CreateDirectory(directory);
        string source = Path.Combine(directory, "source.bin");
        string copy = Path.Combine(directory, "copy.bin");
        try
        {
            var buffer = new byte[BufferBytes];
            using (var stream = new FileStream(source, FileMode.Create, FileAccess.Write, FileShare.None, 0))
            {
                for (long left = bytes; left > 0; left -= buffer.Length)
                {
                    Random.Shared.NextBytes(buffer);
                    stream.Write(buffer, 0, (int)Math.Min(buffer.Length, left));
                }
                stream.Flush(flushToDisk: true);
            }

            long start = Stopwatch.GetTimestamp();
            File.Copy(source, copy, overwrite: true);
            Fsync(copy);
            TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
            return new CopyResult(new FileInfo(copy).Length, 1, elapsed);
        }
        finally
        {
            TryDelete(source);
            TryDelete(copy);
        }
    }

    /// <summary>Times a recursive copy of <paramref name="source"/> (File.Copy per file, then fsync of each copy) to <paramref name="destination"/>.</summary>
    public static CopyResult DirectoryCopy(string source, string destination)
    {
        long start = Stopwatch.GetTimestamp();
        long bytes = 0;
        var copies = new List<string>();
        foreach (string file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(destination, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
            copies.Add(target);
            bytes += new FileInfo(target).Length;
        }
        foreach (string copy in copies)
            Fsync(copy);
        return new CopyResult(bytes, copies.Count, Stopwatch.GetElapsedTime(start));
    }

    private static void Fsync(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, 0);
        stream.Flush(flushToDisk: true);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
