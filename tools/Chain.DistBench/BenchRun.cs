using System.Security.Cryptography;
using Chain.Harness;

namespace Chain.DistBench;

/// <summary>Everything one benchmark invocation measured.</summary>
public sealed class BenchResults
{
    public required DistBenchOptions Options { get; init; }
    public double BoundSeconds => Figures.LowerBoundSeconds(Options.SizeBytes, Options.OriginRateBitsPerSecond, Options.Peers, Options.RateBitsPerSecond);
    public List<CalibrationResult> Calibrations { get; } = new();
    /// <summary>The network's name prefix (<see cref="NamespaceNetwork.Tag"/>), once created.</summary>
    public string? NetworkTag { get; set; }
    public List<WayResults> Ways { get; } = new();
    /// <summary>Failures outside any way (network, calibration, set-up).</summary>
    public List<string> Failures { get; } = new();

    public bool AnyFailed => Failures.Count > 0 || Ways.Any(w => w.Failures.Count > 0);
}

/// <summary>One way's runs: each successful run, the failures, or why it could not run at all.</summary>
public sealed class WayResults
{
    public required string Name { get; init; }
    public string? Unavailable { get; set; }
    public List<WayRun> Runs { get; } = new();
    public List<string> Failures { get; } = new();
}

/// <summary>
/// The run: the object, the namespaces (process 0 = origin, 1..N = peers), the links shaped and calibrated, then each way
/// in turn, alone: prepared, run <see cref="DistBenchOptions.Runs"/> times (each peer's copy verified by SHA-256), stopped.
/// </summary>
public static class BenchRun
{
    /// <summary>The way of that name (one of <see cref="DistBenchOptions.AllWays"/>).</summary>
    public static IDistributionWay CreateWay(string name, DistBenchOptions options) => name switch
    {
        DistBenchOptions.Store => new StoreWay(options.Nodes),
        DistBenchOptions.BitTorrent => new BitTorrentWay(),
        DistBenchOptions.ChainP2P => new ChainP2PWay(options.Nodes),
        _ => throw new ArgumentException($"unknown way '{name}'", nameof(name)),
    };

    /// <summary>Why this machine cannot run the benchmark (not root, tools missing); null when it can.</summary>
    public static string? Unavailable()
    {
        if (NamespaceNetwork.Unavailable() is { } reason)
            return reason;
        string[] missing = new[] { "tc", "ethtool" }.Where(t => Shell.Find(t) is null).ToArray();
        return missing.Length == 0 ? null : $"not installed: {string.Join(", ", missing)} (scripts/setup-deps.sh)";
    }

