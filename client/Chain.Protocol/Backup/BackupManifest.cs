using System.Text.Json;
using System.Text.Json.Serialization;

namespace Chain.Protocol.Backup;

/// <summary>One file of a backup: path relative to the backup directory, size and SHA-256 (lower-case hex).</summary>
public sealed record BackupFile(string Path, long Bytes, string Sha256);

/// <summary>One snapshot file of a chain: the node it came from (the chain's tail then) and what it holds.</summary>
public sealed record ChainPart(string File, string SourceNode, ulong AppliedSeq, long Records, long Bytes);

/// <summary>A chain in the backup: its two parts (pass 1: object and dedup records; pass 2: chunk records and chunks).</summary>
public sealed record ChainEntry(uint ChainId, ChainPart Records, ChainPart Chunks, long Objects, long ObjectBytes, long ChunkCount, long ChunkBytes);

/// <summary>
/// <c>manifest.json</c> of a backup: format version, times, cluster facts, every file with size and SHA-256, and per
/// chain where its parts came from and what they hold.
/// </summary>
public sealed record BackupManifest
{
    public const int CurrentFormat = 1;
    public const string FileName = "manifest.json";
    public const string ConfigFileName = "config.pb";

    public int Format { get; init; } = CurrentFormat;
    public DateTimeOffset Started { get; init; }
    public DateTimeOffset Finished { get; init; }
    public ulong ConfigVersion { get; init; }
    public int ChainCount { get; init; }
    public int Replicas { get; init; }
    public IReadOnlyList<string> Nodes { get; init; } = [];
    public IReadOnlyList<string> Buckets { get; init; } = [];
    public long Objects { get; init; }
    public long ObjectBytes { get; init; }
    public long Chunks { get; init; }
    public long ChunkBytes { get; init; }
    public IReadOnlyList<BackupFile> Files { get; init; } = [];
    public IReadOnlyList<ChainEntry> Chains { get; init; } = [];

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads <c>manifest.json</c> of a backup directory; a missing or malformed manifest is an <see cref="InvalidDataException"/>.</summary>
    public static BackupManifest Load(string backupDirectory)
    {
        string path = System.IO.Path.Combine(backupDirectory, FileName);
        if (!File.Exists(path))
            throw new InvalidDataException($"{path} is missing: not a Chain backup (or an unfinished one)");
        BackupManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<BackupManifest>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a valid backup manifest: {e.Message}");
        }
        if (manifest is null || manifest.Format != CurrentFormat)
            throw new InvalidDataException($"{path}: unsupported backup format {manifest?.Format} (this build reads {CurrentFormat})");
        return manifest;
    }

    /// <summary>Writes <c>manifest.json</c> durably (temporary name, fsync, rename, fsync of the directory).</summary>
    public void Save(string backupDirectory)
    {
        string path = System.IO.Path.Combine(backupDirectory, FileName);
        string temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(stream, this, Json);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        SnapshotFile.SyncDirectory(backupDirectory);
    }

    /// <summary>
    /// Checks every file the manifest lists: present, of the recorded size and SHA-256 (read in constant memory).
    /// Throws <see cref="InvalidDataException"/> naming the first bad file. Returns the total bytes checked.
    /// </summary>
    public long VerifyFiles(string backupDirectory)
    {
        long total = 0;
        foreach (BackupFile file in Files)
        {
            if (file.Path.Contains("..", StringComparison.Ordinal) || System.IO.Path.IsPathRooted(file.Path))
                throw new InvalidDataException($"manifest names a file outside the backup: {file.Path}");
            string path = System.IO.Path.Combine(backupDirectory, file.Path);
            if (!File.Exists(path))
                throw new InvalidDataException($"backup file {path} is missing");
            long size = new FileInfo(path).Length;
            if (size != file.Bytes)
                throw new InvalidDataException($"backup file {path} has {size} bytes, the manifest says {file.Bytes} (truncated or damaged)");
            (_, byte[] digest) = SnapshotFile.HashFile(path);
            if (!string.Equals(Convert.ToHexStringLower(digest), file.Sha256, StringComparison.Ordinal))
                throw new InvalidDataException($"backup file {path} does not match its SHA-256 in the manifest (corrupt)");
            total += size;
        }
        return total;
    }
}
