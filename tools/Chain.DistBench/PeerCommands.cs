using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Chain.Client;

namespace Chain.DistBench;

/// <summary>
/// The benchmark's own helper processes, run inside the namespaces as <c>Chain.DistBench _fetch|_recv|_send ...</c>:
/// a store download that waits for a start signal, and the calibration's TCP receiver and sender. Each talks to the
/// benchmark over stdout lines (READY, DONE, RECEIVED, FAILED).
/// </summary>
internal static class PeerCommands
{
    public const string Fetch = "_fetch";
    public const string Receive = "_recv";
    public const string Send = "_send";
    public const string P2P = "_p2p";

    public static bool Handles(IReadOnlyList<string> args) => args.Count > 0 && args[0] is Fetch or Receive or Send or P2P;

    /// <summary>
    /// The command line that runs this program with <paramref name="arguments"/> (the dll under dotnet), with two
    /// runtime settings. Each helper is a fresh process per run standing in for a long-running client or agent:
    /// <list type="bullet">
    /// <item>tiered compilation off: otherwise its first seconds go to re-compiling hot code in the background, on
    /// the same two cores the transfer needs (measured: about a fifth of the machine during a 4-peer run). With it
    /// off, the warm-up compiles the final code before the clock starts.</item>
    /// <item>no spinning thread-pool workers: with one process per peer on two cores, a spinning worker burns the
    /// time another process needs.</item>
    /// </list>
    /// </summary>
    public static IReadOnlyList<string> Self(params string[] arguments)
    {
        string dll = typeof(PeerCommands).Assembly.Location;
        return new[]
        {
            "/usr/bin/env", "DOTNET_TieredCompilation=0", "DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0",
            Chain.Harness.LocalCluster.FindDotnetHost(), dll,
        }.Concat(arguments).ToArray();
    }

    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        try
        {
            var flags = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int i = 1; i + 1 < args.Count; i += 2)
                flags[args[i]] = args[i + 1];
            switch (args[0])
            {
                case Fetch:
                    await FetchAsync(new Uri(flags["--master"]), flags["--bucket"], flags["--key"], flags["--warmup"], flags["--out"],
                        TimeSpan.FromSeconds(double.Parse(flags["--seconds"], CultureInfo.InvariantCulture))).ConfigureAwait(false);
                    break;
                case P2P:
                    await P2PAsync(flags).ConfigureAwait(false);
                    break;
                case Receive:
                    await ReceiveAsync(IPEndPoint.Parse(flags["--listen"])).ConfigureAwait(false);
                    break;
                default:
                    await SendAsync(IPEndPoint.Parse(flags["--to"]), long.Parse(flags["--bytes"], CultureInfo.InvariantCulture)).ConfigureAwait(false);
                    break;
            }
            return 0;
        }
        catch (Exception e)
        {
            Console.WriteLine($"FAILED {e.GetType().Name}: {e.Message}".ReplaceLineEndings(" "));
            return 1;
        }
    }

    /// <summary>
    /// Connects and warms up (reads the small object <paramref name="warmup"/>, so connections are open and the code is
    /// compiled before the clock starts), says READY, waits for a line on stdin, downloads, says DONE.
    /// Every attempt may take the way's whole time bound: over a slow shaped link several 4 MiB chunks in flight for
    /// several peers take longer than the client's default 10 s attempt timeout, and retrying them would only send the
    /// same bytes again.
    /// </summary>
    private static async Task FetchAsync(Uri master, string bucket, string key, string warmup, string output, TimeSpan bound)
    {
        await using var client = new ChainClient(new ChainClientOptions { Master = master, OperationTimeout = bound, AttemptTimeout = bound });
        await client.GetAsync(bucket, warmup, Stream.Null).ConfigureAwait(false);
        Console.WriteLine("READY");
        if (await Console.In.ReadLineAsync().ConfigureAwait(false) is null)
            throw new InvalidOperationException("stdin closed before the start signal");
        await using (var file = new FileStream(output, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 20, useAsync: true))
        {
            await client.GetAsync(bucket, key, file).ConfigureAwait(false);
        }
        Console.WriteLine("DONE");
    }

    /// <summary>
    /// A peer agent (library mode) in this peer's namespace, listening on its address: warms up (downloads the small object
    /// through the swarm), says READY, waits for GO, downloads through the tracker-directed swarm into the output file
    /// (each chunk written as soon as it is verified), says DONE with where the bytes came from — and keeps serving its
    /// cached chunks to the other peers until told STOP (or stdin closes).
    /// </summary>
    private static async Task P2PAsync(Dictionary<string, string> flags)
    {
        var listen = IPEndPoint.Parse(flags["--listen"]);
        await using var agent = await Chain.Agent.PeerAgent.StartAsync(new Chain.Agent.PeerAgentOptions
        {
            Listen = listen,
            AdvertiseAddress = new Uri($"http://{listen}"),
            Master = new Uri(flags["--master"]),
            Tracker = new Uri(flags["--tracker"]),
            CacheDirectory = flags["--cache"],
            CacheBytes = long.Parse(flags["--cache-bytes"], CultureInfo.InvariantCulture),
            ChunkTimeout = TimeSpan.FromSeconds(double.Parse(flags["--seconds"], CultureInfo.InvariantCulture)),
        }).ConfigureAwait(false);
        // The warm-up object has several chunks, so the peers fetch some of them from each other: the data port's
        // both ends, the cache and the copy-out are compiled before the clock starts, not during the measured run.
        string warmupCopy = flags["--out"] + ".warmup";
        await agent.DownloadToFileAsync(flags["--bucket"], flags["--warmup"], warmupCopy).ConfigureAwait(false);
        File.Delete(warmupCopy);
        Console.WriteLine("READY");
        if (await Console.In.ReadLineAsync().ConfigureAwait(false) is null)
            throw new InvalidOperationException("stdin closed before the start signal");
        var download = await agent.DownloadToFileAsync(flags["--bucket"], flags["--key"], flags["--out"]).ConfigureAwait(false);
        Console.WriteLine(FormattableString.Invariant(
            $"DONE peers={download.BytesFromPeers} store={download.BytesFromStore} refetched={download.RefetchedAfterVerification}"));
        await Console.In.ReadLineAsync().ConfigureAwait(false); // STOP, or end of input: stop seeding
    }

    /// <summary>Accepts one connection, reads it to the end; prints the bytes and the nanoseconds from the first byte to the end.</summary>
    private static async Task ReceiveAsync(IPEndPoint listen)
    {
        using var listener = new TcpListener(listen);
        listener.Start(1);
        Console.WriteLine("READY");
        using TcpClient connection = await listener.AcceptTcpClientAsync().ConfigureAwait(false);
        await using NetworkStream stream = connection.GetStream();
        byte[] buffer = new byte[1 << 16];
        long bytes = 0;
        long first = 0;
        int read;
        while ((read = await stream.ReadAsync(buffer).ConfigureAwait(false)) > 0)
        {
            if (bytes == 0)
                first = Stopwatch.GetTimestamp();
            bytes += read;
        }
        double nanoseconds = Stopwatch.GetElapsedTime(first).TotalMilliseconds * 1e6;
        Console.WriteLine($"RECEIVED {bytes.ToString(CultureInfo.InvariantCulture)} {nanoseconds.ToString("0", CultureInfo.InvariantCulture)}");
    }

    private static async Task SendAsync(IPEndPoint to, long bytes)
    {
        using var connection = new TcpClient();
        await connection.ConnectAsync(to).ConfigureAwait(false);
        await using NetworkStream stream = connection.GetStream();
        byte[] buffer = new byte[1 << 16];
        Random.Shared.NextBytes(buffer);
        for (long sent = 0; sent < bytes;)
        {
            int n = (int)Math.Min(buffer.Length, bytes - sent);
            await stream.WriteAsync(buffer.AsMemory(0, n)).ConfigureAwait(false);
            sent += n;
        }
        connection.Client.Shutdown(SocketShutdown.Send);
        Console.WriteLine("SENT");
    }
}
