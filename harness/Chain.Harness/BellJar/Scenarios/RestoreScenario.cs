using System.Diagnostics;
using System.Globalization;
using Chain.Client;

namespace Chain.Harness.BellJar.Scenarios;

/// <summary>
/// Backup and restore, two ways:
/// <list type="bullet">
/// <item><b>restore-from-backup</b>: a sealed cluster is loaded; <c>chain backup</c> (ClusterBackup) runs while writers
/// keep writing; the cluster is then stopped and its namespaces removed, and the backup is restored into an empty
/// sealed cluster (new namespaces, new data directories). Checked: every object of the backup reads back with its
/// recorded SHA-256, and every write acknowledged before the backup began is present and identical. Reported: backup
/// and restore times and rates, and the raw copy rate of the backup files on the same disk.</item>
/// <item><b>bootstrap-from-nothing</b>: the same, but the source cluster's data directories are deleted before the
/// restore, and the figure that counts is the time from nothing (only the binaries and the backup directory) to a
/// cluster serving every chain with every object verified, against a stated bound.</item>
/// </list>
/// </summary>
public sealed class RestoreScenario : DrillScenario
{
    private const int Nodes = 3;
    private const int Chains = 8;

    /// <summary>The stated bound for bootstrap-from-nothing: serving, every object verified, within this time.</summary>
    public static readonly TimeSpan BootstrapBound = TimeSpan.FromSeconds(90);

    /// <summary>Chunked objects (600 KiB each) bootstrap-from-nothing loads: about 100 MB.</summary>
    private const int BootstrapChunkedObjects = 160;

    private readonly bool _bootstrap;

    private RestoreScenario(bool bootstrap, string name, string description, params string[] sets)
        : base(name, description, TimeSpan.FromSeconds(240), sets) => _bootstrap = bootstrap;

    public static RestoreScenario FromBackup() => new(false, "restore-from-backup",
        "./chain backup of a live cluster under writes, restored into an empty sealed cluster; every object verified", "short", "full");

    public static RestoreScenario Bootstrap() => new(true, "bootstrap-from-nothing",
        $"only the binaries and a backup directory, on fresh namespaces: serving with every object verified within {BootstrapBound.TotalSeconds:0} s", "full");

