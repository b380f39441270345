using System.Globalization;

namespace Chain.Harness.Faults;

/// <summary>Which RocksDB file <see cref="CorruptNemesis"/> damages, and how.</summary>
public enum CorruptionMode
{
    /// <summary>
    /// Flip bytes in the data blocks (first half) of the node's largest SST file: data the node acknowledged long ago.
    /// Every block carries a CRC32C, so reads of it must fail with a corruption error, never return bad data.
    /// If the node has no SST yet, the nemesis first restarts it once: RocksDB flushes the recovered WAL into L0.
    /// </summary>
    FlipSst,

    /// <summary>Flip bytes in the middle of the newest WAL file (synced, acknowledged writes not yet in an SST).</summary>
    FlipWal,

    /// <summary>Cut the newest WAL file to half its length (a torn tail).</summary>
    TruncateWal,
}

/// <summary>
/// Corrupt a replica: SIGKILL a node (target: node index mod nodes), damage one of its RocksDB files as
/// <see cref="CorruptionMode"/> says, restart it and report what happened (started or not, and its stderr tail).
/// Heal SIGKILLs it, wipes its data directory and starts it empty: it rejoins and re-syncs from its chain.
/// Node-side repair is not this class's job; it only leaves the cluster in a state the harness can heal.
/// </summary>
public sealed class CorruptNemesis : INemesis
{
    private const int FlipsPerFile = 8;
    private const int FlipBytes = 16;

    private readonly LocalCluster _cluster;
    private readonly CorruptionMode _mode;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly HashSet<int> _corrupted = new();

