using System.Globalization;
using Chain.Tools;

namespace Chain.ScaleBench;

/// <summary>Byte sizes on the command line: "1048576", "4KiB", "256MiB", "5GiB", "1.5G" (K/M/G/T binary; KB/MB/GB/TB decimal).</summary>
public static class ByteSize
{
    public const long KiB = 1024;
    public const long MiB = 1024 * KiB;
    public const long GiB = 1024 * MiB;

    private static readonly (string Suffix, long Factor)[] Units =
    [
        ("KiB", KiB), ("MiB", MiB), ("GiB", GiB), ("TiB", 1024 * GiB),
        ("KB", 1000), ("MB", 1000_000), ("GB", 1000_000_000), ("TB", 1000_000_000_000),
        ("K", KiB), ("M", MiB), ("G", GiB), ("T", 1024 * GiB),
        ("B", 1),
    ];

    /// <summary>Null when <paramref name="text"/> is not a non-negative size that fits in a long.</summary>
    public static long? TryParse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string trimmed = text.Trim();
        long factor = 1;
        foreach ((string suffix, long f) in Units)
        {
            if (trimmed.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                factor = f;
                trimmed = trimmed[..^suffix.Length].TrimEnd();
                break;
            }
        }
        if (trimmed.Length == 0 || !char.IsAsciiDigit(trimmed[0])
            || !decimal.TryParse(trimmed, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal number))
            return null;
        decimal bytes = number * factor;
        if (bytes > long.MaxValue || bytes != decimal.Truncate(bytes))
            return null;
        return (long)bytes;
    }

    /// <summary>
    /// Parses the size an option named <paramref name="name"/> gave; false with a usage message in <paramref name="error"/>
    /// when it is not a size within [min, max].
    /// </summary>
    public static bool TryParseWithin(string name, string text, long min, long max, out long bytes, out string error)
    {
        bytes = TryParse(text) ?? -1;
        bool ok = bytes >= min && bytes <= max;
        error = ok ? "" : $"{name} must be a size between {Format(min)} and {(max == long.MaxValue ? "any size" : Format(max))} (e.g. 256MiB, 5GiB), not '{text}'";
        return ok;
    }

    /// <summary>"1.00 GiB", "256.00 MiB", "4.00 KiB", "17 B".</summary>
    public static string Format(long bytes) => bytes switch
    {
        >= GiB => (bytes / (double)GiB).ToString("0.00", CultureInfo.InvariantCulture) + " GiB",
        >= MiB => (bytes / (double)MiB).ToString("0.00", CultureInfo.InvariantCulture) + " MiB",
        >= KiB => (bytes / (double)KiB).ToString("0.00", CultureInfo.InvariantCulture) + " KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };
}

/// <summary>Command line of the scale benchmark (parsed by hand, with the shared <see cref="Chain.Tools.OptionReader"/>).</summary>
public sealed record ScaleOptions
{
    public const string Usage =
        "usage: Chain.ScaleBench [--size S] [--disk-size F] [--keys K] [--value-size V] [--workers C] [--seconds T] [--warmup-seconds W]\n" +
        "                        [--chains N] [--max-ops N] [--dir DIR] [--json FILE] [--skip-disk] [--skip-large] [--skip-reads] [--keep]\n" +
        "       Chain.ScaleBench --big-proof [--size S] [--rss-limit L] [--chain PATH] [--dir DIR] [--json FILE] [--keep]\n" +
        "  --size S           large object size (default 1GiB); with --big-proof the proof object (default 5GiB)\n" +
        "  --disk-size F      raw disk baseline file size (default: S)\n" +
        "  --keys K           small objects of the read-scaling phase (default 1000)\n" +
        "  --value-size V     their size (default 4KiB)\n" +
        "  --workers C        concurrent workers of the read-scaling phase (default 32)\n" +
        "  --seconds T        time bound of each measured read-scaling phase (default 10)\n" +
        "  --warmup-seconds W unmeasured warm-up before each read-scaling phase (default 2)\n" +
        "  --chains N         chains of the 3-node cluster, 3 replicas each (default 3)\n" +
        "  --max-ops N        operation bound of each read-scaling phase (default 10000000)\n" +
        "  --dir DIR          where the data goes: raw disk files and the cluster (default $TMPDIR or /tmp)\n" +
        "  --json FILE        also write the figures as JSON\n" +
        "  --big-proof        put and get one object through the 'chain' command and check peak RSS of every process\n" +
        "  --rss-limit L      the proof's bound on each process's peak RSS (default 512MiB)\n" +
        "  --chain PATH       the ./chain script (run once to build, then its chain.dll is run directly) or a chain.dll\n" +
        "                     (default: ./chain at the repository root)\n" +
        "  --keep             keep the data directory";

