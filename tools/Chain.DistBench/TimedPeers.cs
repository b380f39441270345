using System.Diagnostics;

namespace Chain.DistBench;

/// <summary>
/// One helper process per peer, in its namespace, under one protocol: each prepares and says READY; the common start is
/// the instant all are told GO; each says DONE when its copy is complete. With <c>stopAfterAll</c> the peers keep
/// running (seeding) until the last one is done and are then told STOP; every process must then exit with 0.
/// </summary>
internal static class TimedPeers
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(30);

    public static async Task<WayRun> RunAsync(WayContext context, string label, Func<int, IReadOnlyList<string>> command, bool stopAfterAll,
        CancellationToken ct)
    {
        var peers = new List<NetnsProcess>();
        try
        {
            for (int peer = 1; peer <= context.Peers; peer++)
                peers.Add(NetnsProcess.Start($"{label} p{peer}", context.PeerLauncher(peer), command(peer), context.LogPath($"{label}-p{peer}")));
            foreach (NetnsProcess process in peers)
                await process.ExpectAsync("READY", ReadyTimeout, ct).ConfigureAwait(false);

            var cpu = new CpuWindow();
            long start = Stopwatch.GetTimestamp();
            await Task.WhenAll(peers.Select(p => p.WriteLineAsync("GO"))).ConfigureAwait(false);
            var done = await Task.WhenAll(peers.Select(p => p.ExpectAsync("DONE", context.Timeout, ct))).ConfigureAwait(false);
            double idle = cpu.IdlePercent();
            foreach (var (process, line) in peers.Zip(done))
                context.Log($"{process.Name}: {line.Line}");
            if (stopAfterAll)
                await Task.WhenAll(peers.Select(p => p.WriteLineAsync("STOP"))).ConfigureAwait(false);
            foreach (NetnsProcess process in peers)
            {
                if (await process.WaitForExitAsync(ExitTimeout).ConfigureAwait(false) is not 0)
                    throw new InvalidOperationException($"{process.Name} did not exit cleanly after DONE");
            }
            return new WayRun(done.Select(d => Stopwatch.GetElapsedTime(start, d.Timestamp).TotalSeconds).ToArray(), idle);
        }
        finally
        {
            foreach (NetnsProcess process in peers)
                await process.DisposeAsync().ConfigureAwait(false);
        }
    }
}