    public override async Task RunAsync(DrillContext context, CancellationToken ct)
    {
        LocalCluster source = await context.StartClusterAsync(Nodes, Chains, 3, ct).ConfigureAwait(false);
        await context.CreateBucketAsync(ct).ConfigureAwait(false);
        // Bootstrap (full set) restores enough data for its rates to mean something; the CI scenario stays small.
        await context.LoadAsync("before", small: 60, chunked: _bootstrap ? BootstrapChunkedObjects : 4, ct).ConfigureAwait(false);
        string backupDirectory = Path.Combine(context.Directory, "backup");

        IReadOnlyList<KeyValuePair<string, int>> beforeBackup;
        BackupStats backup;
        int duringBackup;
        using (var stopLoad = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            Task running = Task.CompletedTask;
            BoundedLoad? load = null;
            if (!_bootstrap)
                (load, running) = BoundedLoad.Start(context, writers: 2, readers: 0, maxOperations: 20_000, maxTime: TimeSpan.FromSeconds(120),
                    operationTimeout: TimeSpan.FromSeconds(5), stopLoad.Token);
            // Let the writers get going, so that the backup really runs under writes.
            var settle = Stopwatch.StartNew();
            while (load is not null && context.Ledger.Count < 80 && settle.Elapsed < TimeSpan.FromSeconds(20))
                await Task.Delay(20, ct).ConfigureAwait(false);
            beforeBackup = context.Ledger.Acknowledged();
            await using (ChainClient client = context.Client(TimeSpan.FromSeconds(60)))
                backup = await ClusterBackup.RunAsync(client, backupDirectory, ct).ConfigureAwait(false);
            duringBackup = context.Ledger.Count - beforeBackup.Count;
            await stopLoad.CancelAsync().ConfigureAwait(false);
            await running.WaitAsync(TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        }
        context.Measure("backup", $"{backup.Objects.ToString(CultureInfo.InvariantCulture)} objects, {Mb(backup.Bytes)} in {backup.Seconds:0.00} s " +
                                  $"({Rate(backup.Bytes, backup.Seconds)}), {backup.Files.ToString(CultureInfo.InvariantCulture)} files");
        if (!_bootstrap)
        {
            context.Measure("writes acknowledged while the backup ran", duringBackup.ToString(CultureInfo.InvariantCulture));
            if (duringBackup == 0)
                throw new DrillFailure("no write was acknowledged while the backup ran: the drill did not test a backup under writes");
        }

        // The source cluster goes away entirely: processes, namespaces and (bootstrap) its disks.
        await context.RetireClusterAsync(ct).ConfigureAwait(false);
        if (_bootstrap)
            LocalCluster.TryDeleteDirectory(source.Options.DataDirectory);

        var fromNothing = Stopwatch.StartNew();
        (LocalCluster restored, RestoreStats stats) = await BackupRestore.RestoreAsync(backupDirectory, new RestoreOptions
        {
            DataDirectory = Path.Combine(context.Directory, "restored"),
            ServerDllPath = context.Options.ServerDllPath,
            FailureTimeout = TimeSpan.FromSeconds(3),
            Network = ClusterNetwork.Namespaces,
            Seal = context.Manifests,
            MeasureRawCopy = false, // measured below, outside the timed path
        }, ct).ConfigureAwait(false);
        context.AdoptCluster(restored);
        TimeSpan started = fromNothing.Elapsed;
        await DrillProbes.WaitUntilEveryChainServesAsync(context, Chains, ct).ConfigureAwait(false);
        TimeSpan serving = fromNothing.Elapsed;

        ObjectVerification verification;
        await using (ChainClient client = context.Client(TimeSpan.FromSeconds(30)))
            verification = await BackupRestore.VerifyObjectsAsync(client, backupDirectory, ct).ConfigureAwait(false);
        TimeSpan verified = fromNothing.Elapsed;
        context.Measure("restore (checksums, offline layout, start)", $"{Mb(stats.Bytes)} of backup in {stats.Seconds:0.00} s ({Rate(stats.Bytes, stats.Seconds)}); " +
                                                                     $"layout {Mb(stats.LaidOutBytes)} in {stats.LayoutSeconds:0.00} s ({Rate(stats.LaidOutBytes, stats.LayoutSeconds)})");
        (long rawBytes, double rawSeconds) = BackupRestore.RawCopy(backupDirectory, Chain.Protocol.Backup.BackupManifest.Load(backupDirectory),
            Path.Combine(context.Directory, "raw-copy"), ct);
        context.Measure("raw copy of the backup files (same disk, fsync)", $"{Mb(rawBytes)} in {rawSeconds:0.00} s ({Rate(rawBytes, rawSeconds)})");
        context.Measure("objects verified against the backup", $"{verification.Objects - verification.Failed}/{verification.Objects} in {verification.Seconds:0.00} s");
        context.Measure("from nothing to every chain serving", serving);
        context.Measure("from nothing to every object verified", verified);
        context.SetTimeToServe("master", started);
        context.SetTimeToServe("node", serving);
        if (!verification.Ok)
            throw new DrillFailure($"{verification.Failed} restored object(s) differ from the backup: {string.Join("; ", verification.Failures)}");
        if (_bootstrap && verified > BootstrapBound)
            throw new DrillFailure($"bootstrap took {verified.TotalSeconds:0.0} s, over the stated {BootstrapBound.TotalSeconds:0} s");

        // Every write acknowledged before the backup began, byte for byte.
        await context.VerifyLedgerAsync(ct, beforeBackup).ConfigureAwait(false);
    }

    private static string Mb(long bytes) => (bytes / 1e6).ToString("0.0", CultureInfo.InvariantCulture) + " MB";

    private static string Rate(long bytes, double seconds) =>
        seconds > 0 ? (bytes / 1e6 / seconds).ToString("0.0", CultureInfo.InvariantCulture) + " MB/s" : "-";
}