    public CorruptNemesis(LocalCluster cluster, CorruptionMode mode = CorruptionMode.FlipSst)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        _cluster = cluster;
        _mode = mode;
    }

    public bool Supports(FaultKind kind) => kind == FaultKind.Corrupt;

    /// <summary>Whether the node restarted after the corruption (null before any injection): the finding in one bit.</summary>
    public bool? LastRestartSucceeded { get; private set; }

    public async Task<string> InjectAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        if (!Supports(fault.Kind))
            throw new NotSupportedException($"{nameof(CorruptNemesis)} does not inject {fault.Kind}");
        int index = Mod(fault.Target, _cluster.Nodes.Count);
        NodeProcess node = _cluster.Nodes[index];
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            lock (_corrupted)
                _corrupted.Add(index);
            string db = Path.Combine(node.DataDirectory, "node.rocksdb");
            await _cluster.KillNodeAsync(index).ConfigureAwait(false);
            if (_mode == CorruptionMode.FlipSst && LargestSst(db) is null)
            {
                // No SST yet: one restart makes RocksDB flush what it recovers from the WAL into an L0 file.
                await _cluster.StartNodeAsync(index, cancellationToken).ConfigureAwait(false);
                await _cluster.KillNodeAsync(index).ConfigureAwait(false);
            }
            string damage = Damage(db, fault.Target);
            string outcome;
            try
            {
                await _cluster.StartNodeAsync(index, cancellationToken).ConfigureAwait(false);
                LastRestartSucceeded = true;
                outcome = $"{node.Id} restarted (pid {node.Pid})";
            }
            catch (LocalClusterException e)
            {
                LastRestartSucceeded = false;
                outcome = $"{node.Id} did not restart: {e.Message}";
            }
            return $"{node.Id}: {damage}; {outcome}";
        }
        finally
        {
            _gate.Release();
        }
    }

    public Task HealAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        return HealNodeAsync(Mod(fault.Target, _cluster.Nodes.Count), cancellationToken);
    }

    public async Task HealAllAsync(CancellationToken cancellationToken)
    {
        int[] nodes;
        lock (_corrupted)
            nodes = _corrupted.ToArray();
        foreach (int index in nodes)
            await HealNodeAsync(index, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync()
    {
        _gate.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task HealNodeAsync(int index, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            lock (_corrupted)
            {
                if (!_corrupted.Remove(index))
                    return;
            }
            NodeProcess node = _cluster.Nodes[index];
            await _cluster.KillNodeAsync(index).ConfigureAwait(false);
            // Empty the directory but keep it (it may be a tmpfs mount point).
            var directory = new DirectoryInfo(node.DataDirectory);
            foreach (FileSystemInfo entry in directory.EnumerateFileSystemInfos())
            {
                if (entry is DirectoryInfo sub)
                    sub.Delete(recursive: true);
                else
                    entry.Delete();
            }
            await WaitUntilRemovedAsync(node.Id, ct).ConfigureAwait(false);
            await _cluster.StartNodeAsync(index, ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// An empty node must come back as a newcomer, not as the member it was (it would claim a position with none of the
    /// chain's history): wait (bounded) until the master has dropped it from every chain where it has company.
    /// </summary>
    private async Task WaitUntilRemovedAsync(string nodeId, CancellationToken ct)
    {
        TimeSpan failureTimeout = _cluster.Options.FailureTimeout ?? TimeSpan.FromSeconds(3);
        DateTime deadline = DateTime.UtcNow + failureTimeout * 5 + TimeSpan.FromSeconds(10);
        await using Chain.Client.ChainClient client = _cluster.CreateClient(o => o with { OperationTimeout = TimeSpan.FromSeconds(3), AttemptTimeout = TimeSpan.FromSeconds(1), MaxAttempts = 2 });
        string seen = "no answer from the master";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                Chain.Client.ClusterStatus status = await client.GetStatusAsync(ct).ConfigureAwait(false);
                var member = status.Chains.Where(c => c.NodeIds.Contains(nodeId) && c.NodeIds.Count > 1).Select(c => c.ChainId).ToArray();
                if (member.Length == 0)
                    return;
                seen = $"still in chains {string.Join(",", member)}";
            }
            catch (Chain.Client.ChainException e)
            {
                seen = e.Message;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(100), ct).ConfigureAwait(false);
        }
        throw new TimeoutException($"the master did not remove the wiped {nodeId} from its chains ({seen})");
    }

    /// <summary>Damages one file as the mode says; returns what was done (file, offsets, sizes).</summary>
    private string Damage(string db, int seed)
    {
        switch (_mode)
        {
            case CorruptionMode.FlipSst:
                {
                    FileInfo sst = LargestSst(db) ?? throw new InvalidOperationException($"no SST file in {db} even after a restart");
                    return "SST " + Flip(sst, 0, sst.Length / 2, seed);
                }
            case CorruptionMode.FlipWal:
                {
                    FileInfo wal = NewestWal(db);
                    return "WAL " + Flip(wal, wal.Length / 4, wal.Length * 3 / 4, seed);
                }
            case CorruptionMode.TruncateWal:
                {
                    FileInfo wal = NewestWal(db);
                    long before = wal.Length;
                    using (var stream = new FileStream(wal.FullName, FileMode.Open, FileAccess.Write))
                        stream.SetLength(before / 2);
                    return $"WAL {wal.Name} truncated from {before} to {before / 2} bytes";
                }
            default:
                throw new InvalidOperationException($"unknown corruption mode {_mode}");
        }
    }

    /// <summary>XORs <see cref="FlipsPerFile"/> runs of <see cref="FlipBytes"/> bytes with 0xFF at seeded offsets in [from, to).</summary>
    private static string Flip(FileInfo file, long from, long to, int seed)
    {
        if (to - from < FlipBytes)
            throw new InvalidOperationException($"{file.FullName} is too small to corrupt ({file.Length} bytes)");
        var random = new Random(seed);
        var offsets = new List<long>();
        using (var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.ReadWrite))
        {
            byte[] buffer = new byte[FlipBytes];
            for (int i = 0; i < FlipsPerFile; i++)
            {
                long offset = from + random.NextInt64(to - from - FlipBytes + 1);
                stream.Position = offset;
                stream.ReadExactly(buffer);
                for (int b = 0; b < buffer.Length; b++)
                    buffer[b] ^= 0xFF;
                stream.Position = offset;
                stream.Write(buffer);
                offsets.Add(offset);
            }
            stream.Flush(flushToDisk: true);
        }
        return $"{file.Name} ({file.Length} bytes): {FlipsPerFile}x{FlipBytes} bytes inverted at " +
               string.Join(",", offsets.Order().Select(o => o.ToString(CultureInfo.InvariantCulture)));
    }

    private static FileInfo? LargestSst(string db) =>
        new DirectoryInfo(db).EnumerateFiles("*.sst").OrderByDescending(f => f.Length).FirstOrDefault();

    private static FileInfo NewestWal(string db) =>
        new DirectoryInfo(db).EnumerateFiles("*.log").Where(f => f.Length > 0).OrderByDescending(f => f.Name, StringComparer.Ordinal).FirstOrDefault()
        ?? throw new InvalidOperationException($"no non-empty WAL file in {db}");

    private static int Mod(int value, int modulus) => ((value % modulus) + modulus) % modulus;
}
