using Chain.ScaleBench;
using Chain.Tools;

namespace Chain.GatewayBench;

/// <summary>Command line of the gateway benchmark (parsed with the shared <see cref="OptionReader"/>).</summary>
public sealed record GatewayBenchOptions
{
    public const string Usage =
        "usage: Chain.GatewayBench [--small-size S] [--small-count N] [--workers C] [--large-size L] [--large-count M]\n" +
        "                          [--seconds T] [--chains K] [--dir DIR] [--keep]\n" +
        "  --small-size S   size of the many small objects (default 1MiB)\n" +
        "  --small-count N  how many small objects each path puts and gets (default 200)\n" +
        "  --workers C      concurrent workers of the small-object phases (default 4)\n" +
        "  --large-size L   size of the few large objects (default 256MiB; a single PutObject, no multipart)\n" +
        "  --large-count M  how many large objects each path puts and gets, one at a time (default 2; 0 skips them)\n" +
        "  --seconds T      time bound of each phase: a phase stops starting operations after T seconds (default 300)\n" +
        "  --chains K       chains of the 3-node cluster, 3 replicas each (default 3)\n" +
        "  --dir DIR        where the cluster keeps its data (default $TMPDIR or /tmp)\n" +
        "  --keep           keep the data directory";

    public const int Nodes = 3;
    public const int Replicas = 3;

    public long SmallBytes { get; init; } = ByteSize.MiB;
    public int SmallCount { get; init; } = 200;
    public int Workers { get; init; } = 4;
    public long LargeBytes { get; init; } = 256 * ByteSize.MiB;
    public int LargeCount { get; init; } = 2;
    public double Seconds { get; init; } = 300;
    public int Chains { get; init; } = 3;
    public string Directory { get; init; } = Path.GetTempPath();
    public bool Keep { get; init; }
    public bool Help { get; init; }

    public TimeSpan PhaseBound => TimeSpan.FromSeconds(Seconds);

    /// <summary>
    /// Free space the run needs: both paths store every object (3 replicas, each written to the WAL and again to SST
    /// or blob files), plus slack.
    /// </summary>
    public long RequiredFreeBytes => Saturate((decimal)(SmallBytes * SmallCount + LargeBytes * LargeCount) * 2 * Replicas * 2 + ByteSize.GiB);

    public static GatewayBenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new GatewayBenchOptions();
        var reader = new OptionReader(args, message => new UsageException(message));
        while (reader.MoveNext())
        {
            options = reader.Name switch
            {
                "--small-size" => options with { SmallBytes = Size(reader, 1, 64 * ByteSize.MiB) },
                "--small-count" => options with { SmallCount = reader.Int(1, 1_000_000) },
                "--workers" => options with { Workers = reader.Int(1, 256) },
                "--large-size" => options with { LargeBytes = Size(reader, 1, 64 * ByteSize.GiB) },
                "--large-count" => options with { LargeCount = reader.Int(0, 1000) },
                "--seconds" => options with { Seconds = reader.Double(0.1, 86_400) },
                "--chains" => options with { Chains = reader.Int(1, 1024) },
                "--dir" => options with { Directory = reader.Value() },
                "--keep" => options with { Keep = true },
                "-h" or "--help" => options with { Help = true },
                _ => throw reader.Unknown(),
            };
        }
        if (string.IsNullOrWhiteSpace(options.Directory))
            throw new UsageException("--dir must not be empty");
        return options;
    }

    private static long Size(OptionReader reader, long min, long max) =>
        ByteSize.TryParseWithin(reader.Name, reader.Value(), min, max, out long bytes, out string error) ? bytes : throw new UsageException(error);

    private static long Saturate(decimal value) => value > long.MaxValue ? long.MaxValue : (long)value;
}
