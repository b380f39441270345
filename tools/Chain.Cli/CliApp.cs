using System.Globalization;
using System.Net.Http;
using System.Net.Sockets;
using Chain.Client;
using Chain.Harness;
using Spectre.Console;

namespace Chain.Cli;

/// <summary>The commands. Exit codes: 0 ok, 1 the operation failed, 2 usage error, 3 a condition (--if-absent, --if-version) did not hold.</summary>
public static class CliApp
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Usage = 2;
    public const int PreconditionFailed = 3;

    public static async Task<int> RunAsync(IReadOnlyList<string> args, CliIo io)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(io);
        ParsedCommand? command = null;
        try
        {
            command = CommandLine.Parse(args, io.EnvironmentMaster);
            return command.Name switch
            {
                "help" => Help(command, io),
                "up" => await UpAsync(command, io).ConfigureAwait(false),
                "put" => await PutAsync(command, io).ConfigureAwait(false),
                "get" => await GetAsync(command, io).ConfigureAwait(false),
                "rm" => await RemoveAsync(command, io).ConfigureAwait(false),
                "ls" => await ListAsync(command, io).ConfigureAwait(false),
                "stat" => await StatAsync(command, io).ConfigureAwait(false),
                "mb" => await MakeBucketAsync(command, io).ConfigureAwait(false),
                "rb" => await RemoveBucketAsync(command, io).ConfigureAwait(false),
                "status" => await StatusAsync(command, io).ConfigureAwait(false),
                "gc" => await CollectGarbageAsync(command, io).ConfigureAwait(false),
                "scrub" => await ScrubAsync(command, io).ConfigureAwait(false),
                "check" => await CheckCommand.RunAsync(command, io).ConfigureAwait(false),
                "drill" => await DrillCommand.RunAsync(command, io).ConfigureAwait(false),
                "backup" => await BackupAsync(command, io).ConfigureAwait(false),
                "restore" => await RestoreAsync(command, io).ConfigureAwait(false),
                "agent" => await AgentCommand.RunAsync(command, io).ConfigureAwait(false),
                _ => throw new UsageException($"unknown command '{command.Name}'"),
            };
        }
        catch (UsageException e)
        {
            io.Err.WriteLine($"error: {e.Message}");
            if (e.Command is not null && CommandLine.Commands.TryGetValue(e.Command, out CommandSpec? spec))
                io.Err.WriteLine($"usage: {spec.Usage}");
            else
                io.Err.WriteLine("usage: chain [--master URL] COMMAND [ARGS]");
            io.Err.WriteLine("run 'chain help' for the list of commands");
            return Usage;
        }
        catch (PreconditionFailedException e)
        {
            io.Err.WriteLine($"error: {e.Message} (nothing was changed)");
            return PreconditionFailed;
        }
        catch (Exception e)
        {
            io.Err.WriteLine($"error: {Describe(e, command, io)}");
            if (io.Debug)
                io.Err.WriteLine(e.ToString());
            return Failed;
        }
    }

    /// <summary>One line for a failed operation.</summary>
    internal static string Describe(Exception e, ParsedCommand? command, CliIo io) => e switch
    {
        OperationCanceledException when io.Cancellation.IsCancellationRequested => "cancelled",
        ChainException => e.Message,
        HttpRequestException or SocketException =>
            $"cannot reach the master at {(command is null ? "?" : Endpoint(command.Master))}: {e.Message}",
        _ when e.InnerException is HttpRequestException or SocketException =>
            $"cannot reach the master at {(command is null ? "?" : Endpoint(command.Master))}: {e.InnerException.Message}",
        FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException => e.Message,
        LocalClusterException or TimeoutException or InvalidDataException or Chain.Protocol.Backup.SnapshotFormatException => e.Message,
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    // ---- help ---------------------------------------------------------------------------------------

    private static int Help(ParsedCommand command, CliIo io)
    {
        if (command.Positionals.Count == 1)
        {
            string name = command.Positionals[0];
            if (!CommandLine.Commands.TryGetValue(name, out CommandSpec? spec))
                throw new UsageException($"unknown command '{name}'");
            io.Out.WriteLine($"usage: {spec.Usage}");
            io.Out.WriteLine();
            io.Out.WriteLine($"  {spec.Summary}");
            if (spec.Options.Count > 0)
            {
                io.Out.WriteLine();
                io.Out.WriteLine("options:");
                int width = spec.Options.Max(o => o.Name.Length + o.ValueName.Length) + 4;
                foreach (OptionSpec option in spec.Options)
                    io.Out.WriteLine($"  {("--" + option.Name + " " + option.ValueName).PadRight(width)} {option.Help}");
            }
            return Ok;
        }

        io.Out.WriteLine("chain: command-line tool of the Chain object store");
        io.Out.WriteLine();
        io.Out.WriteLine("usage: chain [--master URL] COMMAND [ARGS]");
        io.Out.WriteLine();
        io.Out.WriteLine("commands:");
        int pad = CommandLine.Commands.Values.Max(c => c.Name.Length + 1 + c.Arguments.Length);
        foreach (CommandSpec spec in CommandLine.Commands.Values)
        {
            string synopsis = spec.Name is "up" or "check" ? spec.Name + " [OPTIONS]" : (spec.Name + " " + spec.Arguments).Trim();
            io.Out.WriteLine($"  {synopsis.PadRight(Math.Min(pad, 24))}  {spec.Summary}");
        }
        io.Out.WriteLine();
        io.Out.WriteLine("global options:");
        io.Out.WriteLine($"  --master URL   master address (default: ${CommandLine.MasterEnvironmentVariable}, else {CommandLine.DefaultMaster})");
        io.Out.WriteLine("  -h, --help     help (chain help COMMAND for a command's options)");
        io.Out.WriteLine();
        io.Out.WriteLine("BUCKET/KEY splits at the first '/': keys may contain '/'.");
        io.Out.WriteLine($"exit codes: 0 ok, 1 operation failed, 2 usage error, {PreconditionFailed} precondition failed (put/rm --if-absent, --if-version)");
        io.Out.WriteLine("            (check: 0 valid, 1 invalid, 2 unknown)");
        return Ok;
    }

    // ---- up -----------------------------------------------------------------------------------------

    /// <summary>
    /// Chains of a fresh `chain up` cluster: many chains spread load and recovery over all nodes (a 3-node cluster with
    /// 64 chains starts as quickly as one with 3). The server's own default stays one chain per node.
    /// </summary>
    public const int UpDefaultChains = 64;
    /// <summary>The S3 gateway port of `chain up` (the usual local S3 port).</summary>
    public const int UpDefaultGatewayPort = 9000;
    /// <summary>The distribution tier's tracker port of `chain up`.</summary>
    public const int UpDefaultTrackerPort = 7500;

    private static async Task<int> UpAsync(ParsedCommand command, CliIo io)
    {
        int nodes = command.IntOption("nodes", 3, 1, 64)!.Value;
        int port = command.IntOption("port", 7400, 1, 65535 - nodes)!.Value;
        int? chains = command.IntOption("chains", UpDefaultChains, 1, 4096);
        int? replicas = command.IntOption("replicas", null, 1, nodes);
        int? zones = command.IntOption("zones", null, 1, nodes);
        long? maxObject = command.LongOption("max-object-bytes", 1, long.MaxValue);
        int gatewayPort = command.IntOption("gateway-port", UpDefaultGatewayPort, 0, 65535)!.Value;
        int trackerPort = command.IntOption("tracker-port", UpDefaultTrackerPort, 0, 65535)!.Value;
        string data = Path.GetFullPath(command.Option("data") ?? "data");
        CancellationToken ct = io.Cancellation;

        var options = new LocalClusterOptions
        {
            Nodes = nodes,
            DataDirectory = data,
            BasePort = port,
            Chains = chains,
            Replicas = replicas,
            MaxObjectBytes = maxObject,
            ZoneOf = zones is { } k ? LocalClusterOptions.RoundRobinZones(k) : null,
            Gateway = gatewayPort == 0 ? null : new LocalGatewayOptions { Port = gatewayPort, MaxObjectBytes = maxObject },
            Tracker = trackerPort == 0 ? null : new LocalTrackerOptions { Port = trackerPort },
        };
        io.Out.WriteLine($"starting master + {nodes} node{(nodes == 1 ? "" : "s")} on ports {port}..{port + nodes} (data: {data})");
        io.Out.Flush();
        LocalCluster cluster;
        try
        {
            cluster = await LocalCluster.StartAsync(options, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            io.Err.WriteLine("error: start-up interrupted; the processes started were stopped");
            return Failed;
        }

        return await RunInForegroundAsync(cluster, command, io).ConfigureAwait(false);
    }

    /// <summary>Shows a started cluster, keeps it running until Ctrl-C, then stops it cleanly (chain up, chain restore).</summary>
    private static async Task<int> RunInForegroundAsync(LocalCluster cluster, ParsedCommand command, CliIo io)
    {
        CancellationToken ct = io.Cancellation;
        await using (cluster.ConfigureAwait(false))
        {
            cluster.UnexpectedExit += (process, code) =>
            {
                if (!ct.IsCancellationRequested)
                    io.Err.WriteLine($"warning: {process.Name} (pid {process.Pid}) exited unexpectedly with code {code}; see {process.LogPath}");
            };

            io.Out.WriteLine();
            io.Out.WriteLine($"  {"master",-8} {Endpoint(cluster.Master.Address),-26} pid {cluster.Master.Pid,-8} log {cluster.Master.LogPath}");
            foreach (NodeProcess node in cluster.Nodes)
                io.Out.WriteLine($"  {node.Id,-8} {Endpoint(node.Address),-26} pid {node.Pid,-8} log {node.LogPath}");
            io.Out.WriteLine();
            if (cluster.Gateway is { } gateway)
            {
                io.Out.WriteLine($"gateway: {gateway.Address.ToString().TrimEnd('/')}  (S3, path-style; access key {LocalGatewayOptions.DevAccessKeyId}, " +
                                 $"secret {LocalGatewayOptions.DevSecretKey}; log {gateway.LogPath})");
                if (cluster.Options.Gateway?.BuildCache == true)
                    io.Out.WriteLine($"build cache: {gateway.Address.ToString().TrimEnd('/')}{LocalGatewayOptions.BuildCachePrefix}  " +
                                     "(ccache remote_storage, Bazel --remote_cache, Gradle HttpBuildCache)");
                io.Out.WriteLine();
            }
            if (cluster.Tracker is { } tracker)
            {
                io.Out.WriteLine($"tracker: {tracker.Address.ToString().TrimEnd('/')}  (distribution tier: peer agents announce here; log {tracker.LogPath})");
                io.Out.WriteLine();
            }
            try
            {
                await using ChainClient client = io.ClientFactory(cluster.MasterAddress);
                ClusterStatus status = await client.GetStatusAsync(ct).ConfigureAwait(false);
                StatusView.Render(io.Console, status, DateTimeOffset.UtcNow, includeBuckets: false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                io.Err.WriteLine($"warning: cannot read the cluster status: {Describe(e, command, io)}");
            }
            io.Out.WriteLine();
            io.Out.WriteLine($"cluster is up: master {Endpoint(cluster.MasterAddress)} (press Ctrl-C to stop)");
            io.Out.Flush();

            try
            {
                await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            io.Out.WriteLine("stopping...");
            io.Out.Flush();
            IReadOnlyDictionary<string, int> failures = await cluster.StopAllAsync().ConfigureAwait(false);
            foreach ((string name, int code) in failures)
                io.Err.WriteLine($"warning: {name} exited with code {code}");
            io.Out.WriteLine(failures.Count == 0 ? "stopped" : "stopped, with errors");
            return failures.Count == 0 ? Ok : Failed;
        }
    }

    // ---- objects ------------------------------------------------------------------------------------

    private static async Task<int> PutAsync(ParsedCommand command, CliIo io)
    {
        ObjectPath path = ObjectPath.Parse(command.Positionals[0], command.Name);
        string file = command.Positionals[1];
        string contentType = command.Option("content-type") ?? new PutOptions().ContentType;
        bool ifAbsent = command.Flag("if-absent");
        ulong? ifVersion = IfVersionOption(command);
        if (ifAbsent && ifVersion is not null)
            throw new UsageException("--if-absent and --if-version cannot be combined", command.Name);
        var options = new PutOptions { ContentType = contentType, IfAbsent = ifAbsent, IfVersion = ifVersion };
        CancellationToken ct = io.Cancellation;

        await using FileStream stream = OpenSource(file);
        long size = stream.Length;
        await using ChainClient client = io.ClientFactory(command.Master);
        PutResult result;
        if (ProgressConsole(io) is { } progressConsole)
        {
            result = await WithProgressAsync(progressConsole, $"put {path}", size,
                progress => client.PutAsync(path.Bucket, path.Key, stream, options with { Progress = progress }, ct)).ConfigureAwait(false);
        }
        else
        {
            result = await client.PutAsync(path.Bucket, path.Key, stream, options, ct).ConfigureAwait(false);
        }

        io.Out.WriteLine($"put {result.Bucket}/{result.Key}{(result.Deduplicated ? " (deduplicated: identical content)" : "")}");
        io.Out.WriteLine($"  version: {result.Version}");
        io.Out.WriteLine($"  size:    {result.Size} ({FormatBytes(result.Size)})");
        io.Out.WriteLine($"  sha256:  {result.Sha256Hex}");
        return Ok;
    }

    private static async Task<int> GetAsync(ParsedCommand command, CliIo io)
    {
        ObjectPath path = ObjectPath.Parse(command.Positionals[0], command.Name);
        string destination = command.Positionals[1];
        CancellationToken ct = io.Cancellation;
        if (command.Flag("p2p"))
            return await AgentCommand.GetAsync(command, io, path, destination).ConfigureAwait(false);
        if (command.Option("agent") is not null)
            throw new UsageException("--agent goes with --p2p", command.Name);

        if (destination == "-")
        {
            await using ChainClient stdoutClient = io.ClientFactory(command.Master);
            Stream stdout = io.OpenStandardOutput();
            await using (stdout.ConfigureAwait(false))
            {
                if (ProgressConsole(io) is { } progressConsole)
                {
                    // The data goes to standard output; the bar to standard error.
                    ObjectInfo stat = await stdoutClient.StatAsync(path.Bucket, path.Key, ct).ConfigureAwait(false);
                    await WithProgressAsync(progressConsole, $"get {path}", stat.Size,
                        progress => stdoutClient.GetAsync(path.Bucket, path.Key, stdout, progress, ct)).ConfigureAwait(false);
                }
                else
                {
                    await stdoutClient.GetAsync(path.Bucket, path.Key, stdout, null, ct).ConfigureAwait(false);
                }
                await stdout.FlushAsync(ct).ConfigureAwait(false);
            }
            return Ok;
        }

        if (Directory.Exists(destination))
            destination = Path.Combine(destination, LocalNameOf(path));
        string partial = destination + ".partial";
        await using ChainClient client = io.ClientFactory(command.Master);
        ObjectInfo info;
        try
        {
            await using (var file = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                if (ProgressConsole(io) is { } progressConsole)
                {
                    ObjectInfo stat = await client.StatAsync(path.Bucket, path.Key, ct).ConfigureAwait(false);
                    info = await WithProgressAsync(progressConsole, $"get {path}", stat.Size,
                        progress => client.GetAsync(path.Bucket, path.Key, file, progress, ct)).ConfigureAwait(false);
                }
                else
                {
                    info = await client.GetAsync(path.Bucket, path.Key, file, null, ct).ConfigureAwait(false);
                }
                await file.FlushAsync(ct).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }
            File.Move(partial, destination, overwrite: true);
        }
        catch
        {
            TryDelete(partial);
            throw;
        }

        io.Out.WriteLine($"get {info.Bucket}/{info.Key} -> {destination}");
        io.Out.WriteLine($"  version: {info.Version}");
        io.Out.WriteLine($"  size:    {info.Size} ({FormatBytes(info.Size)})");
        io.Out.WriteLine($"  sha256:  {info.Sha256Hex}");
        return Ok;
    }

    private static async Task<int> RemoveAsync(ParsedCommand command, CliIo io)
    {
        ObjectPath path = ObjectPath.Parse(command.Positionals[0], command.Name);
        ulong? ifVersion = IfVersionOption(command);
        await using ChainClient client = io.ClientFactory(command.Master);
        if (!await client.DeleteAsync(path.Bucket, path.Key, ifVersion, io.Cancellation).ConfigureAwait(false))
            throw new ObjectNotFoundException(path.Bucket, path.Key);
        io.Out.WriteLine($"deleted {path}");
        return Ok;
    }

    private static async Task<int> StatAsync(ParsedCommand command, CliIo io)
    {
        ObjectPath path = ObjectPath.Parse(command.Positionals[0], command.Name);
        await using ChainClient client = io.ClientFactory(command.Master);
        ObjectInfo info = await client.StatAsync(path.Bucket, path.Key, io.Cancellation).ConfigureAwait(false);
        io.Out.WriteLine($"object:       {info.Bucket}/{info.Key}");
        io.Out.WriteLine($"size:         {info.Size} ({FormatBytes(info.Size)})");
        io.Out.WriteLine($"sha256:       {info.Sha256Hex}");
        io.Out.WriteLine($"version:      {info.Version}");
        io.Out.WriteLine($"created:      {FormatTime(info.Created)}");
        io.Out.WriteLine($"content-type: {info.ContentType}");
        return Ok;
    }

    private static async Task<int> ListAsync(ParsedCommand command, CliIo io)
    {
        await using ChainClient client = io.ClientFactory(command.Master);
        if (command.Positionals.Count == 0)
        {
            IReadOnlyList<BucketInfo> buckets = await client.ListBucketsAsync(io.Cancellation).ConfigureAwait(false);
            foreach (BucketInfo bucket in buckets)
                io.Out.WriteLine($"{FormatTime(bucket.Created)}  {bucket.Name}");
            return Ok;
        }

        (string bucketName, string prefix) = ObjectPath.ParseListTarget(command.Positionals[0], command.Name);
        await foreach (ObjectInfo info in client.ListAsync(bucketName, prefix, null, io.Cancellation).ConfigureAwait(false))
            io.Out.WriteLine($"{FormatTime(info.Created)}  {info.Size,14}  {info.Key}");
        return Ok;
    }

    // ---- buckets and cluster ------------------------------------------------------------------------

    private static async Task<int> MakeBucketAsync(ParsedCommand command, CliIo io)
    {
        string bucket = ObjectPath.ParseBucket(command.Positionals[0], command.Name);
        await using ChainClient client = io.ClientFactory(command.Master);
        if (!await client.CreateBucketAsync(bucket, io.Cancellation).ConfigureAwait(false))
            throw new ChainException($"bucket '{bucket}' already exists");
        io.Out.WriteLine($"created bucket '{bucket}'");
        return Ok;
    }

    private static async Task<int> RemoveBucketAsync(ParsedCommand command, CliIo io)
    {
        string bucket = ObjectPath.ParseBucket(command.Positionals[0], command.Name);
        await using ChainClient client = io.ClientFactory(command.Master);
        if (!await client.DeleteBucketAsync(bucket, io.Cancellation).ConfigureAwait(false))
            throw new BucketNotFoundException(bucket);
        io.Out.WriteLine($"removed bucket '{bucket}'");
        return Ok;
    }

    private static async Task<int> StatusAsync(ParsedCommand command, CliIo io)
    {
        await using ChainClient client = io.ClientFactory(command.Master);
        ClusterStatus status = await client.GetStatusAsync(io.Cancellation).ConfigureAwait(false);
        io.Out.Flush();
        StatusView.Render(io.Console, status, DateTimeOffset.UtcNow, includeBuckets: true);
        return Ok;
    }

    private static async Task<int> CollectGarbageAsync(ParsedCommand command, CliIo io)
    {
        await using ChainClient client = io.ClientFactory(command.Master);
        GcReport report = await client.CollectGarbageAsync(io.Cancellation).ConfigureAwait(false);
        io.Out.WriteLine($"gc: {report.Chains} chains, {report.ReferencedChunks} chunks referenced, {report.StoredChunks} stored, " +
            $"{report.Candidates} unreferenced, {report.Deleted} deleted (the others are younger than the grace period) in {report.Elapsed.TotalSeconds:0.0} s");
        return Ok;
    }

    /// <summary>Verifies every chunk on every node (repairing damaged copies from healthy replicas); exit 1 if anything stays damaged.</summary>
    private static async Task<int> ScrubAsync(ParsedCommand command, CliIo io)
    {
        await using ChainClient client = io.ClientFactory(command.Master);
        IReadOnlyList<NodeIntegrity> nodes = await client.CheckIntegrityAsync(scrub: true, io.Cancellation).ConfigureAwait(false);
        bool clean = true;
        foreach (NodeIntegrity n in nodes)
        {
            io.Out.WriteLine($"{n.NodeId}: {n.ScrubbedChunks} chunks ({FormatBytes(n.ScrubbedBytes)}) verified, {n.ScrubCorrupt} damaged, {n.ScrubRepaired} repaired; " +
                $"since start: {n.CorruptDetected} damaged chunks detected, {n.Repaired} repaired, {n.RepairFailures} repairs failed; " +
                $"memory: resident {FormatBytes(n.ResidentBytes)}, managed heap {FormatBytes(n.ManagedHeapBytes)} of {FormatBytes(n.ManagedCommittedBytes)} committed");
            foreach (string line in n.RecentCorruptions)
                io.Out.WriteLine($"  {line}");
            clean &= n.ScrubCorrupt == n.ScrubRepaired;
        }
        return clean ? Ok : 1;
    }

    // ---- backup / restore ---------------------------------------------------------------------------

    /// <summary>A consistent backup of the live cluster into DIR (new or empty) while writes go on.</summary>
    private static async Task<int> BackupAsync(ParsedCommand command, CliIo io)
    {
        string directory = Path.GetFullPath(command.Positionals[0]);
        await using ChainClient client = io.ClientFactory(command.Master);
        io.Out.WriteLine($"backing up the cluster of {Endpoint(command.Master)} into {directory} ...");
        io.Out.Flush();
        BackupStats stats = await ClusterBackup.RunAsync(client, directory, io.Cancellation).ConfigureAwait(false);
        io.Out.WriteLine($"backup: {stats.Chains} chains, {stats.Objects} objects ({FormatBytes(stats.ObjectBytes)}), {stats.Chunks} chunks ({FormatBytes(stats.ChunkBytes)}); " +
            $"{stats.Files} files, {FormatBytes(stats.Bytes)} in {stats.Seconds:0.0} s ({Rate(stats.Bytes, stats.Seconds)}); " +
            $"every write acknowledged before {stats.Started:yyyy-MM-ddTHH:mm:ss.fffZ} is in it");
        return Ok;
    }

    /// <summary>
    /// Brings a backup up in a new local cluster: checksums first (a bad file: error, nothing started), offline layout,
    /// start as `chain up`, every object read back and verified; prints restore MB/s next to a raw copy of the files.
    /// </summary>
    private static async Task<int> RestoreAsync(ParsedCommand command, CliIo io)
    {
        string backup = Path.GetFullPath(command.Positionals[0]);
        int port = command.IntOption("port", 7400, 1, 65000)!.Value;
        string data = Path.GetFullPath(command.Option("data") ?? "restored");
        CancellationToken ct = io.Cancellation;
        io.Out.WriteLine($"restoring {backup} into {data} (master port {port}) ...");
        io.Out.Flush();
        (LocalCluster cluster, RestoreStats stats) = await BackupRestore.RestoreAsync(backup,
            new RestoreOptions { DataDirectory = data, BasePort = port }, ct).ConfigureAwait(false);
        bool verified;
        try
        {
            io.Out.WriteLine($"restore: {FormatBytes(stats.Bytes)} in {stats.Seconds:0.0} s = {stats.MBps:0.0} MB/s (checksums {stats.VerifySeconds:0.0} s, " +
                $"layout {stats.LayoutSeconds:0.0} s of {FormatBytes(stats.LaidOutBytes)} over all replicas = {stats.LayoutMBps:0.0} MB/s, " +
                $"start {stats.Seconds - stats.VerifySeconds - stats.LayoutSeconds:0.0} s); raw copy of the backup files: {stats.RawCopyMBps:0.0} MB/s");
            io.Out.Flush();
            await using ChainClient client = io.ClientFactory(cluster.MasterAddress);
            ObjectVerification check = await BackupRestore.VerifyObjectsAsync(client, backup, ct).ConfigureAwait(false);
            io.Out.WriteLine($"verified: {check.Objects} objects ({FormatBytes(check.Bytes)}) read back in {check.Seconds:0.0} s, {check.Failed} did not match the backup");
            foreach (string failure in check.Failures)
                io.Err.WriteLine($"  {failure}");
            verified = check.Ok;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        if (!verified)
        {
            io.Err.WriteLine($"error: the restored cluster does not hold the backup's objects (cluster left running at {Endpoint(cluster.MasterAddress)} for inspection until Ctrl-C)");
            await RunInForegroundAsync(cluster, command, io).ConfigureAwait(false);
            return Failed;
        }
        return await RunInForegroundAsync(cluster, command, io).ConfigureAwait(false);
    }

    private static string Rate(long bytes, double seconds) => seconds > 0 ? $"{bytes / 1e6 / seconds:0.0} MB/s" : "-";

    // ---- helpers ------------------------------------------------------------------------------------

    /// <summary>--if-version N: a positive integer (versions start at 1); null when absent.</summary>
    internal static ulong? IfVersionOption(ParsedCommand command)
    {
        string? text = command.Option("if-version");
        if (text is null)
            return null;
        if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong version) || version == 0)
            throw new UsageException($"--if-version must be a positive integer (versions start at 1), not '{text}'", command.Name);
        return version;
    }

    /// <summary>Where progress bars go: standard error, and only when it is a terminal. Never standard output.</summary>
    private static IAnsiConsole? ProgressConsole(CliIo io) => io.ErrorIsTerminal ? io.ErrorConsole : null;

    private static FileStream OpenSource(string file)
    {
        try
        {
            return new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot read '{file}': {e.Message}", e);
        }
    }

    /// <summary>The local file name for 'get KEY DIR': the key's last segment.</summary>
    internal static string LocalNameOf(ObjectPath path)
    {
        string name = path.Key[(path.Key.LastIndexOf('/') + 1)..];
        if (name.Length == 0 || name is "." or "..")
            throw new UsageException($"cannot derive a file name from key '{path.Key}'; give a file path", "get");
        return name;
    }

    private static async Task<T> WithProgressAsync<T>(IAnsiConsole console, string description, long total, Func<IProgress<long>, Task<T>> action)
    {
        return await console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(
                new TaskDescriptionColumn(),
                new ProgressBarColumn(),
                new PercentageColumn(),
                new DownloadedColumn(),
                new TransferSpeedColumn(),
                new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                ProgressTask task = context.AddTask(Markup.Escape(description), autoStart: true, maxValue: Math.Max(1, total));
                T result = await action(new CallbackProgress(bytes => task.Value = Math.Min(bytes, task.MaxValue))).ConfigureAwait(false);
                task.Value = task.MaxValue;
                task.StopTask();
                return result;
            }).ConfigureAwait(false);
    }

    internal static string FormatBytes(long bytes)
    {
        string[] units = { "B", "KiB", "MiB", "GiB", "TiB" };
        double value = bytes;
        int unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0
            ? $"{bytes} B"
            : value.ToString("0.0", CultureInfo.InvariantCulture) + " " + units[unit];
    }

    /// <summary>An address as typed: http://host:port without the trailing '/' Uri adds.</summary>
    internal static string Endpoint(Uri address) => address.AbsolutePath == "/" ? address.GetLeftPart(UriPartial.Authority) : address.ToString();

    internal static string FormatTime(DateTimeOffset time) =>
        time.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Reports synchronously on the caller's thread (Progress&lt;T&gt; would post and reorder).</summary>
    private sealed class CallbackProgress : IProgress<long>
    {
        private readonly Action<long> _report;

        public CallbackProgress(Action<long> report) => _report = report;

        public void Report(long value) => _report(value);
    }
}
