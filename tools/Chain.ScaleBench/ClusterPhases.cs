using System.Diagnostics;
using System.Globalization;
using Chain.Bench;
using Chain.Client;
using Chain.Harness;

namespace Chain.ScaleBench;

/// <summary>One phase of the 95 % read / 5 % write mix: the load runner's figures plus the split and the bytes read.</summary>
public sealed record MixResult(ReadTarget Target, PhaseResult Phase, long Reads, long Writes, long ReadBytes)
{
    public double ReadsPerSecond => Phase.Elapsed > TimeSpan.Zero ? Reads / Phase.Elapsed.TotalSeconds : 0;
    public double ReadMBps => Phase.Elapsed > TimeSpan.Zero ? ReadBytes / 1e6 / Phase.Elapsed.TotalSeconds : 0;
}

/// <summary>The phases that run against the cluster: one large object put and got, and the read-scaling mix.</summary>
public static class ClusterPhases
{
    public const string Bucket = "scale";
    /// <summary>Share of writes in the read-scaling mix, in percent.</summary>
    public const int WritePercent = 5;

    /// <summary>
    /// Puts one object of <paramref name="size"/> pseudo-random bytes (streamed, never held in memory), drops the page
    /// cache when allowed, and gets it back into a stream that only counts and hashes; checks size and SHA-256.
    /// </summary>
    public static async Task<(Transfer Put, Transfer Get)> LargeObjectAsync(ChainClient client, long size, Action<string> log, CancellationToken ct)
    {
        const string key = "large/object-1";
        await using var source = new PatternStream(size, (ulong)Random.Shared.NextInt64());
        log($"large object: put {ByteSize.Format(size)} ...");
        CpuSample? cpu = CpuSample.Read();
        long start = Stopwatch.GetTimestamp();
        PutResult put = await client.PutAsync(Bucket, key, source, null, ct).ConfigureAwait(false);
        var putTransfer = new Transfer($"chain put (1 object of {ByteSize.Format(size)})", put.Size, Stopwatch.GetElapsedTime(start),
            CpuSample.IdlePercent(cpu, CpuSample.Read()));
        if (put.Size != size)
            throw new InvalidDataException($"the put stored {put.Size} bytes, not {size}");
        log(RawDisk.Describe(putTransfer));

        string? dropped = RawDisk.DropPageCache();
        log($"large object: get {(dropped is null ? "after dropping the page cache" : "(page cache not dropped: " + dropped + ")")} ...");
        await using var sink = new DigestStream();
        cpu = CpuSample.Read();
        start = Stopwatch.GetTimestamp();
        ObjectInfo got = await client.GetAsync(Bucket, key, sink, null, ct).ConfigureAwait(false);
        var getTransfer = new Transfer($"chain get (1 object of {ByteSize.Format(size)})", sink.Length, Stopwatch.GetElapsedTime(start),
            CpuSample.IdlePercent(cpu, CpuSample.Read()), dropped is null ? "cold" : "CACHED: " + dropped);
        log(RawDisk.Describe(getTransfer));
        string digest = sink.DigestHex();
        if (sink.Length != size || !string.Equals(digest, put.Sha256Hex, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"the get returned {sink.Length} bytes with SHA-256 {digest}; the put stored {size} bytes with {put.Sha256Hex}");
        if (!string.Equals(got.Sha256Hex, put.Sha256Hex, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"the get reported SHA-256 {got.Sha256Hex}; the put stored {put.Sha256Hex}");
        // Give the space back before the next phase.
        await client.DeleteAsync(Bucket, key, ct).ConfigureAwait(false);
        return (putTransfer, getTransfer);
    }

    /// <summary>Writes <paramref name="keys"/> distinct random objects of <paramref name="valueBytes"/> bytes (16 at a time).</summary>
    public static async Task PreloadAsync(ChainClient client, int keys, int valueBytes, CancellationToken ct)
    {
        await Parallel.ForEachAsync(Enumerable.Range(0, keys), new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = ct },
            async (i, token) =>
            {
                var value = new byte[valueBytes];
                Random.Shared.NextBytes(value);
                await client.PutAsync(Bucket, KeyOf(i), value, null, token).ConfigureAwait(false);
            }).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs the mix from one client per worker, all reading from <paramref name="target"/>: a warm-up (not measured),
    /// then the measured phase. Writes put fresh random bytes under a random preloaded key.
    /// </summary>
    public static async Task<MixResult> MixAsync(Func<ReadTarget, ChainClient> createClient, ReadTarget target, ScaleOptions options,
        Action<string> log, CancellationToken ct)
    {
        int workers = options.Workers;
        var clients = new ChainClient[workers];
        for (int i = 0; i < workers; i++)
            clients[i] = createClient(target);
        try
        {
            var randoms = Enumerable.Range(0, workers).Select(_ => new Random(Random.Shared.Next())).ToArray();
            long reads = 0, writes = 0, readBytes = 0;
            bool counting = false;

            async Task Operation(long sequence, int worker)
            {
                Random random = randoms[worker];
                string key = KeyOf(random.Next(options.Keys));
                if (random.Next(100) < WritePercent)
                {
                    var value = new byte[options.ValueBytes];
                    random.NextBytes(value);
                    await clients[worker].PutAsync(Bucket, key, value, null, ct).ConfigureAwait(false);
                    if (Volatile.Read(ref counting))
                        Interlocked.Increment(ref writes);
                }
                else
                {
                    byte[] data = await clients[worker].GetBytesAsync(Bucket, key, ct).ConfigureAwait(false);
                    if (data.Length != options.ValueBytes)
                        throw new InvalidDataException($"read {data.Length} bytes of {key}, expected {options.ValueBytes}");
                    if (Volatile.Read(ref counting))
                    {
                        Interlocked.Increment(ref reads);
                        Interlocked.Add(ref readBytes, data.Length);
                    }
                }
            }

            string name = $"{100 - WritePercent}/{WritePercent} mix, reads from {Describe(target)}";
            if (options.WarmupSeconds > 0)
            {
                log($"{name}: warming up for {options.WarmupSeconds.ToString(CultureInfo.InvariantCulture)} s ...");
                await LoadRunner.RunAsync("warm-up", workers, TimeSpan.FromSeconds(options.WarmupSeconds), options.MaxOps, Operation, ct).ConfigureAwait(false);
            }
            log($"{name}: {workers} workers for {options.Seconds.ToString(CultureInfo.InvariantCulture)} s ...");
            Volatile.Write(ref counting, true);
            PhaseResult phase = await LoadRunner.RunAsync(name, workers, options.Duration, options.MaxOps, Operation, ct).ConfigureAwait(false);
            return new MixResult(target, phase, reads, writes, readBytes);
        }
        finally
        {
            foreach (ChainClient client in clients)
                await client.DisposeAsync().ConfigureAwait(false);
        }
    }

    public static string Describe(ReadTarget target) => target == ReadTarget.Tail ? "tail" : "any replica";

    private static string KeyOf(int index) => "small/" + index.ToString("D7", CultureInfo.InvariantCulture);
}
