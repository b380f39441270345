using System.Globalization;
using System.Text;
using Chain.Harness;

namespace Chain.DistBench;

/// <summary>
/// The BitTorrent baseline with Debian's tools: a private torrent (<c>mktorrent -p</c>), <c>opentracker</c> (Debian's
/// build admits only whitelisted info hashes; the whitelist path is read inside its chroot) and an <c>aria2c</c> seeder in
/// the origin's namespace, one <c>aria2c</c> leecher per peer namespace with DHT, peer exchange and local peer discovery
/// off, so peers find each other through the tracker only. Leechers keep seeding until the last one is done (the
/// bound assumes peers keep uploading). A leecher's completion is the timestamp its <c>--on-bt-download-complete</c>
/// hook writes (called when the download is complete, before seeding).
/// </summary>
public sealed class BitTorrentWay : IDistributionWay
{
    private const int TrackerPort = 6969;
    private const int PeerPort = 6881;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(20);
    private string _directory = "";
    private string _torrent = "";
    private string _infoHash = "";

    public string Name => DistBenchOptions.BitTorrent;

    public string? Unavailable()
    {
        string[] missing = new[] { "aria2c", "opentracker", "mktorrent" }.Where(t => Shell.Find(t) is null).ToArray();
        return missing.Length == 0 ? null : $"not installed: {string.Join(", ", missing)} (scripts/setup-deps.sh installs aria2, opentracker, mktorrent)";
    }

    /// <summary>The piece size exponent: about 256 pieces, between 32 KiB (2^15) and 4 MiB (2^22).</summary>
    public static int PieceExponent(long fileBytes)
    {
        int exponent = 15;
        while (exponent < 22 && (1L << (exponent + 1)) * 256 <= fileBytes)
            exponent++;
        return exponent;
    }

    public async Task PrepareAsync(WayContext context, CancellationToken ct)
    {
        _directory = Path.Combine(context.WorkDirectory, "bittorrent");
        Directory.CreateDirectory(Path.Combine(_directory, "tracker"));
        _torrent = Path.Combine(_directory, context.ObjectName + ".torrent");
        int exponent = PieceExponent(context.SizeBytes);
        await Shell.RunAsync(Shell.Find("mktorrent")!, new[]
        {
            "-p", "-l", exponent.ToString(CultureInfo.InvariantCulture), "-a", TrackerUrl(context, "announce"), "-o", _torrent, context.SourceFile,
        }, ct, TimeSpan.FromMinutes(5)).ConfigureAwait(false);
        string shown = await Shell.RunAsync(Shell.Find("aria2c")!, new[] { "-S", _torrent }, ct).ConfigureAwait(false);
        _infoHash = ParseInfoHash(shown) ?? throw new InvalidOperationException($"no info hash in 'aria2c -S {_torrent}': {shown}");
        // opentracker chroots to its directory first, so the whitelist path is relative to that directory.
        await File.WriteAllTextAsync(Path.Combine(_directory, "tracker", "whitelist.txt"), _infoHash + "\n", ct).ConfigureAwait(false);
        context.Log($"bittorrent: private torrent, {1 << (exponent - 10)} KiB pieces, info hash {_infoHash} whitelisted");
    }

    /// <summary>The hex info hash from <c>aria2c -S</c>'s "Info Hash: ..." line.</summary>
    public static string? ParseInfoHash(string shown)
    {
        foreach (string line in shown.Split('\n'))
        {
            string trimmed = line.Trim();
            if (trimmed.StartsWith("Info Hash:", StringComparison.OrdinalIgnoreCase))
            {
                string hash = trimmed["Info Hash:".Length..].Trim().ToLowerInvariant();
                return hash.Length == 40 && hash.All(Uri.IsHexDigit) ? hash : null;
            }
        }
        return null;
    }

