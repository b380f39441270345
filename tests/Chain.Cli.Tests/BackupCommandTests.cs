using Chain.Protocol.Backup;
using Xunit;

namespace Chain.Cli.Tests;

/// <summary>chain backup / chain restore paths that fail before any cluster is involved: one error line, exit 1, nothing started.</summary>
public sealed class BackupCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "chain-cli-backup-" + Guid.NewGuid().ToString("N"));

    public BackupCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Restore_of_a_directory_without_a_manifest_fails_with_exit_1()
    {
        string data = Path.Combine(_dir, "restored");
        CliAppTests.Run run = await CliAppTests.RunAsync("restore", _dir, "--data", data, "--port", "1");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("manifest.json is missing", run.Err);
        Assert.False(Directory.Exists(Path.Combine(data, "master")));
    }

    [Fact]
    public async Task Restore_of_a_backup_with_a_corrupt_file_names_it_and_starts_nothing()
    {
        string backup = Path.Combine(_dir, "backup");
        string file = Path.Combine("nodes", "node1", "chain-0.records.snap");
        await using (var writer = new SnapshotFileWriter(Path.Combine(backup, file), new SnapshotHeader(0, SnapshotKind.Records, 1, "node1")))
        {
            await writer.AddAsync("objects", new byte[] { 0, 0, 0, 0, 1 }, new byte[] { 2 });
            (long bytes, byte[] sha) = await writer.CompleteAsync();
            sha[0] ^= 1;
            new BackupManifest { Files = new[] { new BackupFile(file, bytes, Convert.ToHexStringLower(sha)) } }.Save(backup);
        }
        string data = Path.Combine(_dir, "restored");
        CliAppTests.Run run = await CliAppTests.RunAsync("restore", backup, "--data", data, "--port", "1");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(Path.Combine(backup, file), run.Err);
        Assert.Contains("SHA-256", run.Err);
        Assert.False(Directory.Exists(Path.Combine(data, "master")));
    }

    [Fact]
    public async Task Backup_into_a_non_empty_directory_is_refused()
    {
        await File.WriteAllTextAsync(Path.Combine(_dir, "something"), "x");
        CliAppTests.Run run = await CliAppTests.RunAsync("backup", _dir);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("is not empty", run.Err);
    }
}
