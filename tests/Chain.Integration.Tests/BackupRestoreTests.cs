using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Chain.Client;
using Chain.Consistency;
using Chain.Harness;
using Chain.Jepsen;
using Chain.Protocol;
using Chain.Protocol.Backup;
using Xunit.Abstractions;

namespace Chain.Integration.Tests;

/// <summary>
/// Backup of a live cluster of real processes while a writer runs, restore into a new cluster (the old one still
/// running beside it), and the restored cluster's contents, integrity and consistency; damaged backups are refused
/// before anything starts.
/// </summary>
[Trait("Category", "Integration")]
public sealed class BackupRestoreTests : LocalClusterTest
{
    private const string Bucket = "data";
    private const int WriterOpsMax = 600;
    private static readonly TimeSpan WriterTimeMax = TimeSpan.FromSeconds(60);

    private readonly ITestOutputHelper _output;

    public BackupRestoreTests(ITestOutputHelper output) : base("backup") => _output = output;

    protected override LocalClusterOptions Options(string dataDirectory) =>
        new() { Nodes = 3, Chains = 8, DataDirectory = dataDirectory };

    /// <summary>One acknowledged (or failed) put: which content, when it was issued and when acknowledged (0: not acknowledged).</summary>
    private sealed record Write(string Key, string Sha256, long Issued, long Acked);

    private ChainClient SmallChunkClient(Uri master) =>
        new(new ChainClientOptions { Master = master, ChunkBytes = Limits.ChunkBytesMin });

    private static int SizeOf(int i) => i % 7 == 3 ? Limits.ChunkBytesMin * 2 + 1000 + i : 100 + i * 37 % 5000;

