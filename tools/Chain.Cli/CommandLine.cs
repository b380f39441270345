using System.Globalization;

namespace Chain.Cli;

/// <summary>A wrong command line: printed with the command's usage, exit code 2.</summary>
public sealed class UsageException : Exception
{
    public UsageException(string message, string? command = null) : base(message)
    {
        Command = command;
    }

    /// <summary>The command whose usage should be shown (null: the general usage).</summary>
    public string? Command { get; }
}

/// <summary>One command of the CLI: its arguments and the options it accepts.</summary>
public sealed record CommandSpec(string Name, string Arguments, string Summary, int MinPositionals, int MaxPositionals, IReadOnlyList<OptionSpec> Options)
{
    public string Usage => $"chain {Name}{(Arguments.Length > 0 ? " " + Arguments : "")}";
}

/// <summary>An option: <c>--name VALUE</c>, or with <paramref name="Flag"/> a bare <c>--name</c> that takes no value.</summary>
public sealed record OptionSpec(string Name, string ValueName, string Help, bool Flag = false);

/// <summary>The parsed command line.</summary>
public sealed record ParsedCommand(string Name, IReadOnlyList<string> Positionals, IReadOnlyDictionary<string, string> Options, Uri Master)
{
    public CommandSpec Spec => CommandLine.Commands[Name];

    public string? Option(string name) => Options.TryGetValue(name, out string? value) ? value : null;

    /// <summary>Whether the flag option <c>--name</c> was given.</summary>
    public bool Flag(string name) => Options.ContainsKey(name);

    /// <summary>An integer option within [min, max]; <paramref name="fallback"/> when absent.</summary>
    public int? IntOption(string name, int? fallback, int min, int max)
    {
        string? text = Option(name);
        if (text is null)
            return fallback;
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
            throw new UsageException($"--{name} must be an integer between {min} and {max}, not '{text}'", Name);
        return value;
    }

    public long? LongOption(string name, long min, long max)
    {
        string? text = Option(name);
        if (text is null)
            return null;
        if (!long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value) || value < min || value > max)
            throw new UsageException($"--{name} must be an integer between {min} and {max}, not '{text}'", Name);
        return value;
    }
}

/// <summary>Hand-written parser: <c>chain [--master URL] COMMAND [ARGS] [--option VALUE | --option=VALUE]</c>.</summary>
public static class CommandLine
{
    public const string MasterEnvironmentVariable = "CHAIN_MASTER";
    public const string DefaultMaster = "http://127.0.0.1:7400";

