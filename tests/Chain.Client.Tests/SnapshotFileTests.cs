using Chain.Protocol.Backup;

namespace Chain.Client.Tests;

/// <summary>The backup's snapshot file format and manifest checks: round trips, and every kind of damage is refused naming the file.</summary>
public sealed class SnapshotFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "chain-snapfile-" + Guid.NewGuid().ToString("N"));

    public SnapshotFileTests() => Directory.CreateDirectory(_dir);

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

    private static readonly SnapshotHeader Header = new(7, SnapshotKind.Chunks, 123_456_789_012UL, "node-ä2");

    private static List<SnapshotRecord> SampleRecords()
    {
        var random = new Random(42);
        var records = new List<SnapshotRecord>();
        foreach (string cf in SnapshotFile.ColumnFamilies)
        {
            for (int i = 0; i < 5; i++)
            {
                var key = new byte[4 + random.Next(1, 60)];
                random.NextBytes(key);
                var value = new byte[i == 4 && cf == "chunks" ? (1 << 20) + 3 : random.Next(0, 300)];
                random.NextBytes(value);
                records.Add(new SnapshotRecord(cf, key, value));
            }
        }
        return records;
    }

    private async Task<(string Path, long Bytes, byte[] Sha)> WriteAsync(string name, IReadOnlyList<SnapshotRecord> records)
    {
        string path = Path.Combine(_dir, name);
        await using var writer = new SnapshotFileWriter(path, Header);
        foreach (SnapshotRecord r in records)
            await writer.AddAsync(r.ColumnFamily, r.Key, r.Value);
        (long bytes, byte[] sha) = await writer.CompleteAsync();
        return (path, bytes, sha);
    }

    [Fact]
    public async Task Records_round_trip_with_header_count_size_and_sha256()
    {
        List<SnapshotRecord> records = SampleRecords();
        (string path, long bytes, byte[] sha) = await WriteAsync("a.snap", records);

        Assert.False(File.Exists(path + ".tmp"));
        (long size, byte[] fileSha) = SnapshotFile.HashFile(path);
        Assert.Equal(bytes, size);
        Assert.Equal(sha, fileSha);
        using var reader = new SnapshotFileReader(path);
        Assert.Equal(Header, reader.Header);
        var read = new List<SnapshotRecord>();
        while (reader.Read(out SnapshotRecord record))
            read.Add(record);
        Assert.Equal(records.Count, read.Count);
        for (int i = 0; i < records.Count; i++)
        {
            Assert.Equal(records[i].ColumnFamily, read[i].ColumnFamily);
            Assert.Equal(records[i].Key, read[i].Key);
            Assert.Equal(records[i].Value, read[i].Value);
        }
        Assert.False(reader.Read(out _));
        Assert.Equal(records.Count, SnapshotFileReader.Verify(path).Records);
    }

    [Fact]
    public async Task An_empty_snapshot_round_trips()
    {
        (string path, _, _) = await WriteAsync("empty.snap", Array.Empty<SnapshotRecord>());
        (SnapshotHeader header, long count) = SnapshotFileReader.Verify(path);
        Assert.Equal(Header, header);
        Assert.Equal(0, count);
    }

    [Fact]
    public async Task A_writer_disposed_without_completing_leaves_no_file()
    {
        string path = Path.Combine(_dir, "abandoned.snap");
        await using (var writer = new SnapshotFileWriter(path, Header))
            await writer.AddAsync("objects", new byte[] { 0, 0, 0, 7, 1 }, new byte[] { 2 });
        Assert.False(File.Exists(path));
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public async Task Writer_refuses_unknown_column_families_and_oversized_keys()
    {
        await using var writer = new SnapshotFileWriter(Path.Combine(_dir, "bad.snap"), Header);
        await Assert.ThrowsAsync<ArgumentException>(async () => await writer.AddAsync("log", new byte[] { 1 }, new byte[] { 1 }));
        await Assert.ThrowsAsync<ArgumentException>(async () => await writer.AddAsync("meta", new byte[] { 1 }, new byte[] { 1 }));
        await Assert.ThrowsAsync<ArgumentException>(async () => await writer.AddAsync("objects", new byte[SnapshotFile.KeyBytesMax + 1], new byte[] { 1 }));
        await Assert.ThrowsAsync<ArgumentException>(async () => await writer.AddAsync("objects", Array.Empty<byte>(), new byte[] { 1 }));
    }

    [Fact]
    public async Task Every_flipped_byte_is_rejected_naming_the_file()
    {
        List<SnapshotRecord> records = SampleRecords().Where(r => r.Value.Length < 1000).ToList();
        (string path, long bytes, _) = await WriteAsync("flip.snap", records);
        byte[] original = await File.ReadAllBytesAsync(path);
        string damaged = Path.Combine(_dir, "damaged.snap");
        // Every byte position of a small file: header, record headers, keys, values, trailer.
        for (int i = 0; i < original.Length; i++)
        {
            byte[] copy = (byte[])original.Clone();
            copy[i] ^= 0x40;
            await File.WriteAllBytesAsync(damaged, copy);
            var e = Assert.Throws<SnapshotFormatException>(() => SnapshotFileReader.Verify(damaged));
            Assert.Contains(damaged, e.Message);
        }
        Assert.Equal(bytes, original.Length);
    }

    [Fact]
    public async Task Every_truncation_and_trailing_garbage_is_rejected()
    {
        List<SnapshotRecord> records = SampleRecords().Where(r => r.Value.Length < 1000).ToList();
        (string path, _, _) = await WriteAsync("cut.snap", records);
        byte[] original = await File.ReadAllBytesAsync(path);
        string cut = Path.Combine(_dir, "truncated.snap");
        for (int length = 0; length < original.Length; length++)
        {
            await File.WriteAllBytesAsync(cut, original.AsSpan(0, length).ToArray());
            var e = Assert.Throws<SnapshotFormatException>(() => SnapshotFileReader.Verify(cut));
            Assert.Contains(cut, e.Message);
        }
        await File.WriteAllBytesAsync(cut, original.Append((byte)0).ToArray());
        Assert.Contains("after the trailer", Assert.Throws<SnapshotFormatException>(() => SnapshotFileReader.Verify(cut)).Message);
    }

    [Fact]
    public async Task Random_garbage_is_not_a_snapshot()
    {
        var random = new Random(7);
        string path = Path.Combine(_dir, "garbage.snap");
        for (int i = 0; i < 50; i++)
        {
            var bytes = new byte[random.Next(0, 4000)];
            random.NextBytes(bytes);
            if (i % 2 == 0 && bytes.Length > 8)
                "CHNSNAP1"u8.CopyTo(bytes); // right magic, garbage after
            await File.WriteAllBytesAsync(path, bytes);
            Assert.Throws<SnapshotFormatException>(() => SnapshotFileReader.Verify(path));
        }
    }

    [Fact]
    public async Task Manifest_verification_names_a_corrupt_truncated_or_missing_file()
    {
        (string path, long bytes, byte[] sha) = await WriteAsync(Path.Combine("nodes", "n1", "chain-7.chunks.snap"), SampleRecords());
        string relative = Path.GetRelativePath(_dir, path);
        var manifest = new BackupManifest { Files = new[] { new BackupFile(relative, bytes, Convert.ToHexStringLower(sha)) } };
        manifest.Save(_dir);
        BackupManifest loaded = BackupManifest.Load(_dir);
        Assert.Equal(bytes, loaded.VerifyFiles(_dir));

        byte[] original = await File.ReadAllBytesAsync(path);
        byte[] flipped = (byte[])original.Clone();
        flipped[original.Length / 2] ^= 1;
        await File.WriteAllBytesAsync(path, flipped);
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => loaded.VerifyFiles(_dir)).Message);

        await File.WriteAllBytesAsync(path, original.AsSpan(0, original.Length - 1).ToArray());
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => loaded.VerifyFiles(_dir)).Message);

        File.Delete(path);
        Assert.Contains(path, Assert.Throws<InvalidDataException>(() => loaded.VerifyFiles(_dir)).Message);

        await File.WriteAllTextAsync(Path.Combine(_dir, BackupManifest.FileName), "{ not json");
        Assert.Throws<InvalidDataException>(() => BackupManifest.Load(_dir));
    }
}