    [Fact]
    public async Task Backup_during_writes_restores_every_write_acknowledged_before_it_began_and_the_restored_cluster_is_consistent()
    {
        await using ChainClient client = SmallChunkClient(Cluster.MasterAddress);
        await client.CreateBucketAsync(Bucket);
        var writes = new ConcurrentQueue<Write>();
        long backupBegan = long.MaxValue;
        using var stopWriter = new CancellationTokenSource(WriterTimeMax);
        int issued = 0;
        int writesDuringBackup = 0;

        // Writer: new keys and overwrites of earlier ones (every seventh object distributed over several chunks).
        Task writer = Task.Run(async () =>
        {
            for (int i = 0; i < WriterOpsMax && !stopWriter.IsCancellationRequested; i++)
            {
                string key = i % 5 == 4 ? $"obj/{i / 2:D4}" : $"obj/{i:D4}";
                byte[] value = TestData.Content(i, SizeOf(i));
                string sha = Convert.ToHexStringLower(SHA256.HashData(value));
                long start = Stopwatch.GetTimestamp();
                Interlocked.Increment(ref issued);
                long acked = 0;
                try
                {
                    await client.PutAsync(Bucket, key, value, cancellationToken: stopWriter.Token);
                    acked = Stopwatch.GetTimestamp();
                }
                catch (Exception e) when (e is OperationCanceledException or ChainException)
                {
                    // Not acknowledged: may or may not be in the backup.
                }
                writes.Enqueue(new Write(key, sha, start, acked));
                if (start > Interlocked.Read(ref backupBegan))
                    Interlocked.Increment(ref writesDuringBackup);
            }
        });

        await ClusterWait.UntilAsync(() => Volatile.Read(ref issued) >= 60 || writer.IsCompleted, TimeSpan.FromSeconds(60),
            () => Task.FromResult($"60 writes before the backup (issued {Volatile.Read(ref issued)})"));
        string backupDir = Path.Combine(RootDirectory, "backup");
        Interlocked.Exchange(ref backupBegan, Stopwatch.GetTimestamp());
        BackupStats backup = await ClusterBackup.RunAsync(client, backupDir);
        int issuedAtBackupEnd = Volatile.Read(ref issued);
        // Keep writing a little after the backup, so writes before, during and after it all exist.
        await ClusterWait.UntilAsync(() => Volatile.Read(ref issued) >= Math.Min(WriterOpsMax, issuedAtBackupEnd + 20) || writer.IsCompleted,
            TimeSpan.FromSeconds(60), () => Task.FromResult("20 writes after the backup"));
        stopWriter.Cancel();
        await writer;
        _output.WriteLine($"backup: {backup.Chains} chains, {backup.Objects} objects ({backup.ObjectBytes} bytes), {backup.Chunks} chunks, " +
            $"{backup.Bytes} bytes in {backup.Seconds:0.00} s; {writes.Count} writes, {writesDuringBackup} issued during the backup");
        Assert.True(writesDuringBackup > 0, "the writer must have run during the backup");

        BackupManifest manifest = BackupManifest.Load(backupDir);
        Assert.Equal(8, manifest.ChainCount);
        Assert.Equal(16, manifest.Chains.Select(c => c.Records.File).Concat(manifest.Chains.Select(c => c.Chunks.File)).Distinct().Count());
        // One replica per chain (its tail at the time): the backup holds each object once, not three times.
        Assert.True(manifest.Chains.All(c => Cluster.Nodes.Any(n => n.Id == c.Records.SourceNode)));

        (LocalCluster restored, RestoreStats stats) = await BackupRestore.RestoreAsync(backupDir,
            new RestoreOptions { DataDirectory = Path.Combine(RootDirectory, "restored") });
        await using (restored)
        {
            _output.WriteLine($"restore: {stats.Bytes} bytes in {stats.Seconds:0.00} s = {stats.MBps:0.0} MB/s (checksums {stats.VerifySeconds:0.00} s, " +
                $"layout {stats.LayoutSeconds:0.00} s, {stats.LaidOutBytes} bytes over all replicas = {stats.LayoutMBps:0.0} MB/s); raw copy {stats.RawCopyMBps:0.0} MB/s");
            Assert.Equal(Cluster.Nodes.Select(n => n.Id).Order(), restored.Nodes.Select(n => n.Id).Order());
            Assert.DoesNotContain(restored.Nodes, n => Cluster.Nodes.Any(o => o.Address == n.Address));
            Assert.True(stats.RawCopyBytes > 0 && stats.RawCopySeconds > 0);
            Assert.Equal(manifest.Chains.Sum(c => c.Records.Bytes + c.Chunks.Bytes) * 3, stats.LaidOutBytes);

            await using ChainClient reader = SmallChunkClient(restored.MasterAddress);
            ObjectVerification verification = await BackupRestore.VerifyObjectsAsync(reader, backupDir);
            Assert.True(verification.Ok, string.Join("\n", verification.Failures));
            Assert.Equal(manifest.Objects, verification.Objects);
            Assert.True(manifest.Chunks > 0, "distributed objects' chunks must be in the backup");

            // Per key: the last write acknowledged before the backup began, or a write that was not (yet) acknowledged then.
            var restoredObjects = new Dictionary<string, string>(StringComparer.Ordinal);
            await foreach (ObjectInfo info in reader.ListAsync(Bucket))
                restoredObjects[info.Key] = info.Sha256Hex.ToLowerInvariant();
            int checkedKeys = 0;
            foreach (IGrouping<string, Write> key in writes.GroupBy(w => w.Key))
            {
                Write? lastBefore = key.Where(w => w.Acked != 0 && w.Acked < backupBegan).MaxBy(w => w.Acked);
                var allowed = key.Where(w => w.Acked == 0 || w.Acked >= backupBegan || (lastBefore is not null && w.Issued > lastBefore.Acked))
                    .Select(w => w.Sha256).ToHashSet(StringComparer.Ordinal);
                if (lastBefore is not null)
                    allowed.Add(lastBefore.Sha256);
                bool present = restoredObjects.TryGetValue(key.Key, out string? sha);
                if (lastBefore is not null)
                {
                    Assert.True(present, $"{key.Key}: acknowledged before the backup began, missing after the restore");
                    checkedKeys++;
                }
                if (present)
                    Assert.True(allowed.Contains(sha!), $"{key.Key}: restored content {sha} was never written there by a write the backup may hold");
            }
            Assert.Equal(restoredObjects.Count, restoredObjects.Keys.Count(k => writes.Any(w => w.Key == k)));
            Assert.True(checkedKeys >= 50, $"only {checkedKeys} keys were acknowledged before the backup began");

            // The restored cluster takes writes and passes the set workload of the consistency checker.
            RunResult run = await Runner.RunAsync(new RunSpec
            {
                Seed = 77,
                Workload = Workload.Set,
                Clients = 3,
                Ops = 300,
                TimeLimit = TimeSpan.FromSeconds(4),
            }, new RunnerOptions { ExistingCluster = restored, OutputDirectory = Path.Combine(RootDirectory, "check") });
            _output.WriteLine(run.Summary());
            Assert.True(run.Verdict == Verdict.Valid, run.Summary() + "\n" + string.Join("\n", run.Check.Problems));
            Assert.True(run.History.Count > 10);
        }
    }