    public static readonly IReadOnlyDictionary<string, CommandSpec> Commands = new[]
    {
        new CommandSpec("up", "[--nodes N] [--data DIR] [--port BASE] [--chains C] [--replicas R] [--zones K] [--gateway-port P] [--tracker-port P]",
            "run a local cluster (master + N nodes) in the foreground until Ctrl-C", 0, 0, new[]
            {
                new OptionSpec("nodes", "N", "number of storage nodes (default 3)"),
                new OptionSpec("data", "DIR", "data directory, kept between runs (default ./data)"),
                new OptionSpec("port", "BASE", "master port; nodes use BASE+1..BASE+N (default 7400)"),
                new OptionSpec("chains", "C", $"number of chains (default {CliApp.UpDefaultChains}; a new data directory only)"),
                new OptionSpec("replicas", "R", "replicas per chain (default: min(3, N))"),
                new OptionSpec("zones", "K", "put the nodes in zones z1..zK in turn; a chain's replicas go to distinct zones (default: no zones)"),
                new OptionSpec("max-object-bytes", "BYTES", "largest object a node accepts (default: the server's)"),
                new OptionSpec("gateway-port", "P", $"S3 gateway on 127.0.0.1:P with access key {Chain.Harness.LocalGatewayOptions.DevAccessKeyId} / secret {Chain.Harness.LocalGatewayOptions.DevSecretKey} (default {CliApp.UpDefaultGatewayPort}; 0: no gateway)"),
                new OptionSpec("tracker-port", "P", $"distribution tier tracker on 127.0.0.1:P (default {CliApp.UpDefaultTrackerPort}; 0: no tracker)"),
            }),
        new CommandSpec("put", "BUCKET/KEY FILE [--if-absent | --if-version N]", "upload FILE as an object", 2, 2, new[]
        {
            new OptionSpec("content-type", "TYPE", "content type to store (default application/octet-stream)"),
            new OptionSpec("if-absent", "", $"only create: fail (exit {CliApp.PreconditionFailed}) if the object exists", Flag: true),
            new OptionSpec("if-version", "N", $"only replace version N: fail (exit {CliApp.PreconditionFailed}) if the object is missing or has another version"),
        }),
        new CommandSpec("get", "BUCKET/KEY FILE [--p2p [--agent ADDR]]", "download an object to FILE ('-' = standard output)", 2, 2, new[]
        {
            new OptionSpec("p2p", "", "through the local peer agent (distribution tier): chunks from peers or the store, as the tracker directs", Flag: true),
            new OptionSpec("agent", "ADDR", $"the agent's address for --p2p (default {AgentCommand.DefaultAgent})"),
        }),
        new CommandSpec("agent", "[status|swarms] [--listen IP:PORT] [--tracker ADDR|none] [--cache-dir DIR] [--cache-bytes N]",
            "run a peer agent of the distribution tier in the foreground (chain get --p2p goes through it); 'agent status': what its downloads wait on; " +
            "'agent swarms': the tracker's metrics per object and peer (bytes from peers vs the store, re-fetches, time to complete)", 0, 1, new[]
            {
                new OptionSpec("listen", "IP:PORT", $"where the agent serves peers and local clients (default {AgentCommand.DefaultAgent})"),
                new OptionSpec("tracker", "ADDR", $"the tracker (default {AgentCommand.DefaultTracker}, chain up's; none: store only)"),
                new OptionSpec("cache-dir", "DIR", "chunk cache directory, kept between runs (default ./agent-cache)"),
                new OptionSpec("cache-bytes", "N", "cache capacity in bytes, LRU eviction (default 1 GiB)"),
                new OptionSpec("upload-rate", "B/s", "upload cap in bytes per second (default 0: unlimited)"),
                new OptionSpec("download-rate", "B/s", "download cap in bytes per second (default 0: unlimited)"),
                new OptionSpec("zone", "Z", "zone label the tracker prefers peers by"),
                new OptionSpec("max-uploads", "N", "concurrent chunk uploads served (default 4)"),
                new OptionSpec("data-port", "N", "port of the raw-TCP chunk transfers to peers (default 0: any free; -1: none, peers use RPC)"),
                new OptionSpec("agent", "ADDR", $"agent status: the agent's address (default {AgentCommand.DefaultAgent})"),
            }),
        new CommandSpec("rm", "BUCKET/KEY [--if-version N]", "delete an object", 1, 1, new[]
        {
            new OptionSpec("if-version", "N", $"only delete version N: fail (exit {CliApp.PreconditionFailed}) if the object has another version"),
        }),
        new CommandSpec("ls", "[BUCKET[/PREFIX]]", "list buckets, or the objects of a bucket", 0, 1, Array.Empty<OptionSpec>()),
        new CommandSpec("stat", "BUCKET/KEY", "show an object's metadata", 1, 1, Array.Empty<OptionSpec>()),
        new CommandSpec("mb", "BUCKET", "make a bucket", 1, 1, Array.Empty<OptionSpec>()),
        new CommandSpec("rb", "BUCKET", "remove a bucket", 1, 1, Array.Empty<OptionSpec>()),
        new CommandSpec("status", "", "show chains, nodes and buckets", 0, 0, Array.Empty<OptionSpec>()),
        new CommandSpec("gc", "", "delete chunks no object references (older than the nodes' grace period)", 0, 0, Array.Empty<OptionSpec>()),
        new CommandSpec("scrub", "", "verify every chunk on every node against its SHA-256 and repair damaged copies", 0, 0, Array.Empty<OptionSpec>()),
        new CommandSpec("backup", "DIR", "consistent backup of the live cluster into DIR (new or empty), writes going on", 1, 1, Array.Empty<OptionSpec>()),
        new CommandSpec("restore", "DIR [--data D] [--port P]",
            "bring a backup up in a new local cluster (checksums first, then every object verified) and run it until Ctrl-C", 1, 1, new[]
            {
                new OptionSpec("data", "D", "data directory of the restored cluster, must not hold one (default ./restored)"),
                new OptionSpec("port", "P", "master port; nodes use P+1.. (default 7400)"),
            }),
        new CommandSpec("check", "[--workload register|set|large] [--nemesis kill,pause,...] [--time SECONDS] [--ops N] [--clients N] [--seed N] [--shrink N] [--out DIR]",
            "Jepsen-style consistency check of a fresh local cluster under faults (exit 0 valid, 1 invalid, 2 unknown)", 0, 0, new[]
            {
                new OptionSpec("workload", "W", "register (read/write/cas per key), set (unique inserts, final read) or large (multi-MiB objects, digests); default: generated from the seed"),
                new OptionSpec("nemesis", "LIST", "fault kinds, comma-separated: kill, pause, kill-master, partition, ... or none (default kill,pause)"),
                new OptionSpec("time", "SECONDS", "time limit of the workload (default 20)"),
                new OptionSpec("ops", "N", "upper bound on operations (default 10000)"),
                new OptionSpec("clients", "N", "concurrent clients (default: generated, 2..6)"),
                new OptionSpec("seed", "N", "seed of the generated spec (default: random, printed); the same seed gives the same spec"),
                new OptionSpec("shrink", "N", "when invalid, re-run up to N smaller specs and report the smallest still invalid (default 0)"),
                new OptionSpec("out", "DIR", "where run directories go (default: $TMPDIR/chain-check)"),
                new OptionSpec("nodes", "N", "storage nodes (default 3)"),
                new OptionSpec("spec", "FILE", "replay a spec.json written by an earlier run (other spec options are ignored)"),
                new OptionSpec("read-from", "TARGET", "any (default: any member of the chain, CRAQ) or tail (every read at the tail)"),
                new OptionSpec("check-budget", "SECONDS", "time budget of the linearizability search (default 30)"),
                new OptionSpec("break", "MODES", "test only: start the nodes with --unsafe-test-break MODES (dirty-reads, ack-before-tail) to see the checkers catch it"),
            }),
        new CommandSpec("drill", "SCENARIO|short|full [--seed N] [--report DIR]",
            "BellJar drill in sealed network namespaces (root): cold-start, master-sealed-away, neighbours-only, region-loss, " +
            "restore-from-backup, bootstrap-from-nothing; short = cold-start, master-sealed-away, neighbours-only, restore-from-backup (CI), full = all " +
            $"(exit 0 pass, 1 fail, {DrillCommand.CannotSeal} not root)", 1, 1, new[]
            {
                new OptionSpec("seed", "N", "seed of the random choices (start order, keys); default: from the clock, printed"),
                new OptionSpec("report", "DIR", "where report.md, report.html and the clusters' work files go (default: drills/<timestamp>)"),
                new OptionSpec("manifests", "DIR", "the role dependency manifests (default: server/belljar, copied beside the harness)"),
                new OptionSpec("keep", "", "keep the clusters' data and logs of passed scenarios too (failed ones are always kept)", Flag: true),
            }),
        new CommandSpec("help", "[COMMAND]", "show help", 0, 1, Array.Empty<OptionSpec>()),
    }.ToDictionary(c => c.Name, StringComparer.Ordinal);

