using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Chain.Bench;
using Microsoft.Win32.SafeHandles;

namespace Chain.ScaleBench;

/// <summary>One timed transfer: bytes, elapsed time (including the fsync of a write), CPU idle during it, and a note.</summary>
public sealed record Transfer(string Name, long Bytes, TimeSpan Elapsed, double CpuIdlePercent, string? Note = null)
{
    /// <summary>MB/s with MB = 10^6 bytes.</summary>
    public double MBps => Elapsed > TimeSpan.Zero ? Bytes / 1e6 / Elapsed.TotalSeconds : double.NaN;
}

/// <summary>
/// The raw disk baseline on the file system of the data directory: sequential writes (fsync at the end) and
/// sequential reads, through the page cache and with O_DIRECT. Reads through the page cache come after dropping it
/// (root only; otherwise the figure is marked as cached).
/// </summary>
public static partial class RawDisk
{
    private const int BlockBytes = 4 * 1024 * 1024;
    private const int Alignment = 4096;
    private const int F_GETFL = 3;
    private const int F_SETFL = 4;

    /// <summary>
    /// Writes, reads, then the same with O_DIRECT; every file is deleted afterwards. <paramref name="dropCache"/>: drop the
    /// page cache before the buffered read (root only; it affects the whole machine).
    /// </summary>
    public static IReadOnlyList<Transfer> Measure(string directory, long bytes, bool dropCache, Action<string> log, CancellationToken ct)
    {
        Directory.CreateDirectory(directory);
        long size = bytes / Alignment * Alignment;
        var results = new List<Transfer>();
        string buffered = Path.Combine(directory, "raw-buffered.bin");
        string direct = Path.Combine(directory, "raw-direct.bin");
        try
        {
            log($"raw disk: sequential write of {ByteSize.Format(size)} + fsync ...");
            results.Add(Write(buffered, size, oDirect: false, ct));
            string? dropped = dropCache ? DropPageCache() : "not asked to drop it";
            log($"raw disk: sequential read {(dropped is null ? "after dropping the page cache" : "(page cache not dropped: " + dropped + ")")} ...");
            results.Add(Read(buffered, oDirect: false, dropped is null ? "cold" : "CACHED: " + dropped, ct));
            TryDelete(buffered);

            log("raw disk: the same with O_DIRECT ...");
            try
            {
                results.Add(Write(direct, size, oDirect: true, ct));
                results.Add(Read(direct, oDirect: true, null, ct));
            }
            catch (IOException e)
            {
                log($"raw disk: O_DIRECT not available here: {e.Message}");
            }
        }
        finally
        {
            TryDelete(buffered);
            TryDelete(direct);
        }
        return results;
    }

    /// <summary>Drops the page cache (sync first). Null on success, else why not (not root, not allowed).</summary>
    public static string? DropPageCache()
    {
        if (!OperatingSystem.IsLinux())
            return "not Linux";
        if (Environment.UserName != "root" && geteuid() != 0)
            return "not root";
        sync();
        try
        {
            File.WriteAllText("/proc/sys/vm/drop_caches", "3");
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }

    private static Transfer Write(string path, long size, bool oDirect, CancellationToken ct)
    {
        using var block = AlignedBlock.Allocate(BlockBytes);
        Random.Shared.NextBytes(block.Span);
        using SafeFileHandle handle = File.OpenHandle(path, FileMode.Create, FileAccess.ReadWrite, FileShare.None);
        if (oDirect)
            SetDirect(handle);
        CpuSample? cpu = CpuSample.Read();
        long start = Stopwatch.GetTimestamp();
        for (long offset = 0; offset < size; offset += BlockBytes)
        {
            ct.ThrowIfCancellationRequested();
            // Every block differs (its first 8 bytes hold its offset), in case the device deduplicates.
            BitConverter.TryWriteBytes(block.Span, offset);
            int take = (int)Math.Min(BlockBytes, size - offset);
            RandomAccess.Write(handle, block.Span[..take], offset);
        }
        if (fsync(handle.DangerousGetHandle().ToInt32()) != 0)
            throw new IOException($"fsync of {path} failed: errno {Marshal.GetLastPInvokeError()}");
        TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
        return new Transfer(oDirect ? "raw disk write (O_DIRECT + fsync)" : "raw disk write (buffered + fsync)", size, elapsed,
            CpuSample.IdlePercent(cpu, CpuSample.Read()));
    }

    private static Transfer Read(string path, bool oDirect, string? note, CancellationToken ct)
    {
        using var block = AlignedBlock.Allocate(BlockBytes);
        using SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        if (oDirect)
            SetDirect(handle);
        long size = RandomAccess.GetLength(handle);
        CpuSample? cpu = CpuSample.Read();
        long start = Stopwatch.GetTimestamp();
        long total = 0;
        while (total < size)
        {
            ct.ThrowIfCancellationRequested();
            int read = RandomAccess.Read(handle, block.Span, total);
            if (read <= 0)
                break;
            total += read;
        }
        TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
        if (total != size)
            throw new IOException($"read {total} of {size} bytes of {path}");
        return new Transfer(oDirect ? "raw disk read (O_DIRECT)" : "raw disk read (buffered)", total, elapsed,
            CpuSample.IdlePercent(cpu, CpuSample.Read()), note);
    }

    /// <summary>Turns on O_DIRECT with fcntl and checks that the kernel kept it (some file systems refuse it).</summary>
    private static void SetDirect(SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux())
            throw new IOException("O_DIRECT needs Linux");
        int direct = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x10000 : 0x4000;
        int fd = handle.DangerousGetHandle().ToInt32();
        int flags = fcntl(fd, F_GETFL, 0);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | direct) != 0)
            throw new IOException($"fcntl(O_DIRECT) failed: errno {Marshal.GetLastPInvokeError()}");
        if ((fcntl(fd, F_GETFL, 0) & direct) == 0)
            throw new IOException("the file system ignored O_DIRECT");
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc")]
    private static partial void sync();

    [LibraryImport("libc")]
    private static partial uint geteuid();

    /// <summary>Page-aligned native memory (O_DIRECT needs aligned buffers).</summary>
    private sealed unsafe class AlignedBlock : IDisposable
    {
        private void* _pointer;
        private readonly int _length;

        private AlignedBlock(void* pointer, int length)
        {
            _pointer = pointer;
            _length = length;
        }

        public static AlignedBlock Allocate(int length) => new(NativeMemory.AlignedAlloc((nuint)length, Alignment), length);

        public Span<byte> Span => _pointer is null ? throw new ObjectDisposedException(nameof(AlignedBlock)) : new Span<byte>(_pointer, _length);

        public void Dispose()
        {
            if (_pointer is null)
                return;
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }

    internal static string Describe(Transfer t) =>
        $"{t.Name}: {ByteSize.Format(t.Bytes)} in {t.Elapsed.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture)} s = {t.MBps.ToString("0.0", CultureInfo.InvariantCulture)} MB/s";
}