    public async Task<WayRun> RunAsync(WayContext context, CancellationToken ct)
    {
        var processes = new List<NetnsProcess>();
        string doneDirectory = Path.Combine(_directory, "done");
        if (Directory.Exists(doneDirectory))
            Directory.Delete(doneDirectory, recursive: true);
        Directory.CreateDirectory(doneDirectory);
        try
        {
            processes.Add(NetnsProcess.Start("opentracker", context.OriginLauncher, new[]
            {
                Shell.Find("opentracker")!, "-i", context.OriginAddress.ToString(), "-p", Port(TrackerPort), "-P", Port(TrackerPort),
                "-d", Path.Combine(_directory, "tracker"), "-w", "/whitelist.txt", "-u", "nobody",
            }, context.LogPath("opentracker")));
            await WaitForTrackerAsync(context, seeds: 0, ct).ConfigureAwait(false);
            processes.Add(NetnsProcess.Start("aria2c seeder", context.OriginLauncher,
                Aria2(Path.GetDirectoryName(context.SourceFile)!, "--bt-seed-unverified=true"), context.LogPath("aria2c-seeder")));
            await WaitForTrackerAsync(context, seeds: 1, ct).ConfigureAwait(false);

            var cpu = new CpuWindow();
            long start = UnixNanoseconds();
            for (int peer = 1; peer <= context.Peers; peer++)
            {
                string hook = Path.Combine(_directory, $"hook-p{peer}.sh");
                string done = Path.Combine(doneDirectory, $"p{peer}");
                await File.WriteAllTextAsync(hook, $"#!/bin/sh\ndate +%s%N > '{done}.tmp' && mv '{done}.tmp' '{done}'\n", ct).ConfigureAwait(false);
                if (!OperatingSystem.IsWindows())
                    File.SetUnixFileMode(hook, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
                processes.Add(NetnsProcess.Start($"aria2c p{peer}", context.PeerLauncher(peer),
                    Aria2(context.PeerDirectory(peer), "--on-bt-download-complete=" + hook), context.LogPath($"aria2c-p{peer}")));
            }

            var seconds = new double?[context.Peers];
            DateTime deadline = DateTime.UtcNow + context.Timeout;
            while (seconds.Any(s => s is null))
            {
                for (int peer = 1; peer <= context.Peers; peer++)
                {
                    string done = Path.Combine(doneDirectory, $"p{peer}");
                    if (seconds[peer - 1] is null && File.Exists(done))
                        seconds[peer - 1] = (long.Parse((await File.ReadAllTextAsync(done, ct).ConfigureAwait(false)).Trim(), CultureInfo.InvariantCulture) - start) / 1e9;
                }
                if (processes.FirstOrDefault(p => p.HasExited) is { } gone)
                    throw new InvalidOperationException($"{gone.Name} exited during the run (see {context.LogPath(gone.Name.Replace(' ', '-'))})");
                if (DateTime.UtcNow > deadline)
                    throw new TimeoutException($"bittorrent: {seconds.Count(s => s is null)} of {context.Peers} peers not done within {context.Timeout.TotalSeconds:0.#}s");
                if (seconds.Any(s => s is null))
                    await Task.Delay(Poll, ct).ConfigureAwait(false);
            }
            return new WayRun(seconds.Select(s => s!.Value).ToArray(), cpu.IdlePercent());
        }
        finally
        {
            foreach (NetnsProcess process in processes)
                await process.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>An aria2c on this torrent: tracker only (no DHT, PEX, LPD), seeding without end, no preallocation.</summary>
    private string[] Aria2(string directory, string extra) => new[]
    {
        Shell.Find("aria2c")!, "--no-conf=true", "--dir=" + directory, "--listen-port=" + Port(PeerPort),
        "--enable-dht=false", "--enable-dht6=false", "--enable-peer-exchange=false", "--bt-enable-lpd=false", "--disable-ipv6=true",
        "--seed-ratio=0.0", "--bt-max-peers=0", "--max-upload-limit=0", "--file-allocation=none", "--allow-overwrite=true",
        "--auto-file-renaming=false", "--summary-interval=0", "--console-log-level=warn", "--quiet=true",
        "--stop-with-process=" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture), extra, _torrent,
    };

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

    private static string TrackerUrl(WayContext context, string path) => $"http://{context.OriginAddress}:{TrackerPort}/{path}";

    /// <summary>Polls the tracker's scrape until it answers for our torrent with at least <paramref name="seeds"/> complete peers.</summary>
    private async Task WaitForTrackerAsync(WayContext context, int seeds, CancellationToken ct)
    {
        var escaped = new StringBuilder();
        for (int i = 0; i < _infoHash.Length; i += 2)
            escaped.Append('%').Append(_infoHash, i, 2);
        string url = TrackerUrl(context, "scrape") + "?info_hash=" + escaped;
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(2) };
        DateTime deadline = DateTime.UtcNow + StartTimeout;
        string last = "no answer";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                string body = Encoding.Latin1.GetString(await http.GetByteArrayAsync(url, ct).ConfigureAwait(false));
                // A torrent nobody announced yet scrapes as an empty files dictionary: the tracker is up.
                if (ScrapeComplete(body) is { } complete ? complete >= seeds : seeds == 0 && body.StartsWith("d5:files", StringComparison.Ordinal))
                    return;
                last = body;
            }
            catch (HttpRequestException e)
            {
                last = e.Message;
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                last = "scrape timed out";
            }
            await Task.Delay(TimeSpan.FromMilliseconds(50), ct).ConfigureAwait(false);
        }
        throw new TimeoutException($"bittorrent: the tracker did not report {seeds} seed(s) within {StartTimeout.TotalSeconds:0}s; last: {last}");
    }

    /// <summary>The "complete" count of a bencoded scrape answer; null when it has none.</summary>
    public static int? ScrapeComplete(string body)
    {
        int at = body.IndexOf("8:completei", StringComparison.Ordinal);
        if (at < 0)
            return null;
        int from = at + "8:completei".Length;
        int end = body.IndexOf('e', from);
        return end > from && int.TryParse(body.AsSpan(from, end - from), NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : null;
    }

    private static long UnixNanoseconds() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
