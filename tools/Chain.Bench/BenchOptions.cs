using System.Globalization;

namespace Chain.Bench;

public sealed class BenchUsageException : Exception
{
    public BenchUsageException(string message) : base(message) { }
}

/// <summary>Command line of the benchmark (parsed by hand).</summary>
public sealed record BenchOptions
{
    public const string Usage =
        "usage: Chain.Bench [--clients K] [--seconds S] [--warmup-seconds W] [--max-ops N] [--value-bytes B] [--nodes N] [--skip-chain] [--skip-raw]\n" +
        "  --clients K      concurrent clients / writers (default 32)\n" +
        "  --seconds S      time bound of each measured phase (default 10)\n" +
        "  --warmup-seconds W  unmeasured warm-up of the cluster before its phases (default 5)\n" +
        "  --max-ops N      operation bound of each measured phase (default 100000)\n" +
        "  --value-bytes B  value size (default 1024)\n" +
        "  --nodes N        storage nodes of the chain cluster (default 3)\n" +
        "  --skip-chain     only the raw RocksDB baseline\n" +
        "  --skip-raw       only the chain cluster";

    public int Clients { get; init; } = 32;
    public double Seconds { get; init; } = 10;
    public double WarmupSeconds { get; init; } = 5;
    public int MaxOps { get; init; } = 100_000;
    public int ValueBytes { get; init; } = 1024;
    public int Nodes { get; init; } = 3;
    public bool SkipChain { get; init; }
    public bool SkipRaw { get; init; }
    public bool Help { get; init; }

    public TimeSpan Duration => TimeSpan.FromSeconds(Seconds);

    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new BenchOptions();
        var reader = new Chain.Tools.OptionReader(args, message => new BenchUsageException(message));
        while (reader.MoveNext())
        {
            options = reader.Name switch
            {
                "--clients" => options with { Clients = reader.Int(1, 4096) },
                "--seconds" => options with { Seconds = reader.Double(0.1, 3600) },
                "--warmup-seconds" => options with { WarmupSeconds = reader.Double(0, 600) },
                "--max-ops" => options with { MaxOps = reader.Int(1, int.MaxValue - 1) },
                "--value-bytes" => options with { ValueBytes = reader.Int(1, 64 * 1024 * 1024) },
                "--nodes" => options with { Nodes = reader.Int(1, 32) },
                "--skip-chain" => options with { SkipChain = true },
                "--skip-raw" => options with { SkipRaw = true },
                "-h" or "--help" => options with { Help = true },
                _ => throw reader.Unknown(),
            };
        }
        if (options.SkipChain && options.SkipRaw)
            throw new BenchUsageException("--skip-chain and --skip-raw together leave nothing to measure");
        return options;
    }
}
