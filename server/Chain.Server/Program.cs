using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Chain.Master;
using Chain.Node;
using Chain.Protocol;
using Chain.Rpc;
using Chain.Rpc.Server;
using Chain.Storage;
using Chain.Storage.Memory;
using Chain.Storage.RocksDb;
using Microsoft.Extensions.Logging;

namespace Chain.Server;

/// <summary>
/// The server executable: `master`, `node`, `gateway`, `tracker` or `agent`. Prints one READY line on stdout when serving; logs to stderr;
/// SIGTERM/SIGINT shut it down cleanly (exit 0).
/// </summary>
public static class Program
{
    private const string Usage = """
        usage:
          Chain.Server master --listen HOST:PORT --data DIR [--expect-nodes N] [--chains C] [--replicas R] [--failure-timeout-ms MS] [--clock-offset-ms N] [--exit-on-stdin-close]
          Chain.Server node --listen HOST:PORT --data DIR --master URL --node-id ID [--advertise URL] [--zone Z] [--max-object-bytes N] [--clock-offset-ms N] [--exit-on-stdin-close]
                               [--unsafe-test-break ack-before-tail|dirty-reads[,...]]   (harness self-tests only; needs CHAIN_ALLOW_UNSAFE_TEST_BREAKS=1)
          Chain.Server gateway --listen HOST:PORT --master URL [--access-key ID:SECRET]... [--anonymous-read BUCKET]... [--max-object-bytes N]
                               [--max-concurrent-requests N] [--exit-on-stdin-close]   (S3-compatible HTTP gateway; no --access-key: no authentication)
                               [--build-cache-prefix /_cache|none] [--build-cache-bucket B] [--build-cache-token T] [--build-cache-max-entry-bytes N]
                               (ccache / Bazel / Gradle HTTP caches under the prefix; the token, when given, is required as a bearer token)
          Chain.Server agent --listen IP:PORT --master ADDR --cache-dir DIR --cache-bytes N [--tracker ADDR] [--advertise URL] [--upload-rate B/s]
                               [--download-rate B/s] [--zone Z] [--max-uploads N] [--download-parallelism N] [--data-port N|-1] [--exit-on-stdin-close]
                               [--unsafe-test-corrupt-uploads]   (distribution tier peer agent; the corrupt flag needs CHAIN_ALLOW_UNSAFE_TEST_BREAKS=1)
          Chain.Server tracker --listen HOST:PORT [--lease-ms N] [--max-store-fetches N] [--exit-on-stdin-close]
                               (the distribution tier's tracker: soft state only, no data directory)
          Chain.Server restore-master --backup DIR --data DIR [--addresses ID=URL,...]   (offline: a new master data directory from a backup)
          Chain.Server restore-node --backup DIR --data DIR --node-id ID                 (offline: a new node data directory from a backup)
        """;