    /// <summary>Options that take no value (in any command).</summary>
    private static readonly HashSet<string> FlagNames =
        Commands.Values.SelectMany(c => c.Options).Where(o => o.Flag).Select(o => o.Name).ToHashSet(StringComparer.Ordinal);

    /// <summary>Parses <paramref name="args"/>; <paramref name="environmentMaster"/> is $CHAIN_MASTER.</summary>
    public static ParsedCommand Parse(IReadOnlyList<string> args, string? environmentMaster)
    {
        ArgumentNullException.ThrowIfNull(args);
        var positionals = new List<string>();
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        string? master = null;
        bool help = false;
        bool onlyPositionals = false;

        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (onlyPositionals || arg == "-" || !arg.StartsWith('-'))
            {
                positionals.Add(arg);
                continue;
            }
            if (arg == "--")
            {
                onlyPositionals = true;
                continue;
            }
            if (arg is "-h" or "--help")
            {
                help = true;
                continue;
            }
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
                throw new UsageException($"unknown option '{arg}'", CommandOf(positionals));

            string name = arg[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            if (name.Length == 0)
                throw new UsageException($"unknown option '{arg}'", CommandOf(positionals));
            if (FlagNames.Contains(name))
            {
                if (value is not null)
                    throw new UsageException($"option --{name} takes no value", CommandOf(positionals));
                value = "";
            }
            else if (value is null)
            {
                if (i + 1 >= args.Count)
                    throw new UsageException($"option --{name} needs a value", CommandOf(positionals));
                value = args[++i];
            }
            if (name == "master")
                master = value;
            else
                options[name] = value;
        }

        string command = positionals.Count > 0 ? positionals[0] : "";
        if (help)
        {
            // "chain --help", "chain put --help": help on the command, if it is one.
            return new ParsedCommand("help", Commands.ContainsKey(command) ? new[] { command } : Array.Empty<string>(),
                new Dictionary<string, string>(), ParseMaster(master, environmentMaster));
        }
        if (command.Length == 0)
            throw new UsageException("no command given");
        if (!Commands.TryGetValue(command, out CommandSpec? spec))
            throw new UsageException($"unknown command '{command}'");

        foreach (string name in options.Keys)
        {
            if (!spec.Options.Any(o => o.Name == name))
                throw new UsageException($"unknown option --{name} for '{command}'", command);
        }
        int count = positionals.Count - 1;
        if (count < spec.MinPositionals)
            throw new UsageException($"'{command}' needs {Describe(spec)}", command);
        if (count > spec.MaxPositionals)
            throw new UsageException($"too many arguments for '{command}'", command);

        return new ParsedCommand(command, positionals.Skip(1).ToArray(), options, ParseMaster(master, environmentMaster));
    }

