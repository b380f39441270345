using System.Globalization;
using System.Net;

namespace Chain.Harness.BellJar;

/// <summary>One process of a sealed cluster: its role (a manifest's), its name (master, node3) and the port it listens on.</summary>
public sealed record SealedProcess(string Role, string Name, int Port);

/// <summary>
/// An outbound attempt the seal dropped: from process <paramref name="From"/> to <paramref name="Destination"/>
/// (<paramref name="DestinationName"/>: a process name, "harness" for the bridge address, or "outside the cluster").
/// <paramref name="Attempts"/> counts distinct flows (source ports; one per connection attempt or DNS query),
/// <paramref name="Packets"/> the packets dropped (retransmits included; approximate above 1000 per flow).
/// <paramref name="Declared"/>: the manifest allows it and only a scenario's narrowed allowlist dropped it.
/// </summary>
public sealed record UndeclaredAttempt(string From, string Role, string Destination, string DestinationName, int? Port,
    string Protocol, int Attempts, long Packets, bool Declared)
{
    public string Target => Port is { } port ? $"{Destination}:{port.ToString(CultureInfo.InvariantCulture)}" : Destination;

    public override string ToString() =>
        $"{From} ({Role}) -> {Target} {Protocol}{(Port is { } p ? "/" + p.ToString(CultureInfo.InvariantCulture) : "")} ({DestinationName}): " +
        $"{Attempts} attempt(s), {Packets} packet(s){(Declared ? " [declared; blocked by the scenario's narrowed allowlist]" : "")}";
}

/// <summary>
/// BellJar's seal over a <see cref="NamespaceNetwork"/>: in every process's namespace outbound traffic is dropped by
/// default (iptables and ip6tables OUTPUT policy DROP), loopback and replies (ESTABLISHED/RELATED) pass, and the
/// allowlist from the role's <see cref="DependencyManifest"/> is opened — the address and port of each instance of
/// each declared role. Every other outbound attempt meets a recording rule before it is dropped: an
/// <c>xt_hashlimit</c> table per protocol keyed by source port, destination address and port, read back from
/// <c>/proc/net/ipt_hashlimit/</c> inside the namespace (the kernel LOG target logs nothing from non-init
/// namespaces while <c>net.netfilter.nf_log_all_netns</c> is 0). So that undeclared traffic is visible rather than
/// failing before iptables, each namespace gets a default route via the bridge and a resolv.conf
/// (<c>/etc/netns/NS/resolv.conf</c>) naming <see cref="ResolverAddress"/>: a DNS lookup shows up as udp/53 to it.
/// Faults of a scenario sit in chain <c>BJ-FAULT</c>, before everything (sealing a role away drops its traffic
/// inside its own namespace, so the other roles' attempts stay declared); a narrowing's excluded peers in
/// <c>BJ-NARROW</c> (before the ESTABLISHED rule); the allowlist is chain <c>BJ-ALLOW</c>, the recorders <c>BJ-RECORD</c>.
/// </summary>
public sealed class SealedNetwork
{
    /// <summary>The resolver every sealed namespace is told to use (TEST-NET-1: nothing answers there).</summary>
    public static readonly IPAddress ResolverAddress = IPAddress.Parse("192.0.2.53");

    private const string FaultChain = "BJ-FAULT";
    private const string NarrowChain = "BJ-NARROW";
    private const string AllowChain = "BJ-ALLOW";
    private const string RecordChain = "BJ-RECORD";
    private const string NetnsEtc = "/etc/netns";
    // 1/min with a burst of 1000: the table holds a packet count of up to 1000 per flow (credit regenerates 1 a minute).
    private static readonly string[] Limit = { "--hashlimit-upto", "1/min", "--hashlimit-burst", "1000", "--hashlimit-htable-expire", "86400000", "--hashlimit-htable-max", "65536" };
    private static readonly (string Table, string Protocol, string? Match, string Mode)[] Recorders =
    {
        ("bjtcp", "tcp", "tcp", "srcport,dstip,dstport"),
        ("bjudp", "udp", "udp", "srcport,dstip,dstport"),
        ("bjicmp", "icmp", "icmp", "dstip"),
        ("bjip", "ip", null, "dstip"),
    };
    private static readonly (string Table, string Protocol, string? Match, string Mode)[] Recorders6 =
    {
        ("bj6tcp", "tcp6", "tcp", "srcport,dstip,dstport"),
        ("bj6udp", "udp6", "udp", "srcport,dstip,dstport"),
    };

    private readonly NamespaceNetwork _network;
    private readonly ManifestSet _manifests;
    private readonly IReadOnlyList<SealedProcess> _processes;
    private readonly string _ip6tables;
    private readonly string _iptablesRestore;
    private readonly Dictionary<int, HashSet<int>> _narrowed = new();
    private readonly HashSet<int> _sealedAway = new();
    private readonly SemaphoreSlim _gate = new(1, 1);

    private SealedNetwork(NamespaceNetwork network, ManifestSet manifests, IReadOnlyList<SealedProcess> processes, string ip6tables, string iptablesRestore)
    {
        _iptablesRestore = iptablesRestore;
        _network = network;
        _manifests = manifests;
        _processes = processes;
        _ip6tables = ip6tables;
    }

    public ManifestSet Manifests => _manifests;

    public IReadOnlyList<SealedProcess> Processes => _processes;

    /// <summary>Why this machine cannot seal namespaces, or null when it can (root, ip, iptables, ip6tables).</summary>
    public static string? Unavailable()
    {
        if (NamespaceNetwork.Unavailable() is { } reason)
            return reason;
        foreach (string tool in new[] { "ip6tables", "iptables-restore" })
        {
            if (Shell.Find(tool) is null)
                return $"the '{tool}' tool is not installed (apt-get install iptables)";
        }
        return null;
    }

    /// <summary>Seals every namespace of <paramref name="network"/> (process k = <paramref name="processes"/>[k]) before the processes start.</summary>
    public static async Task<SealedNetwork> ApplyAsync(NamespaceNetwork network, ManifestSet manifests, IReadOnlyList<SealedProcess> processes, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(manifests);
        ArgumentNullException.ThrowIfNull(processes);
        if (processes.Count != network.Processes)
            throw new ArgumentException($"{processes.Count} processes for {network.Processes} namespaces", nameof(processes));
        if (Unavailable() is { } reason)
            throw new InvalidOperationException("BellJar seal: " + reason);
        foreach (SealedProcess process in processes)
            _ = manifests.For(process.Role); // every role present needs a manifest
        var seal = new SealedNetwork(network, manifests, processes, Shell.Find("ip6tables")!, Shell.Find("iptables-restore")!);
        for (int k = 0; k < processes.Count; k++)
            await seal.SealOneAsync(k, ct).ConfigureAwait(false);
        return seal;
    }

    /// <summary>The declared destinations of process k as text: "master:rpc (10.x.y.2:7400), node:rpc (...)".</summary>
    public string DeclaredDependencies(int process) => _manifests.For(_processes[process].Role).Describe();

    /// <summary>Process index by name ("master", "node3"); -1 when unknown.</summary>
    public int IndexOf(string name)
    {
        for (int k = 0; k < _processes.Count; k++)
        {
            if (_processes[k].Name == name)
                return k;
        }
        return -1;
    }

    /// <summary>
    /// Narrows process k's allowlist to the given peers (each on the ports its role's entry declares; a peer whose role
    /// k's manifest does not declare stays closed). Packets to the other declared peers — on connections already
    /// established too — are then dropped and recorded with <see cref="UndeclaredAttempt.Declared"/> set.
    /// </summary>
    public Task NarrowAsync(int process, IEnumerable<int> peers, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(peers);
        HashSet<int> subset = peers.ToHashSet();
        return LockedAsync(() =>
        {
            _narrowed[process] = subset;
            return FillAllowlistAsync(process, ct);
        }, ct);
    }

    /// <summary>Opens process k's full declared allowlist again.</summary>
    public Task WidenAsync(int process, CancellationToken ct = default) => LockedAsync(() =>
    {
        _narrowed.Remove(process);
        return FillAllowlistAsync(process, ct);
    }, ct);

    /// <summary>
    /// Seals process k away: inside its namespace every packet in or out (but loopback) is dropped, before the recording
    /// rules, so nobody can reach it, it reaches nobody, and the other roles' attempts toward it stay declared ones.
    /// </summary>
    public Task SealAwayAsync(int process, CancellationToken ct = default) => LockedAsync(async () =>
    {
        if (!_sealedAway.Add(process))
            return;
        await Iptables(process, ct, "-A", FaultChain, "!", "-o", "lo", "-j", "DROP").ConfigureAwait(false);
        await Iptables(process, ct, "-A", FaultChain, "!", "-i", "lo", "-j", "DROP").ConfigureAwait(false);
    }, ct);

    /// <summary>Undoes <see cref="SealAwayAsync"/>.</summary>
    public Task UnsealAsync(int process, CancellationToken ct = default) => LockedAsync(async () =>
    {
        if (_sealedAway.Remove(process))
            await Iptables(process, ct, "-F", FaultChain).ConfigureAwait(false);
    }, ct);

    private async Task LockedAsync(Func<Task> change, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await change().ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Every outbound attempt the seal has dropped so far, in every namespace (sorted by process, then destination).</summary>
    public async Task<IReadOnlyList<UndeclaredAttempt>> AttemptsAsync(CancellationToken ct = default)
    {
        var all = new List<UndeclaredAttempt>();
        for (int k = 0; k < _processes.Count; k++)
            all.AddRange(await AttemptsOfAsync(k, ct).ConfigureAwait(false));
        return all;
    }

    /// <summary>The attempts process k's seal dropped.</summary>
    public async Task<IReadOnlyList<UndeclaredAttempt>> AttemptsOfAsync(int process, CancellationToken ct = default)
    {
        var files = Recorders.Select(r => "/proc/net/ipt_hashlimit/" + r.Table)
            .Concat(Recorders6.Select(r => "/proc/net/ip6t_hashlimit/" + r.Table)).ToList();
        var (code, stdout, stderr, command) = await Shell.RunUncheckedAsync(_network.IpTool,
            _network.LauncherFor(process).Skip(1).Concat(new[] { "grep", "-H", "" }).Concat(files), ct).ConfigureAwait(false);
        if (code > 1)
            throw new ShellCommandException($"'{command}' exited with code {code}: {stderr.Trim()}", code);
        var flows = new List<(string Protocol, string Destination, int? Port, long Packets)>();
        foreach (string line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (ParseEntry(line) is { } flow)
                flows.Add(flow);
        }
        SealedProcess from = _processes[process];
        return flows.GroupBy(f => (f.Protocol, f.Destination, f.Port))
            .Select(g =>
            {
                string name = NameOf(g.Key.Destination);
                return new UndeclaredAttempt(from.Name, from.Role, g.Key.Destination, name, g.Key.Port, g.Key.Protocol,
                    g.Count(), g.Sum(f => f.Packets), IsDeclared(process, g.Key.Destination, g.Key.Port, g.Key.Protocol));
            })
            .OrderBy(a => a.Destination, StringComparer.Ordinal).ThenBy(a => a.Port).ToList();
    }

    /// <summary>
    /// One line of <c>grep -H "" /proc/net/ip*t_hashlimit/TABLE</c>:
    /// <c>FILE:EXPIRES SRC:SPORT->DST:DPORT CREDIT CAP COST</c> (IPv6 addresses hold colons: split at the last one).
    /// </summary>
    internal static (string Protocol, string Destination, int? Port, long Packets)? ParseEntry(string line)
    {
        int colon = line.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
            return null;
        string table = Path.GetFileName(line[..colon]);
        var recorder = Recorders.Concat(Recorders6).FirstOrDefault(r => r.Table == table);
        if (recorder.Table is null)
            return null;
        string[] fields = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 5)
            return null;
        string[] ends = fields[1].Split("->");
        if (ends.Length != 2)
            return null;
        int portAt = ends[1].LastIndexOf(':');
        if (portAt < 0)
            return null;
        string destination = ends[1][..portAt];
        bool hasPort = recorder.Mode.Contains("dstport", StringComparison.Ordinal);
        int? port = hasPort && int.TryParse(ends[1][(portAt + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int p) ? p : null;
        long packets = 1;
        if (decimal.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out decimal credit)
            && decimal.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out decimal cap)
            && decimal.TryParse(fields[4], NumberStyles.None, CultureInfo.InvariantCulture, out decimal cost) && cost > 0)
            packets = Math.Max(1, (long)Math.Round((cap - credit) / cost));
        return (recorder.Protocol, destination, port, packets);
    }

    /// <summary>The process name for a cluster address; "harness" for the bridge's own address; else "outside the cluster".</summary>
    public string NameOf(string address)
    {
        if (!IPAddress.TryParse(address, out IPAddress? ip))
            return "outside the cluster";
        if (ip.Equals(_network.HostAddress))
            return "harness";
        for (int k = 0; k < _processes.Count; k++)
        {
            if (ip.Equals(_network.AddressOf(k)))
                return _processes[k].Name;
        }
        return "outside the cluster";
    }

    private bool IsDeclared(int process, string destination, int? port, string protocol)
    {
        if (protocol != "tcp" || port is null)
            return false;
        return DeclaredTargets(process, narrowed: false).Any(t => t.Address.ToString() == destination && t.Port == port);
    }

    /// <summary>The (address, port) pairs process k may reach: the manifest's, or the narrowed subset.</summary>
    private IEnumerable<(int Peer, IPAddress Address, int Port)> DeclaredTargets(int process, bool narrowed)
    {
        DependencyManifest manifest = _manifests.For(_processes[process].Role);
        HashSet<int>? subset = narrowed && _narrowed.TryGetValue(process, out HashSet<int>? s) ? s : null;
        for (int q = 0; q < _processes.Count; q++)
        {
            if (q == process || (subset is not null && !subset.Contains(q)))
                continue;
            if (manifest.Reaches.Any(d => d.Role == _processes[q].Role && d.Port == RoleCatalog.RpcPort))
                yield return (q, _network.AddressOf(q), _processes[q].Port);
        }
    }

    private async Task SealOneAsync(int k, CancellationToken ct)
    {
        string ns = _network.NamespaceOf(k);
        // Visible rather than unreachable: a default route via the bridge, and a resolver outside the allowlist.
        await Shell.RunAsync(_network.IpTool, new[] { "-n", ns, "route", "replace", "default", "via", _network.HostAddress.ToString() }, ct).ConfigureAwait(false);
        string etc = Path.Combine(NetnsEtc, ns);
        Directory.CreateDirectory(etc);
        await File.WriteAllTextAsync(Path.Combine(etc, "resolv.conf"),
            $"# BellJar: a resolver outside every allowlist, so a DNS lookup is a recorded udp/53 attempt\nnameserver {ResolverAddress}\noptions timeout:1 attempts:1\n", ct).ConfigureAwait(false);

        foreach (string chain in new[] { FaultChain, NarrowChain, AllowChain, RecordChain })
            await Iptables(k, ct, "-N", chain).ConfigureAwait(false);
        foreach (var recorder in Recorders)
            await Iptables(k, ct, RecordRule(RecordChain, recorder)).ConfigureAwait(false);
        await Iptables(k, ct, "-A", RecordChain, "-j", "DROP").ConfigureAwait(false);
        await Iptables(k, ct, "-A", "INPUT", "-j", FaultChain).ConfigureAwait(false);
        await Iptables(k, ct, "-A", "OUTPUT", "-j", FaultChain).ConfigureAwait(false);
        await Iptables(k, ct, "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT").ConfigureAwait(false);
        // Narrowing comes before the ESTABLISHED rule: it also cuts connections opened while the allowlist was wider.
        await Iptables(k, ct, "-A", "OUTPUT", "-j", NarrowChain).ConfigureAwait(false);
        await Iptables(k, ct, "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT").ConfigureAwait(false);
        await Iptables(k, ct, "-A", "OUTPUT", "-j", AllowChain).ConfigureAwait(false);
        await Iptables(k, ct, "-A", "OUTPUT", "-j", RecordChain).ConfigureAwait(false);
        await Iptables(k, ct, "-P", "OUTPUT", "DROP").ConfigureAwait(false);

        // IPv6: nothing is declared over it. Neighbour discovery and MLD are link housekeeping, not dependencies.
        await Ip6tables(k, ct, "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT").ConfigureAwait(false);
        await Ip6tables(k, ct, "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT").ConfigureAwait(false);
        foreach (string type in new[] { "router-solicitation", "neighbour-solicitation", "neighbour-advertisement", "143" })
            await Ip6tables(k, ct, "-A", "OUTPUT", "-p", "ipv6-icmp", "--icmpv6-type", type, "-j", "ACCEPT").ConfigureAwait(false);
        foreach (var recorder in Recorders6)
            await Ip6tables(k, ct, RecordRule("OUTPUT", recorder)).ConfigureAwait(false);
        await Ip6tables(k, ct, "-P", "OUTPUT", "DROP").ConfigureAwait(false);

        await FillAllowlistAsync(k, ct).ConfigureAwait(false);
    }

    private static string[] RecordRule(string chain, (string Table, string Protocol, string? Match, string Mode) recorder)
    {
        var rule = new List<string> { "-A", chain };
        if (recorder.Match is { } match)
            rule.AddRange(new[] { "-p", match });
        rule.AddRange(new[] { "-m", "hashlimit", "--hashlimit-name", recorder.Table, "--hashlimit-mode", recorder.Mode });
        rule.AddRange(Limit);
        rule.AddRange(new[] { "-j", "DROP" });
        return rule.ToArray();
    }

    /// <summary>
    /// Fills BJ-ALLOW with every declared destination and BJ-NARROW with those a narrowing leaves out (they go to the
    /// recorders, established connections included). Each chain is replaced in one iptables-restore transaction, so a
    /// packet never meets a half-filled chain (a flush and re-add would drop — and record — a declared connection).
    /// </summary>
    private async Task FillAllowlistAsync(int process, CancellationToken ct)
    {
        var declared = DeclaredTargets(process, narrowed: false).ToList();
        var kept = DeclaredTargets(process, narrowed: true).Select(t => t.Peer).ToHashSet();
        var restore = new System.Text.StringBuilder("*filter\n");
        restore.Append(CultureInfo.InvariantCulture, $"-F {AllowChain}\n-F {NarrowChain}\n");
        foreach ((int peer, IPAddress address, int port) in declared)
        {
            string match = $"-d {address}/32 -p tcp --dport {port.ToString(CultureInfo.InvariantCulture)}";
            restore.Append(CultureInfo.InvariantCulture, $"-A {AllowChain} {match} -j ACCEPT\n");
            if (!kept.Contains(peer))
                restore.Append(CultureInfo.InvariantCulture, $"-A {NarrowChain} {match} -j {RecordChain}\n");
        }
        restore.Append("COMMIT\n");
        string file = Path.Combine(Path.GetTempPath(), $"{_network.NamespaceOf(process)}-{Guid.NewGuid():N}.rules");
        await File.WriteAllTextAsync(file, restore.ToString(), ct).ConfigureAwait(false);
        try
        {
            await _network.ExecAsync(process, new[] { _iptablesRestore, "-w", "-n", file }, ct).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private Task<string> Iptables(int process, CancellationToken ct, params string[] arguments) =>
        _network.IptablesAsync(process, arguments, ct);

    private Task<string> Ip6tables(int process, CancellationToken ct, params string[] arguments) =>
        _network.ExecAsync(process, new[] { _ip6tables, "-w" }.Concat(arguments), ct);

    /// <summary>Removes the /etc/netns directories of namespaces named after <paramref name="tag"/> (best effort).</summary>
    internal static void RemoveNetnsFiles(string tag)
    {
        if (!Directory.Exists(NetnsEtc))
            return;
        foreach (string directory in Directory.EnumerateDirectories(NetnsEtc, tag + "-*"))
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }
}