    /// <summary>The environment variable that must be "1" before a node accepts --unsafe-test-break.</summary>
    public const string AllowTestBreaksVariable = "CHAIN_ALLOW_UNSAFE_TEST_BREAKS";

    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.Error.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        Dictionary<string, string> flags;
        try
        {
            flags = ParseFlags(args.AsSpan(1));
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"error: {e.Message}\n{Usage}");
            return 2;
        }

        using ILoggerFactory loggers = LoggerFactory.Create(b =>
        {
            b.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            });
            b.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            b.SetMinimumLevel(Enum.TryParse(Environment.GetEnvironmentVariable("CHAIN_LOG_LEVEL"), true, out LogLevel level) ? level : LogLevel.Information);
            b.AddFilter("Microsoft", LogLevel.Warning);
        });
        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // Kept for the whole process, never disposed: a supervisor's SIGTERM that lands while Main is returning (after a
        // stop by stdin close or SIGINT) must still be handled here, not by the default action, which kills the process
        // with 143 and makes a clean stop look failed (seen from `chain up`: "tracker exited with code 143").
        SignalRegistrations = new[]
        {
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); }),
            PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); }),
        };

        if (flags.ContainsKey("exit-on-stdin-close"))
        {
            // Started by a supervisor (chain up, the test harness) that holds our stdin open: when it dies, even by
            // SIGKILL, the pipe closes and we shut down cleanly instead of lingering as an orphan.
            _ = Task.Run(() =>
            {
                try
                {
                    using Stream stdin = Console.OpenStandardInput();
                    var buffer = new byte[256];
                    while (stdin.Read(buffer, 0, buffer.Length) > 0)
                    {
                    }
                }
                catch (IOException)
                {
                }
                stop.TrySetResult();
            });
        }
        try
        {
            return args[0] switch
            {
                "master" => await RunMasterAsync(flags, loggers, stop.Task),
                "node" => await RunNodeAsync(flags, loggers, stop.Task),
                "gateway" => await RunGatewayAsync(flags, loggers, stop.Task),
                "agent" => await RunAgentAsync(flags, loggers, stop.Task),
                "tracker" => await RunTrackerAsync(flags, loggers, stop.Task),
                "restore-master" => await RestoreMasterAsync(flags),
                "restore-node" => await RestoreNodeAsync(flags),
                _ => UsageError($"unknown role '{args[0]}'"),
            };
        }
        catch (ArgumentException e)
        {
            return UsageError(e.Message);
        }
        catch (StorageException e)
        {
            Console.Error.WriteLine($"error: storage: {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or InvalidDataException or Chain.Protocol.Backup.SnapshotFormatException
                                       or Google.Protobuf.InvalidProtocolBufferException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private static int UsageError(string message)
    {
        Console.Error.WriteLine($"error: {message}\n{Usage}");
        return 2;
    }

    private static async Task<int> RunMasterAsync(Dictionary<string, string> flags, ILoggerFactory loggers, Task stop)
    {
        IPEndPoint listen = ParseEndpoint(Required(flags, "listen"));
        string data = Required(flags, "data");
        var options = new MasterOptions
        {
            ExpectNodes = OptionalInt(flags, "expect-nodes") ?? 3,
            Chains = OptionalInt(flags, "chains"),
            Replicas = OptionalInt(flags, "replicas"),
            FailureTimeout = TimeSpan.FromMilliseconds(OptionalInt(flags, "failure-timeout-ms") ?? 3000),
        };
        options.Validate();
        TimeProvider time = Clock(flags);
        Directory.CreateDirectory(data);
        using var engine = RocksDbEngine.Open(Path.Combine(data, "master.rocksdb"),
            new RocksDbOptions { ColumnFamilies = new[] { EngineMasterStateStore.ColumnFamily } });
        var store = new EngineMasterStateStore(engine);
        var master = new MasterService(store, options, time, loggers.CreateLogger<MasterService>());
        var registry = new RpcServiceRegistry();
        master.Register(registry);
        await ServeAsync("master", listen, registry, master.RunFailureDetectorAsync, loggers, stop);
        return 0;
    }

    /// <summary>
    /// Serves <paramref name="registry"/> with <paramref name="background"/> running beside it, prints the READY line,
    /// and on <paramref name="stop"/> ends the background work, then the server.
    /// </summary>
    private static async Task ServeAsync(string role, IPEndPoint listen, RpcServiceRegistry registry, Func<CancellationToken, Task> background,
        ILoggerFactory loggers, Task stop)
    {
        await using RpcServer server = await RpcServer.StartAsync(listen, registry, ServerOptions(loggers));
        using var backgroundStop = new CancellationTokenSource();
        Task running = background(backgroundStop.Token);
        Console.Out.WriteLine($"READY {role} {server.Address.ToString().TrimEnd('/')}");
        Console.Out.Flush();
        await stop;
        backgroundStop.Cancel();
        await running;
        loggers.CreateLogger("Chain.Server").LogInformation("{Role} shutting down", role);
        await server.StopAsync(TimeSpan.FromSeconds(5));
    }

    private static async Task<int> RunNodeAsync(Dictionary<string, string> flags, ILoggerFactory loggers, Task stop)
    {
        TestBreaks breaks = TestBreaks.None;
        if (flags.TryGetValue("unsafe-test-break", out string? breakText))
        {
            if (Environment.GetEnvironmentVariable(AllowTestBreaksVariable) != "1")
            {
                Console.Error.WriteLine($"error: --unsafe-test-break deliberately breaks consistency and is refused unless {AllowTestBreaksVariable}=1 is set in the environment");
                return 2;
            }
            breaks = ParseTestBreaks(breakText);
            Console.Error.WriteLine($"WARNING: UNSAFE TEST BREAK ACTIVE ({breaks}): this node deliberately violates the store's guarantees; for harness self-tests only, never for real data");
            Console.Error.Flush();
        }
        IPEndPoint listen = ParseEndpoint(Required(flags, "listen"));
        string data = Required(flags, "data");
        var master = new Uri(Required(flags, "master"));
        string nodeId = Required(flags, "node-id");
        Uri? advertise = flags.TryGetValue("advertise", out string? adv) ? new Uri(adv) : null;
        long? maxObject = flags.TryGetValue("max-object-bytes", out string? mo) ? long.Parse(mo, CultureInfo.InvariantCulture) : null;
        TimeProvider time = Clock(flags);
        Directory.CreateDirectory(data);
        using var engine = RocksDbEngine.Open(Path.Combine(data, "node.rocksdb"),
            new RocksDbOptions { ColumnFamilies = StorageNode.ColumnFamilies.ToArray(), BlobColumnFamilies = StorageNode.BlobColumnFamilies.ToArray() });

        await using var node = new StorageNode(engine, new NodeOptions
        {
            NodeId = nodeId,
            AdvertisedAddress = advertise,
            MasterAddress = master,
            Zone = flags.GetValueOrDefault("zone", ""),
            ChunkGcGrace = flags.TryGetValue("chunk-gc-grace-ms", out string? grace)
                ? TimeSpan.FromMilliseconds(long.Parse(grace, CultureInfo.InvariantCulture)) : NodeOptionsDefaults.ChunkGcGrace,
            ObjectBytesMax = maxObject ?? Limits.ObjectBytesMaxDefault,
            TestBreaks = breaks,
            Time = time,
        }, loggers);
        var registry = new RpcServiceRegistry();
        node.Register(registry);
        await using RpcServer server = await RpcServer.StartAsync(listen, registry, ServerOptions(loggers));
        advertise ??= server.Address;
        await node.StartAsync(advertise, CancellationToken.None);
        Console.Out.WriteLine($"READY node {nodeId} {advertise.ToString().TrimEnd('/')}");
        Console.Out.Flush();
        await stop;
        loggers.CreateLogger("Chain.Server").LogInformation("node {Node} shutting down", nodeId);
        await server.StopAsync(TimeSpan.FromSeconds(5));
        return 0;
    }

    private static async Task<int> RunGatewayAsync(Dictionary<string, string> flags, ILoggerFactory loggers, Task stop)
    {
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string pair in flags.GetValueOrDefault("access-key", "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = pair.IndexOf(':');
            if (colon <= 0 || colon == pair.Length - 1)
                throw new ArgumentException($"--access-key: '{pair}' is not ID:SECRET");
            keys[pair[..colon]] = pair[(colon + 1)..];
        }
        var anonymous = flags.GetValueOrDefault("anonymous-read", "").Split('\n', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        long? maxObject = flags.TryGetValue("max-object-bytes", out string? maxText)
            ? long.TryParse(maxText, NumberStyles.None, CultureInfo.InvariantCulture, out long m) ? m : throw new ArgumentException("--max-object-bytes must be a number")
            : null;
        var options = new Chain.Gateway.GatewayOptions
        {
            Listen = ParseEndpoint(Required(flags, "listen")),
            Master = new Uri(Required(flags, "master")),
            AccessKeys = keys,
            AnonymousReadBuckets = anonymous,
            MaxObjectBytes = maxObject ?? Limits.ObjectBytesMaxDefault,
            MaxConcurrentRequests = OptionalInt(flags, "max-concurrent-requests") ?? 64,
            BuildCachePrefix = flags.GetValueOrDefault("build-cache-prefix", Chain.Gateway.GatewayOptions.DefaultBuildCachePrefix),
        };
        if (options.BuildCachePrefix != "none")
        {
            var cache = new Chain.Gateway.BuildCache.BuildCacheOptions();
            options = options with
            {
                BuildCache = cache with
                {
                    Bucket = flags.GetValueOrDefault("build-cache-bucket", cache.Bucket),
                    BearerToken = flags.GetValueOrDefault("build-cache-token"),
                    MaxEntryBytes = flags.TryGetValue("build-cache-max-entry-bytes", out string? entryText)
                        ? long.TryParse(entryText, NumberStyles.None, CultureInfo.InvariantCulture, out long e) && e > 0 ? e : throw new ArgumentException("--build-cache-max-entry-bytes must be a positive number")
                        : cache.MaxEntryBytes,
                },
            };
        }
        await using var gateway = await Chain.Gateway.GatewayServer.StartAsync(options, loggers);
        Console.Out.WriteLine($"READY gateway {gateway.Address.ToString().TrimEnd('/')}");
        Console.Out.Flush();
        await stop;
        loggers.CreateLogger("Chain.Server").LogInformation("gateway shutting down");
        await gateway.StopAsync();
        return 0;
    }

    private static async Task<int> RunAgentAsync(Dictionary<string, string> flags, ILoggerFactory loggers, Task stop)
    {
        var options = new Chain.Agent.PeerAgentOptions
        {
            Listen = ParseEndpoint(Required(flags, "listen")),
            AdvertiseAddress = flags.TryGetValue("advertise", out string? advertise) ? ParseAddress(advertise, "advertise") : null,
            Master = ParseAddress(Required(flags, "master"), "master"),
            Tracker = flags.TryGetValue("tracker", out string? tracker) && tracker.Length > 0 ? ParseAddress(tracker, "tracker") : null,
            CacheDirectory = Required(flags, "cache-dir"),
            CacheBytes = OptionalLong(flags, "cache-bytes") ?? throw new ArgumentException("--cache-bytes is required"),
            UploadBytesPerSecond = OptionalLong(flags, "upload-rate") ?? 0,
            DownloadBytesPerSecond = OptionalLong(flags, "download-rate") ?? 0,
            Zone = flags.GetValueOrDefault("zone", ""),
            MaxUploads = OptionalInt(flags, "max-uploads") ?? 4,
            DownloadParallelism = OptionalInt(flags, "download-parallelism") ?? 4,
            DataPort = OptionalInt(flags, "data-port") ?? 0,
            UnsafeTestCorruptUploads = flags.ContainsKey("unsafe-test-corrupt-uploads"),
        };
        if (options.UnsafeTestCorruptUploads && Environment.GetEnvironmentVariable(AllowTestBreaksVariable) != "1")
        {
            Console.Error.WriteLine($"error: --unsafe-test-corrupt-uploads serves corrupt data and is refused unless {AllowTestBreaksVariable}=1 is set in the environment");
            return 2;
        }
        await using var agent = await Chain.Agent.PeerAgent.StartAsync(options);
        Console.Out.WriteLine($"READY agent {agent.Address.ToString().TrimEnd('/')} {agent.PeerId}");
        Console.Out.Flush();
        await stop;
        loggers.CreateLogger("Chain.Server").LogInformation("agent shutting down");
        await agent.StopAsync();
        return 0;
    }

    /// <summary>"http://IP:PORT", or a bare "IP:PORT" (http is meant).</summary>
    internal static Uri ParseAddress(string text, string flag)
    {
        if (text.StartsWith("http://", StringComparison.Ordinal) && Uri.TryCreate(text, UriKind.Absolute, out Uri? uri))
            return uri;
        if (IPEndPoint.TryParse(text, out IPEndPoint? ep) && ep.Port > 0)
            return new Uri("http://" + ep);
        throw new ArgumentException($"--{flag}: '{text}' is not http://IP:PORT or IP:PORT");
    }

    private static long? OptionalLong(Dictionary<string, string> flags, string name)
    {
        if (!flags.TryGetValue(name, out string? v))
            return null;
        return long.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : throw new ArgumentException($"--{name} must be a number");
    }

    private static async Task<int> RunTrackerAsync(Dictionary<string, string> flags, ILoggerFactory loggers, Task stop)
    {
        IPEndPoint listen = ParseEndpoint(Required(flags, "listen"));
        var defaults = new Chain.Tracker.TrackerOptions();
        var options = defaults with
        {
            Lease = OptionalInt(flags, "lease-ms") is int leaseMs ? TimeSpan.FromMilliseconds(leaseMs) : defaults.Lease,
            MaxStoreFetchesPerSwarm = OptionalInt(flags, "max-store-fetches") ?? defaults.MaxStoreFetchesPerSwarm,
        };
        options.Validate();
        var tracker = new Chain.Tracker.TrackerService(options, TimeProvider.System);
        var registry = new RpcServiceRegistry();
        tracker.Register(registry);
        await ServeAsync("tracker", listen, registry, tracker.RunSweeperAsync, loggers, stop);
        return 0;
    }

    /// <summary>Offline: a fresh master data directory holding the backup's table (see <see cref="MasterRestore"/>).</summary>
    private static async Task<int> RestoreMasterAsync(Dictionary<string, string> flags)
    {
        string backup = Required(flags, "backup");
        string data = Required(flags, "data");
        var addresses = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string pair in flags.GetValueOrDefault("addresses", "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0 || !Uri.TryCreate(pair[(eq + 1)..], UriKind.Absolute, out Uri? uri) || uri.Scheme != "http")
                throw new ArgumentException($"--addresses: '{pair}' is not ID=http://HOST:PORT");
            addresses[pair[..eq]] = pair[(eq + 1)..].TrimEnd('/');
        }
        Chain.Protocol.Backup.BackupManifest.Load(backup);
        var config = Chain.Protocol.V1.ClusterConfig.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(backup, Chain.Protocol.Backup.BackupManifest.ConfigFileName)));
        var restored = MasterRestore.Restored(config, addresses);
        string path = Path.Combine(data, "master.rocksdb");
        if (Directory.Exists(path))
            throw new InvalidOperationException($"{path} exists; restore needs an empty master data directory");
        Directory.CreateDirectory(data);
        using var engine = RocksDbEngine.Open(path, new RocksDbOptions { ColumnFamilies = new[] { EngineMasterStateStore.ColumnFamily } });
        var store = new EngineMasterStateStore(engine);
        await store.SaveAsync(restored);
        Console.Out.WriteLine($"restored master: {restored.Chains.Count} chains, {restored.Nodes.Count} nodes, {restored.Buckets.Count} buckets, config version {restored.Version}");
        return 0;
    }

    /// <summary>Offline: a fresh node data directory holding its chains' snapshots (see <see cref="NodeRestore"/>).</summary>
    private static async Task<int> RestoreNodeAsync(Dictionary<string, string> flags)
    {
        string backup = Required(flags, "backup");
        string data = Required(flags, "data");
        string nodeId = Required(flags, "node-id");
        string path = Path.Combine(data, "node.rocksdb");
        if (Directory.Exists(path))
            throw new InvalidOperationException($"{path} exists; restore needs an empty node data directory");
        Directory.CreateDirectory(data);
        // Bulk load: no write-ahead log (the data would be written twice); durable once Flush returns, before success.
        using var engine = RocksDbEngine.Open(path, new RocksDbOptions
        {
            ColumnFamilies = StorageNode.ColumnFamilies.ToArray(),
            BlobColumnFamilies = StorageNode.BlobColumnFamilies.ToArray(),
            BulkLoad = true,
        });
        NodeRestoreStats stats = await NodeRestore.RestoreAsync(engine, backup, nodeId);
        engine.Flush();
        Chain.Protocol.Backup.SnapshotFile.SyncDirectory(path);
        Console.Out.WriteLine($"restored node {stats.NodeId}: {stats.Chains} chains, {stats.Records} records, {stats.Bytes} bytes");
        return 0;
    }

    /// <summary>Parses "ack-before-tail", "dirty-reads" or a comma-separated list of them.</summary>
    internal static TestBreaks ParseTestBreaks(string text)
    {
        TestBreaks breaks = TestBreaks.None;
        foreach (string mode in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            breaks |= mode switch
            {
                "ack-before-tail" => TestBreaks.AckBeforeTail,
                "dirty-reads" => TestBreaks.DirtyReads,
                _ => throw new ArgumentException($"unknown --unsafe-test-break mode '{mode}' (known: ack-before-tail, dirty-reads)"),
            };
        }
        if (breaks == TestBreaks.None)
            throw new ArgumentException("--unsafe-test-break needs a mode (ack-before-tail, dirty-reads)");
        return breaks;
    }

    /// <summary>
    /// The process's clock: the system clock, or with <c>--clock-offset-ms N</c> the system clock with its wall time
    /// (<see cref="TimeProvider.GetUtcNow"/>) shifted by N ms (negative: behind). Timers and timestamps stay monotonic.
    /// </summary>
    internal static TimeProvider Clock(Dictionary<string, string> flags)
    {
        if (!flags.TryGetValue("clock-offset-ms", out string? text))
            return TimeProvider.System;
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long offsetMs)
            || Math.Abs(offsetMs) > OffsetTimeProvider.OffsetMsMax)
            throw new ArgumentException($"--clock-offset-ms must be a whole number of milliseconds within ±{OffsetTimeProvider.OffsetMsMax}");
        return offsetMs == 0 ? TimeProvider.System : new OffsetTimeProvider(TimeProvider.System, TimeSpan.FromMilliseconds(offsetMs));
    }

    private static RpcServerOptions ServerOptions(ILoggerFactory loggers) => new()
    {
        Limits = new RpcLimits { MaxMessageBytes = Limits.MessageBytesMax },
        LoggerFactory = loggers,
    };

    /// <summary>The SIGTERM / SIGINT handlers, referenced until the process ends.</summary>
    private static PosixSignalRegistration[]? SignalRegistrations;

    private static readonly HashSet<string> BooleanFlags = new(StringComparer.Ordinal) { "exit-on-stdin-close", "unsafe-test-corrupt-uploads" };

    /// <summary>Flags that may be given several times; their values are kept one per line.</summary>
    private static readonly HashSet<string> RepeatableFlags = new(StringComparer.Ordinal) { "access-key", "anonymous-read" };

    internal static Dictionary<string, string> ParseFlags(ReadOnlySpan<string> args)
    {
        var flags = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                throw new ArgumentException($"unexpected argument '{a}'");
            string name = a[2..];
            string value;
            int eq = name.IndexOf('=');
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            else if (BooleanFlags.Contains(name))
            {
                value = "true";
            }
            else
            {
                if (i + 1 >= args.Length)
                    throw new ArgumentException($"--{name} needs a value");
                value = args[++i];
            }
            if (RepeatableFlags.Contains(name) && flags.TryGetValue(name, out string? earlier))
                value = earlier + "\n" + value;
            flags[name] = value;
        }
        return flags;
    }

    private static string Required(Dictionary<string, string> flags, string name) =>
        flags.TryGetValue(name, out string? v) && v.Length > 0 ? v : throw new ArgumentException($"--{name} is required");

    private static int? OptionalInt(Dictionary<string, string> flags, string name)
    {
        if (!flags.TryGetValue(name, out string? v))
            return null;
        return int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : throw new ArgumentException($"--{name} must be a number");
    }

    internal static IPEndPoint ParseEndpoint(string text) =>
        IPEndPoint.TryParse(text, out IPEndPoint? ep) && ep.Port is >= 0 and <= 65535
            ? ep
            : throw new ArgumentException($"'{text}' is not an IP:PORT endpoint (names are not resolved: no DNS)");
}
