using System.Globalization;
using Chain.ScaleBench;
using Chain.Tools;

namespace Chain.DistBench;

/// <summary>Command line of the distribution benchmark (parsed with the shared <see cref="OptionReader"/>).</summary>
public sealed record DistBenchOptions
{
    public const string Store = "store";
    public const string BitTorrent = "bittorrent";
    public const string ChainP2P = "chain-p2p";
    public static readonly IReadOnlyList<string> AllWays = [Store, BitTorrent, ChainP2P];

    public const string Usage =
        "usage: Chain.DistBench [--peers N] [--size F] [--rate R] [--origin-rate R] [--mtu BYTES] [--runs K] [--ways W,...]\n" +
        "                       [--timeout SECONDS] [--nodes N] [--dir DIR] [--keep]   (root only)\n" +
        "  --peers N          peers, each in its own network namespace (default 4)\n" +
        "  --size F           object size (default 64MiB)\n" +
        "  --rate R           every peer's link rate, both directions, in Mbit/s (e.g. 80 or 80mbit; default 80)\n" +
        "  --origin-rate R    the origin's link rate u_s (default: --rate)\n" +
        "  --mtu BYTES        MTU of every link, 576..9000 (default 9000, jumbo frames; 1500 costs the kernel six times the\n" +
        "                     packets, enough to saturate a 2-core machine at 16 peers)\n" +
        "  --runs K           runs of every way; the table shows the median and the spread (default 3)\n" +
        "  --ways W,...       of store, bittorrent, chain-p2p (default: all three)\n" +
        "  --timeout SECONDS  bound on one way's run (default 300)\n" +
        "  --nodes N          storage nodes of the store's cluster, all behind the origin's link (default 3)\n" +
        "  --dir DIR          where the run's files go (default /tmp)\n" +
        "  --keep             keep the run's files\n" +
        "exit codes: 0 ok, 1 a way failed (verification, time bound, calibration), 2 usage, 4 not root";

    public int Peers { get; init; } = 4;
    public long SizeBytes { get; init; } = 64 * ByteSize.MiB;
    public long RateBitsPerSecond { get; init; } = 80_000_000;
    public long? OriginRateOption { get; init; }
    /// <summary>MTU of every veth (both ends): jumbo frames by default, so the emulation's per-packet kernel work leaves CPU to the ways.</summary>
    public int Mtu { get; init; } = 9000;
    public int Runs { get; init; } = 3;
    public IReadOnlyList<string> Ways { get; init; } = AllWays;
    public TimeSpan WayTimeout { get; init; } = TimeSpan.FromSeconds(300);
    public int Nodes { get; init; } = 3;
    public string Directory { get; init; } = "/tmp";
    public bool Keep { get; init; }
    public bool Help { get; init; }

    /// <summary>u_s: the origin's link rate in bit/s.</summary>
    public long OriginRateBitsPerSecond => OriginRateOption ?? RateBitsPerSecond;

    public static DistBenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new DistBenchOptions();
        var reader = new OptionReader(args, m => new UsageException(m));
        while (reader.MoveNext())
        {
            options = reader.Name switch
            {
                "--peers" => options with { Peers = reader.Int(1, 64) },
                "--size" => options with { SizeBytes = Size(reader) },
                "--rate" => options with { RateBitsPerSecond = Rate(reader) },
                "--origin-rate" => options with { OriginRateOption = Rate(reader) },
                "--mtu" => options with { Mtu = reader.Int(576, 9000) },
                "--runs" => options with { Runs = reader.Int(1, 50) },
                "--ways" => options with { Ways = WayList(reader) },
                "--timeout" => options with { WayTimeout = TimeSpan.FromSeconds(reader.Double(1, 86_400)) },
                "--nodes" => options with { Nodes = reader.Int(1, 7) },
                "--dir" => options with { Directory = reader.Value() },
                "--keep" => options with { Keep = true },
                "-h" or "--help" => options with { Help = true },
                _ => throw reader.Unknown(),
            };
        }
        return options;
    }

    private static long Size(OptionReader reader)
    {
        string text = reader.Value();
        return ByteSize.TryParseWithin(reader.Name, text, 64 * ByteSize.KiB, 16 * ByteSize.GiB, out long bytes, out string error)
            ? bytes
            : throw new UsageException(error);
    }

    /// <summary>"80", "80mbit", "500kbit", "1gbit" → bit/s; a bare number is Mbit/s. Between 100 kbit/s and 10 Gbit/s.</summary>
    internal static long ParseRate(string name, string text)
    {
        string trimmed = text.Trim().ToLowerInvariant();
        double factor = 1e6;
        foreach ((string suffix, double f) in new[] { ("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3) })
        {
            if (trimmed.EndsWith(suffix, StringComparison.Ordinal))
            {
                factor = f;
                trimmed = trimmed[..^suffix.Length];
                break;
            }
        }
        if (!double.TryParse(trimmed, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double number)
            || number * factor < 1e5 || number * factor > 1e10)
            throw new UsageException($"{name} must be a rate between 0.1 and 10000 Mbit/s (e.g. 80 or 80mbit), not '{text}'");
        return (long)Math.Round(number * factor);
    }

    private static long Rate(OptionReader reader) => ParseRate(reader.Name, reader.Value());

    private static IReadOnlyList<string> WayList(OptionReader reader)
    {
        string text = reader.Value();
        string[] ways = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (ways.Length == 0)
            throw new UsageException($"{reader.Name} needs at least one of {string.Join(", ", AllWays)}");
        foreach (string way in ways)
        {
            if (!AllWays.Contains(way, StringComparer.Ordinal))
                throw new UsageException($"unknown way '{way}' in {reader.Name}: the ways are {string.Join(", ", AllWays)}");
        }
        if (ways.Distinct(StringComparer.Ordinal).Count() != ways.Length)
            throw new UsageException($"{reader.Name} names a way twice: '{text}'");
        return ways;
    }
}
