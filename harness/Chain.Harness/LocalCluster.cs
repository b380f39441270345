using System.Globalization;
using Chain.Client;

namespace Chain.Harness;

/// <summary>
/// A master and N storage nodes as real separate processes on loopback (<c>dotnet Chain.Server.dll ...</c>).
/// Node index i (0-based) has node id <c>node{i+1}</c>, port BasePort+i+1 and data directory <c>DataDirectory/node{i+1}</c>.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private static readonly TimeSpan PollMin = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan PollMax = TimeSpan.FromMilliseconds(500);

    private readonly ServerProcess _master;
    private readonly NodeProcess[] _nodes;
    private readonly IReadOnlyList<string> _mounts;
    private int _disposed;

    /// <summary>The port every process listens on in <see cref="ClusterNetwork.Namespaces"/> mode (each has its own address).</summary>
    public const int NamespacePort = 7400;

    private LocalCluster(LocalClusterOptions options, string serverDll, ServerProcess master, NodeProcess[] nodes,
        NamespaceNetwork? network, IReadOnlyList<string> mounts, ProxyNetwork? proxies)
    {
        Network = network;
        Proxies = proxies;
        _mounts = mounts;
        Options = options;
        ServerDllPath = serverDll;
        _master = master;
        _nodes = nodes;
        _master.UnexpectedExit += OnUnexpectedExit;
        foreach (NodeProcess node in _nodes)
            node.UnexpectedExit += OnUnexpectedExit;
    }

    public LocalClusterOptions Options { get; }

    public string ServerDllPath { get; }

    public ServerProcess Master => _master;

    public Uri MasterAddress => _master.Address;

    /// <summary>The S3 gateway process (<see cref="LocalClusterOptions.Gateway"/>); null when none was asked for.</summary>
    public ServerProcess? Gateway { get; private set; }

    /// <summary>The distribution tier's tracker process (<see cref="LocalClusterOptions.Tracker"/>); null when none was asked for.</summary>
    public ServerProcess? Tracker { get; private set; }

    /// <summary>The tracker's address; null when no tracker runs.</summary>
    public Uri? TrackerAddress => Tracker?.Address;

    public IReadOnlyList<NodeProcess> Nodes => _nodes;

    /// <summary>The namespaces the processes run in; null in <see cref="ClusterNetwork.Loopback"/> mode.</summary>
    public NamespaceNetwork? Network { get; }

    /// <summary>The BellJar seal over <see cref="Network"/> (allowlists, recorded attempts); null unless <see cref="LocalClusterOptions.Seal"/> was set.</summary>
    public BellJar.SealedNetwork? Seal { get; private init; }

    /// <summary>The TCP proxies between the processes; null unless <see cref="ClusterNetwork.Proxies"/> mode.</summary>
    public ProxyNetwork? Proxies { get; }

    /// <summary>Every process: index 0 is the master, index i+1 is node i (the numbering of <see cref="NamespaceNetwork"/>).</summary>
    public IReadOnlyList<ServerProcess> Processes => AllProcesses().ToArray();

    /// <summary>Whether each node's data directory is a size-limited tmpfs (<see cref="LocalClusterOptions.NodeDataTmpfsBytes"/>).</summary>
    public bool NodeDataOnTmpfs => _mounts.Count > 0;

    /// <summary>A server process exited without the harness having stopped it (process, exit code).</summary>
    public event Action<ServerProcess, int>? UnexpectedExit;

    /// <summary>Starts the master and the nodes, then waits until the master has chains and sees every node alive.</summary>
    public static async Task<LocalCluster> StartAsync(LocalClusterOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        string serverDll = ServerLocator.Locate(options.ServerDllPath);
        string dotnet = FindDotnetHost();
        string root = Path.GetFullPath(options.DataDirectory);
        Directory.CreateDirectory(root);

        NamespaceNetwork? network = null;
        BellJar.SealedNetwork? seal = null;
        var mounts = new List<string>();
        try
        {
            if (options.NodeDataTmpfsBytes is not null)
            {
                if (TmpfsMounts.Unavailable() is { } reason)
                    throw new InvalidOperationException("LocalClusterOptions.NodeDataTmpfsBytes: " + reason);
                await TmpfsMounts.RemoveLeftoversAsync().ConfigureAwait(false);
            }
            if (options.Network == ClusterNetwork.Namespaces)
                network = await NamespaceNetwork.CreateAsync(options.Nodes + 1, ct).ConfigureAwait(false);
            if (options.Seal is { } manifests)
            {
                int port = options.BasePort == 0 ? NamespacePort : options.BasePort;
                var processes = Enumerable.Range(0, options.Nodes).Select(i => new BellJar.SealedProcess("node", NodeId(i), port))
                    .Prepend(new BellJar.SealedProcess("master", "master", port)).ToList();
                seal = await BellJar.SealedNetwork.ApplyAsync(network!, manifests, processes, ct).ConfigureAwait(false);
            }
            if (options.NodeDataTmpfsBytes is { } tmpfsBytes)
            {
                for (int i = 0; i < options.Nodes; i++)
                {
                    string directory = Path.Combine(root, options.IdOf(i));
                    await TmpfsMounts.MountAsync(directory, tmpfsBytes, ct).ConfigureAwait(false);
                    mounts.Add(directory);
                }
            }
        }
        catch
        {
            await ReleaseAsync(network, mounts).ConfigureAwait(false);
            throw;
        }

        // Process k (0 = master, i+1 = node i): on loopback each has its own port; in namespaces each has its own address.
        // In one shared namespace every process has its own port on the namespace's one address.
        SharedNamespacePlacement? shared = options.Network == ClusterNetwork.SharedNamespace ? options.SharedNamespace : null;
        int[] ports = network is not null
            ? Enumerable.Repeat(options.BasePort == 0 ? NamespacePort : options.BasePort, options.Nodes + 1).ToArray()
            : shared is not null
                ? Enumerable.Range(options.BasePort == 0 ? NamespacePort : options.BasePort, options.Nodes + 1).ToArray()
            : options.BasePort == 0
                ? PortAllocator.FreePorts(options.Nodes + 1)
                : Enumerable.Range(options.BasePort, options.Nodes + 1).ToArray();
        string Host(int k) => network?.AddressOf(k).ToString() ?? shared?.Address.ToString() ?? "127.0.0.1";
        ServerProcess[]? everyone = null;
        ProxyNetwork? proxies = options.Network == ClusterNetwork.Proxies
            ? ProxyNetwork.Start(ports, k => everyone is null ? 0 : everyone[k].Pid)
            : null;
        // The address the other processes use for process k: the proxy's port in Proxies mode.
        string Advertised(int k) => $"http://{Host(k)}:{(proxies is null ? ports[k] : proxies.ProxyPort(k))}";
        IReadOnlyList<string>? Launcher(int k) => network?.LauncherFor(k) ?? shared?.Launcher;

        var masterArgs = new List<string>
        {
            "master",
            "--listen", $"{Host(0)}:{ports[0]}",
            "--data", Path.Combine(root, "master"),
            "--exit-on-stdin-close",
            "--expect-nodes", options.Nodes.ToString(CultureInfo.InvariantCulture),
        };
        if (options.Chains is { } chains)
            masterArgs.AddRange(new[] { "--chains", chains.ToString(CultureInfo.InvariantCulture) });
        if (options.Replicas is { } replicas)
            masterArgs.AddRange(new[] { "--replicas", replicas.ToString(CultureInfo.InvariantCulture) });
        if (options.FailureTimeout is { } failureTimeout)
            masterArgs.AddRange(new[] { "--failure-timeout-ms", ((long)failureTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) });
        var master = new ServerProcess("master", null, ports[0], Path.Combine(root, "master"), Path.Combine(root, "master.log"),
            dotnet, serverDll, masterArgs, Host(0), Launcher(0));

        var nodes = new NodeProcess[options.Nodes];
        for (int i = 0; i < nodes.Length; i++)
        {
            string id = options.IdOf(i);
            var args = new List<string>
            {
                "node",
                "--listen", $"{Host(i + 1)}:{ports[i + 1]}",
                "--data", Path.Combine(root, id),
                "--master", Advertised(0),
                "--node-id", id,
                "--exit-on-stdin-close",
            };
            if (network is not null || proxies is not null || shared is not null)
                args.AddRange(new[] { "--advertise", Advertised(i + 1) });
            if (options.MaxObjectBytes is { } max)
                args.AddRange(new[] { "--max-object-bytes", max.ToString(CultureInfo.InvariantCulture) });
            if (options.ZoneOf?.Invoke(i) is { Length: > 0 } zone)
                args.AddRange(new[] { "--zone", zone });
            args.AddRange(options.ExtraNodeArguments);
            nodes[i] = new NodeProcess(id, ports[i + 1], Path.Combine(root, id), Path.Combine(root, id + ".log"), dotnet, serverDll, args,
                Host(i + 1), Launcher(i + 1))
            {
                ExtraEnvironment = options.NodeEnvironment,
            };
        }

        everyone = nodes.Cast<ServerProcess>().Prepend(master).ToArray();
        var cluster = new LocalCluster(options, serverDll, master, nodes, network, mounts, proxies) { Seal = seal };
        DateTime deadline = DateTime.UtcNow + options.StartTimeout;
        try
        {
            if (options.PrepareDataAsync is { } prepare)
            {
                var layout = new LocalClusterLayout(serverDll, dotnet, Path.Combine(root, "master"),
                    Enumerable.Range(0, nodes.Length).Select(i => new LocalClusterNodeLayout(nodes[i].Id, Path.Combine(root, nodes[i].Id), Advertised(i + 1))).ToArray());
                await prepare(layout, ct).ConfigureAwait(false);
            }
            await master.StartAsync(Remaining(deadline), ct).ConfigureAwait(false);
            await Task.WhenAll(nodes.Select(n => n.StartAsync(Remaining(deadline), ct))).ConfigureAwait(false);
            await cluster.WaitUntilHealthyAsync(Remaining(deadline), ct).ConfigureAwait(false);
            if (options.Gateway is { } gateway)
            {
                cluster.Gateway = GatewayProcess(gateway, root, dotnet, serverDll, Advertised(0));
                await cluster.Gateway.StartAsync(Remaining(deadline), ct).ConfigureAwait(false);
            }
            if (options.Tracker is { } tracker)
            {
                // In one shared namespace the tracker listens on the namespace's address, on the port after the nodes'.
                cluster.Tracker = TrackerProcess(tracker, root, dotnet, serverDll,
                    shared is null ? null : (shared.Address.ToString(), ports[^1] + 1, shared.Launcher));
                await cluster.Tracker.StartAsync(Remaining(deadline), ct).ConfigureAwait(false);
            }
            return cluster;
        }
        catch
        {
            await cluster.KillAllAsync().ConfigureAwait(false);
            await ReleaseAsync(network, mounts).ConfigureAwait(false);
            if (proxies is not null)
                await proxies.DisposeAsync().ConfigureAwait(false);
            if (options.DeleteDataOnDispose)
                TryDeleteDirectory(root);
            throw;
        }
    }

    private static ServerProcess GatewayProcess(LocalGatewayOptions gateway, string root, string dotnet, string serverDll, string master)
    {
        int port = gateway.Port == 0 ? PortAllocator.FreePorts(1)[0] : gateway.Port;
        var args = new List<string> { "gateway", "--listen", $"127.0.0.1:{port}", "--master", master, "--exit-on-stdin-close" };
        foreach (var (id, secret) in gateway.AccessKeys)
            args.AddRange(new[] { "--access-key", $"{id}:{secret}" });
        foreach (string bucket in gateway.AnonymousReadBuckets)
            args.AddRange(new[] { "--anonymous-read", bucket });
        if (gateway.MaxObjectBytes is { } max)
            args.AddRange(new[] { "--max-object-bytes", max.ToString(CultureInfo.InvariantCulture) });
        args.AddRange(new[] { "--build-cache-prefix", gateway.BuildCache ? LocalGatewayOptions.BuildCachePrefix : "none" });
        return new ServerProcess("gateway", null, port, Path.Combine(root, "gateway"), Path.Combine(root, "gateway.log"), dotnet, serverDll, args);
    }

    private static ServerProcess TrackerProcess(LocalTrackerOptions tracker, string root, string dotnet, string serverDll,
        (string Host, int Port, IReadOnlyList<string> Launcher)? shared)
    {
        string host = shared?.Host ?? "127.0.0.1";
        int port = tracker.Port != 0 ? tracker.Port : shared?.Port ?? PortAllocator.FreePorts(1)[0];
        var args = new List<string> { "tracker", "--listen", $"{host}:{port}", "--exit-on-stdin-close" };
        if (tracker.LeaseMs is { } lease)
            args.AddRange(new[] { "--lease-ms", lease.ToString(CultureInfo.InvariantCulture) });
        if (tracker.MaxStoreFetches is { } fetches)
            args.AddRange(new[] { "--max-store-fetches", fetches.ToString(CultureInfo.InvariantCulture) });
        return new ServerProcess("tracker", null, port, Path.Combine(root, "tracker"), Path.Combine(root, "tracker.log"), dotnet, serverDll, args,
            shared?.Host ?? "127.0.0.1", shared?.Launcher);
    }

    /// <summary>Unmounts the tmpfs data directories and removes the namespaces (best effort, after the processes are gone).</summary>
    private static async Task ReleaseAsync(NamespaceNetwork? network, IReadOnlyList<string> mounts)
    {
        foreach (string directory in mounts)
        {
            try
            {
                await TmpfsMounts.UnmountAsync(directory).ConfigureAwait(false);
            }
            catch (InvalidOperationException)
            {
                // Best effort; the next run's leftover sweep retries.
            }
        }
        if (network is not null)
            await network.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>The default node id of node index <paramref name="index"/> (0-based); see <see cref="LocalClusterOptions.NodeIds"/>.</summary>
    public static string NodeId(int index) => "node" + (index + 1).ToString(CultureInfo.InvariantCulture);

    /// <summary>A client of this cluster's master (the caller disposes it).</summary>
    public ChainClient CreateClient() => new(new ChainClientOptions { Master = MasterAddress });

    /// <summary>A client of this cluster's master with adjusted options (timeouts, retries).</summary>
    public ChainClient CreateClient(Func<ChainClientOptions, ChainClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        return new ChainClient(configure(new ChainClientOptions { Master = MasterAddress }));
    }

    /// <summary>Graceful stop (SIGTERM) of node <paramref name="index"/>; SIGKILL after <see cref="LocalClusterOptions.StopTimeout"/>.</summary>
    public Task StopNodeAsync(int index) => Node(index).StopAsync(Options.StopTimeout);

    /// <summary>SIGKILL of node <paramref name="index"/>, waiting for it to be gone.</summary>
    public Task KillNodeAsync(int index) => Node(index).KillAsync();

    /// <summary>SIGSTOP: the node's process freezes (sockets stay open, nothing runs) until <see cref="ResumeNode"/>.</summary>
    public void SuspendNode(int index)
    {
        if (!Node(index).SignalRunning(Native.SIGSTOP))
            throw new InvalidOperationException($"node {index} is not running");
    }

    /// <summary>SIGCONT after <see cref="SuspendNode"/>.</summary>
    public void ResumeNode(int index)
    {
        if (!Node(index).SignalRunning(Native.SIGCONT))
            throw new InvalidOperationException($"node {index} is not running");
    }

    /// <summary>Restarts node <paramref name="index"/> with its id, port and data directory; waits for READY.</summary>
    public Task StartNodeAsync(int index, CancellationToken ct = default) => Node(index).StartAsync(Options.StartTimeout, ct);

    public Task StopMasterAsync() => _master.StopAsync(Options.StopTimeout);

    public Task KillMasterAsync() => _master.KillAsync();

    /// <summary>Restarts the master with its port and data directory; waits for READY.</summary>
    public Task StartMasterAsync(CancellationToken ct = default) => _master.StartAsync(Options.StartTimeout, ct);

    /// <summary>
    /// Polls the master until it reports chains and every node of this cluster alive. Throws
    /// <see cref="TimeoutException"/> (with the last status seen) when that takes longer than <paramref name="timeout"/>.
    /// </summary>
    public async Task<ClusterStatus> WaitUntilHealthyAsync(TimeSpan? timeout = null, CancellationToken ct = default)
    {
        TimeSpan limit = timeout ?? Options.StartTimeout;
        DateTime deadline = DateTime.UtcNow + limit;
        TimeSpan attempt = TimeSpan.FromSeconds(Math.Clamp(limit.TotalSeconds / 4, 0.5, 3));
        await using var client = new ChainClient(new ChainClientOptions
        {
            Master = MasterAddress,
            OperationTimeout = attempt,
            AttemptTimeout = attempt,
            MaxAttempts = 1,
        });
        TimeSpan delay = PollMin;
        string lastSeen = "no answer from the master yet";
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            ServerProcess? dead = AllProcesses().FirstOrDefault(p => !p.IsRunning);
            if (dead is not null)
                throw new LocalClusterException($"{dead.Name} is not running (exit code {dead.LastExitCode?.ToString(CultureInfo.InvariantCulture) ?? "?"}){dead.FormatTail()}");
            try
            {
                ClusterStatus status = await client.GetStatusAsync(ct).ConfigureAwait(false);
                string? problem = HealthProblem(status);
                if (problem is null)
                    return status;
                lastSeen = problem;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception e)
            {
                lastSeen = $"status query failed: {e.GetType().Name}: {e.Message}";
            }

            TimeSpan left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new TimeoutException($"the cluster did not become healthy within {limit.TotalSeconds:0.#}s; last seen: {lastSeen}");
            await Task.Delay(delay < left ? delay : left, ct).ConfigureAwait(false);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, PollMax.Ticks));
        }
    }

    /// <summary>Null when the status shows chains and every node of this cluster alive, else what is missing.</summary>
    public string? HealthProblem(ClusterStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        if (status.Chains.Count == 0)
            return $"no chains yet ({status.Nodes.Count} nodes registered)";
        var known = status.Nodes.ToDictionary(n => n.NodeId, StringComparer.Ordinal);
        var missing = _nodes.Where(n => !known.ContainsKey(n.Id)).Select(n => n.Id).ToList();
        if (missing.Count > 0)
            return $"nodes not registered: {string.Join(", ", missing)}";
        var down = _nodes.Where(n => !known[n.Id].Alive).Select(n => n.Id).ToList();
        if (down.Count > 0)
            return $"nodes not alive: {string.Join(", ", down)}";
        return null;
    }

    /// <summary>Graceful stop of everything: nodes first (in parallel), then the master. Returns the non-zero exit codes by name.</summary>
    public async Task<IReadOnlyDictionary<string, int>> StopAllAsync()
    {
        var failures = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (ServerProcess front in new[] { Gateway, Tracker }.OfType<ServerProcess>())
        {
            if (await front.StopAsync(Options.StopTimeout).ConfigureAwait(false) is { } frontCode && frontCode != 0)
                failures[front.Name] = frontCode;
        }
        int?[] nodeCodes = await Task.WhenAll(_nodes.Select(n => n.StopAsync(Options.StopTimeout))).ConfigureAwait(false);
        for (int i = 0; i < _nodes.Length; i++)
        {
            if (nodeCodes[i] is { } code && code != 0)
                failures[_nodes[i].Name] = code;
        }
        if (await _master.StopAsync(Options.StopTimeout).ConfigureAwait(false) is { } masterCode && masterCode != 0)
            failures[_master.Name] = masterCode;
        return failures;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        try
        {
            await StopAllAsync().ConfigureAwait(false);
        }
        catch
        {
            await KillAllAsync().ConfigureAwait(false);
        }
        await ReleaseAsync(Network, _mounts).ConfigureAwait(false);
        if (Proxies is not null)
            await Proxies.DisposeAsync().ConfigureAwait(false);
        if (Options.DeleteDataOnDispose)
            TryDeleteDirectory(Path.GetFullPath(Options.DataDirectory));
    }

    private async Task KillAllAsync()
    {
        foreach (ServerProcess process in AllProcesses().Concat(new[] { Gateway, Tracker }.OfType<ServerProcess>()))
        {
            try
            {
                await process.KillAsync().ConfigureAwait(false);
            }
            catch
            {
                // Best effort while cleaning up.
            }
        }
    }

    private IEnumerable<ServerProcess> AllProcesses() => _nodes.Cast<ServerProcess>().Prepend(_master);

    private NodeProcess Node(int index)
    {
        if ((uint)index >= (uint)_nodes.Length)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"node index must be in 0..{_nodes.Length - 1}");
        return _nodes[index];
    }

    private void OnUnexpectedExit(ServerProcess process, int code) => UnexpectedExit?.Invoke(process, code);

    private static TimeSpan Remaining(DateTime deadline)
    {
        TimeSpan left = deadline - DateTime.UtcNow;
        return left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1);
    }

    /// <summary>The dotnet host running us (SDK tools set DOTNET_HOST_PATH), else dotnet from PATH.</summary>
    public static string FindDotnetHost()
    {
        string? hostPath = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(hostPath) && File.Exists(hostPath))
            return hostPath;
        string? self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
            return self;
        string? root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (!string.IsNullOrEmpty(root) && File.Exists(Path.Combine(root, "dotnet")))
            return Path.Combine(root, "dotnet");
        return "dotnet";
    }

    /// <summary>Deletes a directory tree if it exists; best effort (a file in use or a permission problem is ignored).</summary>
    public static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
                Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
