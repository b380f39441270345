using System.Diagnostics;
using System.Globalization;
using Chain.Client;
using Chain.Protocol.Backup;
using Chain.Protocol.V1;

namespace Chain.Harness;

/// <summary>How <see cref="BackupRestore.RestoreAsync"/> brings a backup up.</summary>
public sealed class RestoreOptions
{
    /// <summary>Root of the restored cluster's files (as <see cref="LocalClusterOptions.DataDirectory"/>); must not hold a cluster yet.</summary>
    public required string DataDirectory { get; set; }

    /// <summary>Master port; nodes use BasePort+1..; 0 picks free ports.</summary>
    public int BasePort { get; set; }

    public string? ServerDllPath { get; set; }

    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(120);

    public TimeSpan? FailureTimeout { get; set; }

    public bool DeleteDataOnDispose { get; set; }

    /// <summary>Measure the raw disk copy rate of the backup's files beside the restore (copies them once to a scratch directory).</summary>
    public bool MeasureRawCopy { get; set; } = true;

    /// <summary>Where the restored cluster's processes run (loopback by default; namespaces for a sealed drill).</summary>
    public ClusterNetwork Network { get; set; } = ClusterNetwork.Loopback;

    /// <summary>Seal the restored cluster's namespaces with these manifests (<see cref="LocalClusterOptions.Seal"/>); null: not sealed.</summary>
    public BellJar.ManifestSet? Seal { get; set; }
}

/// <summary>What a restore did and how fast, next to a raw copy of the same files on the same disk.</summary>
/// <param name="LaidOutBytes">Snapshot bytes written into node data directories: every member of a chain gets the chain's snapshot (R copies).</param>
public sealed record RestoreStats(long Bytes, double Seconds, long Objects, double VerifySeconds, double LayoutSeconds, long RawCopyBytes, double RawCopySeconds,
    long LaidOutBytes)
{
    /// <summary>Bytes laid out (all replicas) per second of the offline layout.</summary>
    public double LayoutMBps => LayoutSeconds > 0 ? LaidOutBytes / 1e6 / LayoutSeconds : 0;

    /// <summary>Backup bytes per second from the start of the restore until the cluster was healthy (checksum pass, layout, start).</summary>
    public double MBps => Seconds > 0 ? Bytes / 1e6 / Seconds : 0;

    /// <summary>Copying every backup file to a scratch directory with fsync, MB/s (0 when not measured).</summary>
    public double RawCopyMBps => RawCopySeconds > 0 ? RawCopyBytes / 1e6 / RawCopySeconds : 0;
}

/// <summary>What <see cref="BackupRestore.VerifyObjectsAsync"/> found: objects read back, bytes, and the ones that did not match.</summary>
public sealed record ObjectVerification(long Objects, long Bytes, long Failed, IReadOnlyList<string> Failures, double Seconds)
{
    public bool Ok => Failed == 0;
}

/// <summary>
/// Restore of a backup (<see cref="ClusterBackup"/>) into a new cluster of real processes (<c>chain restore</c>, the
/// drills): checks every file's size and SHA-256 first (a bad or missing file: <see cref="InvalidDataException"/>
/// naming it, nothing started), lays out fresh data directories offline with <c>Chain.Server restore-master</c> /
/// <c>restore-node</c> (the server's own store code), then starts the cluster as <c>chain up</c> does. The restored
/// cluster has the backup's node ids and node count, on new addresses.
/// </summary>
public static class BackupRestore
{
    private const int VerifyParallelism = 4;
    private const int FailuresKept = 20;