    /// <summary>The master URL from --master, else $CHAIN_MASTER, else the default; it must be an absolute http(s) URL.</summary>
    public static Uri ParseMaster(string? option, string? environment)
    {
        string source = option is not null ? "--master" : $"${MasterEnvironmentVariable}";
        string text = option ?? (string.IsNullOrWhiteSpace(environment) ? DefaultMaster : environment);
        if (!Uri.TryCreate(text, UriKind.Absolute, out Uri? uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) || uri.Host.Length == 0)
            throw new UsageException($"{source} must be an http:// or https:// URL, not '{text}'");
        return uri;
    }

    private static string? CommandOf(List<string> positionals) =>
        positionals.Count > 0 && Commands.ContainsKey(positionals[0]) ? positionals[0] : null;

    private static string Describe(CommandSpec spec) =>
        spec.MinPositionals == 1 ? $"1 argument: {spec.Arguments}" : $"{spec.MinPositionals} arguments: {spec.Arguments}";
}

/// <summary>BUCKET/KEY as typed on the command line: split at the first '/', so keys may contain '/'.</summary>
public readonly record struct ObjectPath(string Bucket, string Key)
{
    public override string ToString() => $"{Bucket}/{Key}";

    /// <summary>BUCKET/KEY with both parts non-empty.</summary>
    public static ObjectPath Parse(string text, string? command = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        int slash = text.IndexOf('/');
        if (slash < 0)
            throw new UsageException($"expected BUCKET/KEY, got '{text}' (no '/')", command);
        if (slash == 0)
            throw new UsageException($"expected BUCKET/KEY, got '{text}' (empty bucket)", command);
        if (slash == text.Length - 1)
            throw new UsageException($"expected BUCKET/KEY, got '{text}' (empty key)", command);
        return new ObjectPath(text[..slash], text[(slash + 1)..]);
    }

    /// <summary>BUCKET or BUCKET/PREFIX (the prefix may be empty or contain '/').</summary>
    public static (string Bucket, string Prefix) ParseListTarget(string text, string? command = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        int slash = text.IndexOf('/');
        string bucket = slash < 0 ? text : text[..slash];
        string prefix = slash < 0 ? "" : text[(slash + 1)..];
        if (bucket.Length == 0)
            throw new UsageException($"expected BUCKET[/PREFIX], got '{text}' (empty bucket)", command);
        return (bucket, prefix);
    }

    /// <summary>A bare bucket name (no '/').</summary>
    public static string ParseBucket(string text, string? command = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
            throw new UsageException("expected BUCKET, got an empty name", command);
        if (text.Contains('/'))
            throw new UsageException($"expected BUCKET, got '{text}' (bucket names have no '/')", command);
        return text;
    }
}