    public const int Replicas = 3;
    public const int Nodes = 3;

    public long? SizeOption { get; init; }
    public long? DiskSizeOption { get; init; }
    public int Keys { get; init; } = 1000;
    public int ValueBytes { get; init; } = (int)(4 * ByteSize.KiB);
    public int Workers { get; init; } = 32;
    public double Seconds { get; init; } = 10;
    public double WarmupSeconds { get; init; } = 2;
    public int Chains { get; init; } = 3;
    public long MaxOps { get; init; } = 10_000_000;
    public string Directory { get; init; } = Path.GetTempPath();
    public string? JsonPath { get; init; }
    public bool BigProof { get; init; }
    public long RssLimitBytes { get; init; } = 512 * ByteSize.MiB;
    public string? ChainCommand { get; init; }
    public bool SkipDisk { get; init; }
    public bool SkipLarge { get; init; }
    public bool SkipReads { get; init; }
    public bool Keep { get; init; }
    public bool Help { get; init; }

    /// <summary>The large object (or proof object) size.</summary>
    public long ObjectBytes => SizeOption ?? (BigProof ? 5 * ByteSize.GiB : ByteSize.GiB);

    /// <summary>The raw disk file size: --disk-size, else the object size.</summary>
    public long DiskBytes => DiskSizeOption ?? ObjectBytes;

    /// <summary>Free space the run needs on the data directory's file system.</summary>
    public long RequiredFreeBytes => BigProof
        // Input file + output file + 3 replicas, each written to the WAL and again to SST files, and slack.
        ? SaturatingMultiply(ObjectBytes, 8)
        : (SkipDisk ? 0 : DiskBytes) + (SkipLarge ? 0 : SaturatingMultiply(ObjectBytes, 8));

    public TimeSpan Duration => TimeSpan.FromSeconds(Seconds);

    public static ScaleOptions Parse(IReadOnlyList<string> args)
    {
        var options = new ScaleOptions();
        var reader = new OptionReader(args, message => new UsageException(message));
        while (reader.MoveNext())
        {
            options = reader.Name switch
            {
                "--size" => options with { SizeOption = Size(reader, 1, long.MaxValue) },
                "--disk-size" => options with { DiskSizeOption = Size(reader, 4096, long.MaxValue) },
                "--keys" => options with { Keys = reader.Int(1, 10_000_000) },
                "--value-size" => options with { ValueBytes = (int)Size(reader, 1, 64 * ByteSize.MiB) },
                "--workers" => options with { Workers = reader.Int(1, 4096) },
                "--seconds" => options with { Seconds = reader.Double(0.1, 3600) },
                "--warmup-seconds" => options with { WarmupSeconds = reader.Double(0, 600) },
                "--chains" => options with { Chains = reader.Int(1, 1024) },
                "--max-ops" => options with { MaxOps = reader.Int(1, int.MaxValue - 1) },
                "--dir" => options with { Directory = reader.Value() },
                "--json" => options with { JsonPath = reader.Value() },
                "--big-proof" => options with { BigProof = true },
                "--rss-limit" => options with { RssLimitBytes = Size(reader, ByteSize.MiB, long.MaxValue) },
                "--chain" => options with { ChainCommand = reader.Value() },
                "--skip-disk" => options with { SkipDisk = true },
                "--skip-large" => options with { SkipLarge = true },
                "--skip-reads" => options with { SkipReads = true },
                "--keep" => options with { Keep = true },
                "-h" or "--help" => options with { Help = true },
                _ => throw reader.Unknown(),
            };
        }
        if (options.SkipDisk && options.SkipLarge && options.SkipReads && !options.BigProof)
            throw new UsageException("--skip-disk, --skip-large and --skip-reads together leave nothing to measure");
        if (options.BigProof && (options.SkipDisk || options.SkipLarge || options.SkipReads || options.DiskSizeOption is not null))
            throw new UsageException("--big-proof runs only the proof; it takes no --skip-* or --disk-size");
        if (!options.BigProof && options.ChainCommand is not null)
            throw new UsageException("--chain is only used by --big-proof");
        if (string.IsNullOrWhiteSpace(options.Directory))
            throw new UsageException("--dir must not be empty");
        return options;
    }

    private static long Size(OptionReader reader, long min, long max) =>
        ByteSize.TryParseWithin(reader.Name, reader.Value(), min, max, out long bytes, out string error) ? bytes : throw new UsageException(error);

    private static long SaturatingMultiply(long value, long factor) => value > long.MaxValue / factor ? long.MaxValue : value * factor;
}