    public static async Task<(LocalCluster Cluster, RestoreStats Stats)> RestoreAsync(string backupDirectory, RestoreOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        string backup = Path.GetFullPath(backupDirectory);
        string root = Path.GetFullPath(options.DataDirectory);
        if (Directory.Exists(Path.Combine(root, "master")))
            throw new InvalidOperationException($"{root} already holds a cluster (master/ exists); restore into a new directory");
        var clock = Stopwatch.StartNew();
        BackupManifest manifest = BackupManifest.Load(backup);
        long bytes = manifest.VerifyFiles(backup);
        ClusterConfig config = ClusterConfig.Parser.ParseFrom(await File.ReadAllBytesAsync(Path.Combine(backup, BackupManifest.ConfigFileName), ct).ConfigureAwait(false));
        if (config.Chains.Count != manifest.ChainCount || manifest.Chains.Count != manifest.ChainCount)
            throw new InvalidDataException($"{Path.Combine(backup, BackupManifest.FileName)}: {manifest.Chains.Count} chains listed, the config has {config.Chains.Count}");
        double verifySeconds = clock.Elapsed.TotalSeconds;
        var parts = manifest.Chains.ToDictionary(c => c.ChainId);
        long laidOut = config.Chains.Sum(c => (parts[c.ChainId].Records.Bytes + parts[c.ChainId].Chunks.Bytes) * c.Nodes.Count);

        (long rawBytes, double rawSeconds) = (0, 0);
        if (options.MeasureRawCopy)
        {
            clock.Stop();
            (rawBytes, rawSeconds) = RawCopy(backup, manifest, Path.Combine(root, ".raw-copy"), ct);
            clock.Start();
        }

        string[] ids = config.Nodes.Select(n => n.Node.NodeId).ToArray();
        var zones = config.Nodes.Select(n => n.Node.Zone).ToArray();
        double layoutSeconds = 0;
        var clusterOptions = new LocalClusterOptions
        {
            DataDirectory = root,
            Nodes = ids.Length,
            NodeIds = ids,
            BasePort = options.BasePort,
            ServerDllPath = options.ServerDllPath,
            StartTimeout = options.StartTimeout,
            FailureTimeout = options.FailureTimeout,
            DeleteDataOnDispose = options.DeleteDataOnDispose,
            ZoneOf = i => zones[i],
            Network = options.Network,
            Seal = options.Seal,
            PrepareDataAsync = async (layout, token) =>
            {
                var layoutClock = Stopwatch.StartNew();
                await LayOutAsync(backup, layout, token).ConfigureAwait(false);
                layoutSeconds = layoutClock.Elapsed.TotalSeconds;
            },
        };
        LocalCluster cluster = await LocalCluster.StartAsync(clusterOptions, ct).ConfigureAwait(false);
        return (cluster, new RestoreStats(bytes, clock.Elapsed.TotalSeconds, manifest.Objects, verifySeconds, layoutSeconds, rawBytes, rawSeconds, laidOut));
    }

    /// <summary>Runs the server's offline restore for the master and every node (two at a time: one per core here).</summary>
    private static async Task LayOutAsync(string backup, LocalClusterLayout layout, CancellationToken ct)
    {
        string addresses = string.Join(",", layout.Nodes.Select(n => $"{n.NodeId}={n.Address}"));
        var jobs = new List<string[]> { new[] { "restore-master", "--backup", backup, "--data", layout.MasterDataDirectory, "--addresses", addresses } };
        jobs.AddRange(layout.Nodes.Select(n => new[] { "restore-node", "--backup", backup, "--data", n.DataDirectory, "--node-id", n.NodeId }));
        await Parallel.ForEachAsync(jobs, new ParallelOptions { MaxDegreeOfParallelism = 2, CancellationToken = ct },
            async (args, token) => await RunServerToolAsync(layout, args, token).ConfigureAwait(false)).ConfigureAwait(false);
    }

    private static async Task RunServerToolAsync(LocalClusterLayout layout, string[] args, CancellationToken ct)
    {
        var start = new ProcessStartInfo(layout.DotnetHost)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(layout.ServerDllPath);
        foreach (string a in args)
            start.ArgumentList.Add(a);
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("could not start Chain.Server");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(ct);
        Task<string> stderr = process.StandardError.ReadToEndAsync(ct);
        try
        {
            await process.WaitForExitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        string output = (await stdout.ConfigureAwait(false)) + (await stderr.ConfigureAwait(false));
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"Chain.Server {args[0]} failed (exit {process.ExitCode.ToString(CultureInfo.InvariantCulture)}): {output.Trim()}");
    }

