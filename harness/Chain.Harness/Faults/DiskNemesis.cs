using System.Globalization;

namespace Chain.Harness.Faults;

/// <summary>What <see cref="DiskNemesis"/> does to the node at heal time, after deleting its fill file.</summary>
public enum DiskHealRestart
{
    /// <summary>Only delete the file; restart the node only if it exited meanwhile.</summary>
    IfExited,

    /// <summary>Delete the file and restart the node (SIGKILL + start from its disk) in any case.</summary>
    Always,
}

/// <summary>
/// Disk full: fills the free space of a node's size-limited tmpfs data directory (cluster started with
/// <see cref="LocalClusterOptions.NodeDataTmpfsBytes"/>) with a file; heal deletes the file. Target: node index
/// (mod nodes). What the node does meanwhile is what the harness checks: it must not acknowledge a write it could
/// not make durable, and it must serve again once space returns (see docs/nemeses.md for what it does today).
/// </summary>
public sealed class DiskNemesis : INemesis
{
    public const string FillFileName = "nemesis-disk-full.fill";

    private const int LargeBlock = 1 << 20;
    private const int SmallBlock = 4096;

    private readonly LocalCluster _cluster;
    private readonly DiskHealRestart _restart;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<int, string> _filled = new();

    public DiskNemesis(LocalCluster cluster, DiskHealRestart restart = DiskHealRestart.IfExited)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        if (!cluster.NodeDataOnTmpfs)
            throw new InvalidOperationException("DiskNemesis needs a cluster started with LocalClusterOptions.NodeDataTmpfsBytes (root): it fills the node's own tmpfs, never a shared disk");
        _cluster = cluster;
        _restart = restart;
    }

    public bool Supports(FaultKind kind) => kind == FaultKind.DiskFull;

    /// <summary>Fill files in place, by node index.</summary>
    public IReadOnlyCollection<int> FilledNodes
    {
        get
        {
            lock (_filled)
                return _filled.Keys.ToArray();
        }
    }

    public async Task<string> InjectAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        if (!Supports(fault.Kind))
            throw new NotSupportedException($"{nameof(DiskNemesis)} does not inject {fault.Kind}");
        int index = Mod(fault.Target, _cluster.Nodes.Count);
        NodeProcess node = _cluster.Nodes[index];
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            string path = Path.Combine(node.DataDirectory, FillFileName);
            long written = await FillAsync(path, Capacity(node.DataDirectory), cancellationToken).ConfigureAwait(false);
            lock (_filled)
                _filled[index] = path;
            long left = new DriveInfo(node.DataDirectory).AvailableFreeSpace;
            return $"filled {node.Id}'s tmpfs ({node.DataDirectory}) with {written} bytes; {left} bytes left";
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task HealAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        await HealNodeAsync(Mod(fault.Target, _cluster.Nodes.Count), cancellationToken).ConfigureAwait(false);
    }

    public async Task HealAllAsync(CancellationToken cancellationToken)
    {
        foreach (int index in FilledNodes)
            await HealNodeAsync(index, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (int index in FilledNodes)
        {
            string? path;
            lock (_filled)
                _filled.Remove(index, out path);
            try
            {
                if (path is not null)
                    File.Delete(path);
            }
            catch (DirectoryNotFoundException)
            {
                // The cluster (and its tmpfs) is already gone.
            }
        }
        _gate.Dispose();
    }

    private async Task HealNodeAsync(int index, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            string? path;
            lock (_filled)
                _filled.Remove(index, out path);
            if (path is null)
                return;
            File.Delete(path);
            NodeProcess node = _cluster.Nodes[index];
            if (_restart == DiskHealRestart.Always && node.IsRunning)
                await _cluster.KillNodeAsync(index).ConfigureAwait(false);
            if (!node.IsRunning)
                await _cluster.StartNodeAsync(index, ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Size of the filesystem holding <paramref name="directory"/>: the bound of the fill loop.</summary>
    private static long Capacity(string directory) => new DriveInfo(directory).TotalSize;

    /// <summary>Writes 1 MiB blocks, then 4 KiB blocks, until ENOSPC; never more than the filesystem's size.</summary>
    private static async Task<long> FillAsync(string path, long capacity, CancellationToken ct)
    {
        long written = 0;
        byte[] block = new byte[LargeBlock];
        new Random(17).NextBytes(block);
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
        foreach (int size in new[] { LargeBlock, SmallBlock })
        {
            while (written <= capacity)
            {
                ct.ThrowIfCancellationRequested();
                try
                {
                    await file.WriteAsync(block.AsMemory(0, size), ct).ConfigureAwait(false);
                    written += size;
                }
                catch (IOException)
                {
                    break; // ENOSPC (a partial write may have landed; the file keeps it)
                }
            }
        }
        if (written > capacity)
            throw new InvalidOperationException($"wrote {written.ToString(CultureInfo.InvariantCulture)} bytes into {path} without running out of space: is it really on the node's tmpfs?");
        return written;
    }

    private static int Mod(int value, int modulus) => ((value % modulus) + modulus) % modulus;
}