    [Fact]
    public async Task A_corrupted_or_truncated_backup_file_fails_the_restore_naming_it_before_anything_starts()
    {
        await using ChainClient client = SmallChunkClient(Cluster.MasterAddress);
        await client.CreateBucketAsync(Bucket);
        for (int i = 0; i < 12; i++)
            await client.PutAsync(Bucket, $"k{i}", TestData.Content(i, SizeOf(i)));
        string backupDir = Path.Combine(RootDirectory, "backup");
        await ClusterBackup.RunAsync(client, backupDir);
        BackupManifest manifest = BackupManifest.Load(backupDir);
        string victim = manifest.Chains.OrderByDescending(c => c.Chunks.Bytes).First().Chunks.File;

        foreach (string damage in new[] { "flip", "truncate", "remove" })
        {
            string copy = Path.Combine(RootDirectory, "backup-" + damage);
            CopyDirectory(backupDir, copy);
            string file = Path.Combine(copy, victim);
            byte[] bytes = await File.ReadAllBytesAsync(file);
            switch (damage)
            {
                case "flip":
                    bytes[bytes.Length / 2] ^= 0x01;
                    await File.WriteAllBytesAsync(file, bytes);
                    break;
                case "truncate":
                    await File.WriteAllBytesAsync(file, bytes.AsSpan(0, bytes.Length - 10).ToArray());
                    break;
                default:
                    File.Delete(file);
                    break;
            }
            string target = Path.Combine(RootDirectory, "restored-" + damage);
            var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
                BackupRestore.RestoreAsync(copy, new RestoreOptions { DataDirectory = target, MeasureRawCopy = false }));
            _output.WriteLine($"{damage}: {e.Message}");
            Assert.Contains(file, e.Message);
            Assert.False(Directory.Exists(Path.Combine(target, "master")), "nothing may be laid out or started");
        }

        // The intact backup still restores.
        (LocalCluster restored, _) = await BackupRestore.RestoreAsync(backupDir,
            new RestoreOptions { DataDirectory = Path.Combine(RootDirectory, "restored-intact"), MeasureRawCopy = false });
        await using (restored)
        {
            await using ChainClient reader = SmallChunkClient(restored.MasterAddress);
            ObjectVerification verification = await BackupRestore.VerifyObjectsAsync(reader, backupDir);
            Assert.True(verification.Ok, string.Join("\n", verification.Failures));
            Assert.Equal(12, verification.Objects);
        }
    }

    [Fact]
    public async Task A_backup_whose_tail_is_killed_as_it_begins_reads_the_new_tail_and_loses_nothing()
    {
        await using ChainClient client = SmallChunkClient(Cluster.MasterAddress);
        await client.CreateBucketAsync(Bucket);
        var acknowledged = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        for (int i = 0; i < 40; i++)
        {
            byte[] value = TestData.Content(1000 + i, SizeOf(i));
            await client.PutAsync(Bucket, $"k{i:D2}", value);
            acknowledged[$"k{i:D2}"] = value;
        }
        ClusterStatus status = await client.GetStatusAsync();
        string victim = status.Chains[0].NodeIds[^1];
        int victimIndex = Cluster.Nodes.ToList().FindIndex(n => n.Id == victim);

        // Everything above was acknowledged before the backup began; the tail of chain 0 dies as it begins.
        await Cluster.KillNodeAsync(victimIndex);
        string backupDir = Path.Combine(RootDirectory, "backup");
        BackupStats backup = await ClusterBackup.RunAsync(client, backupDir);
        BackupManifest manifest = BackupManifest.Load(backupDir);
        _output.WriteLine($"backup after killing {victim}: {backup.Objects} objects in {backup.Seconds:0.0} s; chain 0 from {manifest.Chains[0].Records.SourceNode}");
        Assert.Equal(acknowledged.Count, backup.Objects);
        Assert.DoesNotContain(manifest.Chains, c => c.Records.SourceNode == victim || c.Chunks.SourceNode == victim);

        (LocalCluster restored, _) = await BackupRestore.RestoreAsync(backupDir,
            new RestoreOptions { DataDirectory = Path.Combine(RootDirectory, "restored"), MeasureRawCopy = false });
        await using (restored)
        {
            await using ChainClient reader = SmallChunkClient(restored.MasterAddress);
            foreach ((string key, byte[] value) in acknowledged)
                Assert.Equal(value, await reader.GetBytesAsync(Bucket, key));
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}