    /// <summary>Copies every file of the backup to <paramref name="scratch"/> with fsync (then deletes it): bytes and seconds.</summary>
    public static (long Bytes, double Seconds) RawCopy(string backupDirectory, BackupManifest manifest, string scratch, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        LocalCluster.TryDeleteDirectory(scratch);
        Directory.CreateDirectory(scratch);
        var buffer = new byte[1 << 20];
        long bytes = 0;
        var clock = Stopwatch.StartNew();
        try
        {
            foreach (BackupFile file in manifest.Files)
            {
                ct.ThrowIfCancellationRequested();
                string target = Path.Combine(scratch, file.Path);
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                using var source = new FileStream(Path.Combine(backupDirectory, file.Path), FileMode.Open, FileAccess.Read, FileShare.Read, 1);
                using var destination = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1);
                int n;
                while ((n = source.Read(buffer)) > 0)
                {
                    destination.Write(buffer, 0, n);
                    bytes += n;
                }
                destination.Flush(flushToDisk: true);
            }
            SnapshotFile.SyncDirectory(scratch);
            return (bytes, clock.Elapsed.TotalSeconds);
        }
        finally
        {
            LocalCluster.TryDeleteDirectory(scratch);
        }
    }

    /// <summary>
    /// Reads back every object the backup holds from <paramref name="client"/>'s cluster and checks its size and
    /// SHA-256 against the backed-up record (the client also checks every chunk of a distributed object). Four at a
    /// time, in constant memory. Failures are counted; the first few are described.
    /// </summary>
    public static async Task<ObjectVerification> VerifyObjectsAsync(ChainClient client, string backupDirectory, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        string backup = Path.GetFullPath(backupDirectory);
        BackupManifest manifest = BackupManifest.Load(backup);
        var clock = Stopwatch.StartNew();
        long objects = 0, bytes = 0, failed = 0;
        var failures = new List<string>();
        await Parallel.ForEachAsync(ObjectRecords(backup, manifest), new ParallelOptions { MaxDegreeOfParallelism = VerifyParallelism, CancellationToken = ct },
            async (meta, token) =>
            {
                string key = meta.Key.ToStringUtf8();
                string? problem = null;
                try
                {
                    await using var sink = new DigestStream();
                    await client.GetAsync(meta.Bucket, key, sink, cancellationToken: token).ConfigureAwait(false);
                    if (sink.Length != (long)meta.Size)
                        problem = $"{sink.Length} bytes, the backup says {meta.Size}";
                    else if (sink.DigestHex() != Convert.ToHexStringLower(meta.Sha256.Span))
                        problem = "SHA-256 differs from the backup's record";
                }
                catch (ChainException e)
                {
                    problem = e.Message;
                }
                Interlocked.Increment(ref objects);
                Interlocked.Add(ref bytes, (long)meta.Size);
                if (problem is not null)
                {
                    Interlocked.Increment(ref failed);
                    lock (failures)
                    {
                        if (failures.Count < FailuresKept)
                            failures.Add($"{meta.Bucket}/{key}: {problem}");
                    }
                }
            }).ConfigureAwait(false);
        return new ObjectVerification(objects, bytes, failed, failures, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Every object record of the backup, read one at a time from its records files.</summary>
    public static IEnumerable<ObjectMeta> ObjectRecords(string backupDirectory, BackupManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        foreach (ChainEntry chain in manifest.Chains)
        {
            using var reader = new SnapshotFileReader(Path.Combine(backupDirectory, chain.Records.File));
            while (reader.Read(out SnapshotRecord record))
            {
                if (record.ColumnFamily == "objects")
                    yield return ObjectMeta.Parser.ParseFrom(record.Value);
            }
        }
    }
}
