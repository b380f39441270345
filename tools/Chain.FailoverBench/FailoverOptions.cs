using System.Globalization;

namespace Chain.FailoverBench;

public sealed class UsageException : Exception
{
    public UsageException(string message) : base(message) { }
}

/// <summary>Command line of the failover benchmark (parsed by hand).</summary>
public sealed record FailoverOptions
{
    public const int Replicas = 3;

    public const string Usage =
        "usage: Chain.FailoverBench [options]\n" +
        "Kills a member of a 1-chain, 3-replica cluster per round (head, middle, tail in turn) under a steady small-object\n" +
        "writer, measures kill -> first acknowledged write, then restarts the node and measures its rejoin and sync rate;\n" +
        "compares the sync rate with a plain local file copy of the same size.\n" +
        "  --rounds K               failover rounds (default 5)\n" +
        "  --preload-mib M          data loaded before the rounds, as 1 MiB objects (default 64, at least 1)\n" +
        "  --failure-timeout-ms T   the master's failure timeout (default 3000)\n" +
        "  --nodes N                storage nodes, at least 3; more than 3 leaves spares (default 3)\n" +
        "  --write-bytes B          size of the writer's objects (default 1024)\n" +
        "  --write-interval-ms I    the writer starts one put every I ms (default 10), at most 256 in flight\n" +
        "  --wait-timeout-s S       bound on every wait of a round: failover, removal, rejoin (default 60)\n" +
        "  --wipe-restart           delete the killed node's data before restarting it, so that its sync copies the whole\n" +
        "                           chain (default: it restarts with its data and the snapshot skips the chunks it holds)\n" +
        "  --keep-data              keep the temp directory (cluster data and logs) at the end\n" +
        "  -h, --help               this text\n" +
        "Exit code: 0 when every round completed, 1 when the cluster failed, 2 on a bad command line.";

    public int Rounds { get; init; } = 5;
    public int PreloadMiB { get; init; } = 64;
    public int FailureTimeoutMs { get; init; } = 3000;
    public int Nodes { get; init; } = 3;
    public int WriteBytes { get; init; } = 1024;
    public int WriteIntervalMs { get; init; } = 10;
    public int WaitTimeoutSeconds { get; init; } = 60;
    public bool WipeRestart { get; init; }
    public bool KeepData { get; init; }
    public bool Help { get; init; }

    public TimeSpan WaitTimeout => TimeSpan.FromSeconds(WaitTimeoutSeconds);

    public static FailoverOptions Parse(IReadOnlyList<string> args)
    {
        var options = new FailoverOptions();
        var reader = new Chain.Tools.OptionReader(args, message => new UsageException(message));
        while (reader.MoveNext())
        {
            options = reader.Name switch
            {
                "--rounds" => options with { Rounds = reader.Int(1, 100) },
                "--preload-mib" => options with { PreloadMiB = reader.Int(1, 64 * 1024) },
                "--failure-timeout-ms" => options with { FailureTimeoutMs = reader.Int(500, 120_000) },
                "--nodes" => options with { Nodes = reader.Int(Replicas, 32) },
                "--write-bytes" => options with { WriteBytes = reader.Int(1, 1024 * 1024) },
                "--write-interval-ms" => options with { WriteIntervalMs = reader.Int(1, 10_000) },
                "--wait-timeout-s" => options with { WaitTimeoutSeconds = reader.Int(5, 3600) },
                "--wipe-restart" when reader.Inline is null => options with { WipeRestart = true },
                "--keep-data" when reader.Inline is null => options with { KeepData = true },
                "-h" or "--help" when reader.Inline is null => options with { Help = true },
                _ => throw reader.Unknown(),
            };
        }
        return options;
    }
}