    public static async Task<BenchResults> RunAsync(DistBenchOptions options, string root, Action<string> log, CancellationToken ct)
    {
        var results = new BenchResults { Options = options };
        Directory.CreateDirectory(Path.Combine(root, "logs"));
        string source = Path.Combine(root, "origin", "object.bin");
        Directory.CreateDirectory(Path.GetDirectoryName(source)!);
        byte[] digest = await WriteSourceAsync(source, options.SizeBytes, ct).ConfigureAwait(false);

        var ways = new List<IDistributionWay>(); // created and not yet stopped
        NamespaceNetwork? network = null;
        try
        {
            network = await NamespaceNetwork.CreateAsync(options.Peers + 1, ct).ConfigureAwait(false);
            results.NetworkTag = network.Tag;
            log($"network {network.Tag}: origin {network.AddressOf(0)}, peers {network.AddressOf(1)}..{network.AddressOf(options.Peers)}");
            var context = new WayContext
            {
                Network = network,
                Peers = options.Peers,
                SourceFile = source,
                SizeBytes = options.SizeBytes,
                WorkDirectory = root,
                Timeout = options.WayTimeout,
                Log = log,
            };
            for (int peer = 1; peer <= options.Peers; peer++)
                Directory.CreateDirectory(context.PeerDirectory(peer));

            await ShapeAsync(network, options, ct).ConfigureAwait(false);
            await CalibrateAsync(network, options, results, Path.Combine(root, "logs"), log, ct).ConfigureAwait(false);
            if (results.Failures.Count > 0)
                return results;

            // One way at a time, alone on the machine: prepared (through the shaped links), its runs, then stopped, so no
            // way's runs share the two cores with another way's idle cluster or seeders.
            foreach (string name in options.Ways)
            {
                IDistributionWay way = CreateWay(name, options);
                var wayResults = new WayResults { Name = name, Unavailable = way.Unavailable() };
                results.Ways.Add(wayResults);
                ways.Add(way);
                if (wayResults.Unavailable is not null)
                {
                    log($"{name}: {wayResults.Unavailable}");
                    continue;
                }
                try
                {
                    await way.PrepareAsync(context, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (!ct.IsCancellationRequested)
                {
                    wayResults.Failures.Add($"prepare: {e.GetType().Name}: {e.Message}");
                    continue;
                }
                for (int run = 1; run <= options.Runs; run++)
                {
                    ClearPeerFiles(context);
                    try
                    {
                        WayRun result = await way.RunAsync(context, ct).ConfigureAwait(false);
                        await VerifyAsync(context, digest, ct).ConfigureAwait(false);
                        wayResults.Runs.Add(result);
                        log($"run {run} {way.Name}: last peer {result.PeerSeconds.Max():0.00} s, CPU idle {result.CpuIdlePercent:0}%");
                    }
                    catch (Exception e) when (!ct.IsCancellationRequested)
                    {
                        wayResults.Failures.Add($"run {run}: {e.GetType().Name}: {e.Message}");
                        log($"run {run} {way.Name}: FAILED {e.Message}");
                    }
                }
                ways.Remove(way);
                await DisposeWayAsync(way, log).ConfigureAwait(false);
            }
            return results;
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            results.Failures.Add($"{e.GetType().Name}: {e.Message}");
            return results;
        }
        finally
        {
            foreach (IDistributionWay way in ways)
                await DisposeWayAsync(way, log).ConfigureAwait(false);
            NetnsProcess.KillAll();
            if (network is not null)
                await network.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task DisposeWayAsync(IDistributionWay way, Action<string> log)
    {
        try
        {
            await way.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            log($"{way.Name}: clean-up failed: {e.Message}");
        }
    }

    /// <summary>
    /// Every link at the MTU asked for; origin: u_s both ways; every peer: the link rate both ways (tbf on both ends of
    /// each veth, offloads off).
    /// </summary>
    private static async Task ShapeAsync(NamespaceNetwork network, DistBenchOptions options, CancellationToken ct)
    {
        for (int process = 0; process <= options.Peers; process++)
            await network.SetMtuAsync(process, options.Mtu, ct).ConfigureAwait(false);
        await network.ShapeAsync(0, options.OriginRateBitsPerSecond, options.OriginRateBitsPerSecond, ct).ConfigureAwait(false);
        for (int peer = 1; peer <= options.Peers; peer++)
            await network.ShapeAsync(peer, options.RateBitsPerSecond, options.RateBitsPerSecond, ct).ConfigureAwait(false);
    }

    private static async Task CalibrateAsync(NamespaceNetwork network, DistBenchOptions options, BenchResults results, string logs,
        Action<string> log, CancellationToken ct)
    {
        var paths = new List<(int From, int To, string Path, long Rate)>
        {
            (0, 1, "origin → peer 1", Math.Min(options.OriginRateBitsPerSecond, options.RateBitsPerSecond)),
        };
        if (options.Peers >= 2)
            paths.Add((1, 2, "peer 1 → peer 2", options.RateBitsPerSecond));
        foreach (var (from, to, path, rate) in paths)
        {
            CalibrationResult result = await Calibration.MeasureAsync(network, from, to, path, rate, logs, ct).ConfigureAwait(false);
            results.Calibrations.Add(result);
            log($"calibration {path}: {result.GoodputBitsPerSecond / 1e6:0.0} Mbit/s goodput over {rate / 1e6:0.#} Mbit/s shaped ({result.Ratio:P0})");
            if (!result.Ok)
                results.Failures.Add($"calibration {path}: goodput {result.GoodputBitsPerSecond / 1e6:0.0} Mbit/s is not within " +
                    $"{CalibrationResult.Tolerance:P0} of the shaped {rate / 1e6:0.#} Mbit/s: the shaping does not hold, the figures would mean nothing");
        }
    }

    /// <summary>Pseudo-random content (never repeating, so no chunk deduplicates), written once; returns its SHA-256.</summary>
    private static async Task<byte[]> WriteSourceAsync(string path, long bytes, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[1 << 20];
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 20, useAsync: true);
        for (long written = 0; written < bytes;)
        {
            int n = (int)Math.Min(buffer.Length, bytes - written);
            RandomNumberGenerator.Fill(buffer.AsSpan(0, n));
            hash.AppendData(buffer, 0, n);
            await file.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            written += n;
        }
        return hash.GetHashAndReset();
    }

    private static void ClearPeerFiles(WayContext context)
    {
        for (int peer = 1; peer <= context.Peers; peer++)
        {
            foreach (string file in Directory.EnumerateFiles(context.PeerDirectory(peer)))
                File.Delete(file);
        }
    }

    /// <summary>Every peer's copy has the source's SHA-256 (a missing or different copy fails the run).</summary>
    internal static async Task VerifyAsync(WayContext context, byte[] digest, CancellationToken ct)
    {
        for (int peer = 1; peer <= context.Peers; peer++)
        {
            string file = context.PeerFile(peer);
            if (!File.Exists(file))
                throw new InvalidOperationException($"peer {peer} has no copy at {file}");
            await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 20, useAsync: true);
            byte[] actual = await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false);
            if (!actual.AsSpan().SequenceEqual(digest))
                throw new InvalidOperationException($"peer {peer}'s copy ({stream.Length} bytes) does not match the source's SHA-256");
        }
    }
}
