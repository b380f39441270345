using System.Globalization;
using System.Net;

namespace Chain.Harness;

/// <summary>
/// One network namespace per server process of a <see cref="LocalCluster"/>, each with a veth pair to a bridge in the
/// root namespace. The bridge holds 10.X.Y.1/24 (so the harness and its clients, in the root namespace, reach every
/// process directly); process k (0 = master, i+1 = node i) gets 10.X.Y.(k+2) on <c>eth0</c> inside namespace
/// <c>chnIIII-m</c> / <c>chnIIII-nK</c>. IIII is a per-run id (4 hex digits) from which X (200..249) and Y derive, so
/// parallel runs use disjoint subnets and names. Namespaces have no default route: they reach only the cluster's subnet
/// (a BellJar seal, <see cref="BellJar.SealedNetwork"/>, adds one via the bridge so that undeclared traffic is seen and dropped).
/// Every object is removed on dispose; objects of crashed earlier runs (owner process gone) are removed on create.
/// Needs root, <c>ip</c> (iproute2) and <c>iptables</c>.
/// </summary>
public sealed class NamespaceNetwork : IAsyncDisposable
{
    /// <summary>Every name this class creates starts with it (namespaces, links, iptables comments, tmpfs sources).</summary>
    public const string Prefix = "chn";

    private const int IdCount = 50 * 256;
    private const int CreateAttemptsMax = 32;
    private static readonly string OwnerDirectory = "/run/chain-harness";

    private readonly List<string> _namespaces = new();
    private readonly List<string> _hostLinks = new();
    private int _disposed;

    private NamespaceNetwork(int id, string ip, string iptables)
    {
        Id = id;
        Tag = Prefix + id.ToString("x4", CultureInfo.InvariantCulture);
        IpTool = ip;
        IptablesTool = iptables;
        Subnet = $"10.{200 + id / 256}.{id % 256}";
        BridgeName = Tag + "-br";
        HostAddress = IPAddress.Parse(Subnet + ".1");
    }

    /// <summary>The per-run id (0..12799).</summary>
    public int Id { get; }

    /// <summary>"chnIIII": the start of every name of this network.</summary>
    public string Tag { get; }

    /// <summary>The first three octets, e.g. "10.203.17".</summary>
    public string Subnet { get; }

    public string BridgeName { get; }

    /// <summary>The root namespace's address on the bridge: the source address of every client the harness runs.</summary>
    public IPAddress HostAddress { get; }

    /// <summary>Number of processes (master + nodes).</summary>
    public int Processes => _namespaces.Count;

    internal string IpTool { get; }

    internal string IptablesTool { get; }

    /// <summary>The namespace of process k (0 = master, i+1 = node i).</summary>
    public string NamespaceOf(int process) => _namespaces[process];

    /// <summary>The address of process k (0 = master, i+1 = node i) on the cluster's bridge.</summary>
    public IPAddress AddressOf(int process)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(process);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(process, _namespaces.Count);
        return IPAddress.Parse(Subnet + "." + (process + 2).ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>The launcher that runs a command inside process k's namespace: <c>ip netns exec NAME</c> (it execs: same pid).</summary>
    public IReadOnlyList<string> LauncherFor(int process) => new[] { IpTool, "netns", "exec", NamespaceOf(process) };

    /// <summary>Tells why this machine cannot create namespaces, or null when it can.</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux())
            return "network namespaces need Linux";
        if (!Shell.IsRoot)
            return $"network namespaces, veth pairs and iptables rules need root (running as '{Environment.UserName}'); " +
                   "use LocalClusterOptions.Network = Loopback, or run the harness as root";
        if (Shell.Find("ip") is null)
            return "the 'ip' tool (iproute2) is not installed";
        if (Shell.Find("iptables") is null)
            return "the 'iptables' tool is not installed (apt-get install iptables)";
        return null;
    }

    /// <summary>Creates the bridge and <paramref name="processes"/> namespaces; throws <see cref="InvalidOperationException"/> without root.</summary>
    public static async Task<NamespaceNetwork> CreateAsync(int processes, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(processes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(processes, 250);
        if (Unavailable() is { } reason)
            throw new InvalidOperationException("LocalClusterOptions.Network = Namespaces: " + reason);
        string ip = Shell.Find("ip")!;
        string iptables = Shell.Find("iptables")!;
        await RemoveLeftoversAsync(ip, iptables, ct).ConfigureAwait(false);

        Directory.CreateDirectory(OwnerDirectory);
        for (int attempt = 0; attempt < CreateAttemptsMax; attempt++)
        {
            var network = new NamespaceNetwork(Random.Shared.Next(IdCount), ip, iptables);
            if (!await network.TryClaimAsync(ct).ConfigureAwait(false))
                continue;
            try
            {
                await network.BuildAsync(processes, ct).ConfigureAwait(false);
                return network;
            }
            catch
            {
                await network.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        throw new InvalidOperationException($"no free subnet/name for a namespace network after {CreateAttemptsMax} attempts");
    }

    /// <summary>Runs a command inside process k's namespace and returns its stdout (throws on a non-zero exit).</summary>
    public Task<string> ExecAsync(int process, IEnumerable<string> command, CancellationToken ct = default, TimeSpan? timeout = null) =>
        Shell.RunAsync(IpTool, LauncherFor(process).Skip(1).Concat(command), ct, timeout);

    /// <summary>
    /// Shapes process k's link with a token bucket (<c>tc tbf</c>) on both ends of its veth pair — tbf shapes only what
    /// leaves an interface, so the namespace's <c>eth0</c> carries the upload rate and the bridge-side end the download
    /// rate — after turning TSO, GSO and GRO off on both ends, so the shaper sees wire-sized packets. Replaces any
    /// earlier shaping. Needs <c>tc</c> (iproute2) and <c>ethtool</c>.
    /// </summary>
    public async Task ShapeAsync(int process, long uploadBitsPerSecond, long downloadBitsPerSecond, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(uploadBitsPerSecond, 8_000);
        ArgumentOutOfRangeException.ThrowIfLessThan(downloadBitsPerSecond, 8_000);
        string tc = Shell.Find("tc") ?? throw new InvalidOperationException("the 'tc' tool (iproute2) is not installed");
        string ethtool = Shell.Find("ethtool") ?? throw new InvalidOperationException("the 'ethtool' tool is not installed (apt-get install ethtool)");
        static string[] OffloadsOff(string device) => new[] { "-K", device, "tso", "off", "gso", "off", "gro", "off" };
        await ExecAsync(process, OffloadsOff("eth0").Prepend(ethtool), ct).ConfigureAwait(false);
        await Shell.RunAsync(ethtool, OffloadsOff(_hostLinks[process]), ct).ConfigureAwait(false);
        await ExecAsync(process, new[] { tc }.Concat(TbfArguments("eth0", uploadBitsPerSecond)), ct).ConfigureAwait(false);
        await Shell.RunAsync(tc, TbfArguments(_hostLinks[process], downloadBitsPerSecond), ct).ConfigureAwait(false);
    }

    /// <summary>Sets the MTU of process k's link, both ends of its veth pair (the bridge follows its ports).</summary>
    public async Task SetMtuAsync(int process, int mtu, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(mtu, 576);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(mtu, 9000);
        string value = mtu.ToString(CultureInfo.InvariantCulture);
        await ExecAsync(process, new[] { IpTool, "link", "set", "eth0", "mtu", value }, ct).ConfigureAwait(false);
        await Ip(ct, "link", "set", _hostLinks[process], "mtu", value).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>tc qdisc replace dev DEV root tbf</c> at <paramref name="bitsPerSecond"/>: a bucket of 4 ms at that rate (at least
    /// 16 KiB, above one 1514-byte frame), and a queue of 50 ms, deep enough for TCP to keep the link busy.
    /// </summary>
    internal static string[] TbfArguments(string device, long bitsPerSecond)
    {
        long burst = Math.Max(16 * 1024, bitsPerSecond / 8 / 250);
        return new[]
        {
            "qdisc", "replace", "dev", device, "root", "tbf",
            "rate", bitsPerSecond.ToString(CultureInfo.InvariantCulture) + "bit",
            "burst", burst.ToString(CultureInfo.InvariantCulture),
            "latency", "50ms",
        };
    }

    /// <summary>Runs iptables inside process k's namespace.</summary>
    public Task<string> IptablesAsync(int process, IEnumerable<string> arguments, CancellationToken ct = default) =>
        ExecAsync(process, new[] { IptablesTool, "-w" }.Concat(arguments), ct);

    /// <summary>
    /// Tries a TCP connection from inside process <paramref name="from"/>'s namespace to <paramref name="to"/>; true when it
    /// was established within <paramref name="timeout"/>. Uses bash's /dev/tcp under coreutils' timeout.
    /// </summary>
    public async Task<bool> CanConnectAsync(int from, IPEndPoint to, TimeSpan timeout, CancellationToken ct = default)
    {
        string seconds = Math.Max(0.1, timeout.TotalSeconds).ToString("0.###", CultureInfo.InvariantCulture);
        var (code, _, _, _) = await Shell.RunUncheckedAsync(IpTool,
            LauncherFor(from).Skip(1).Concat(new[] { "timeout", seconds, "bash", "-c", $"exec 3<>/dev/tcp/{to.Address}/{to.Port}" }),
            ct, timeout + TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        return code == 0;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await RemoveTagAsync(IpTool, IptablesTool, Tag, CancellationToken.None).ConfigureAwait(false);
        TryDelete(OwnerFile(Tag));
    }

    private async Task<bool> TryClaimAsync(CancellationToken ct)
    {
        // The owner file comes first: a concurrent run's leftover sweep then sees a live owner and leaves us alone.
        try
        {
            await using var owner = new FileStream(OwnerFile(Tag), FileMode.CreateNew, FileAccess.Write);
            await owner.WriteAsync(System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture)), ct).ConfigureAwait(false);
        }
        catch (IOException)
        {
            return false; // another live run holds this id
        }
        string routes = await Shell.RunAsync(IpTool, new[] { "-o", "route", "show", "table", "all" }, ct).ConfigureAwait(false);
        string links = await Shell.RunAsync(IpTool, new[] { "-o", "link", "show" }, ct).ConfigureAwait(false);
        string namespaces = await Shell.RunAsync(IpTool, new[] { "netns", "list" }, ct).ConfigureAwait(false);
        string octets = "10." + Subnet.Split('.')[1] + ".";
        bool subnetInUse = routes.Split('\n').Any(line => line.Contains(Subnet + ".", StringComparison.Ordinal) || line.StartsWith(octets + "0.0/16", StringComparison.Ordinal) || line.StartsWith("10.0.0.0/8", StringComparison.Ordinal));
        if (subnetInUse || links.Contains(Tag, StringComparison.Ordinal) || namespaces.Contains(Tag, StringComparison.Ordinal))
        {
            TryDelete(OwnerFile(Tag));
            return false;
        }
        return true;
    }

    private async Task BuildAsync(int processes, CancellationToken ct)
    {
        await Ip(ct, "link", "add", BridgeName, "type", "bridge").ConfigureAwait(false);
        await Ip(ct, "addr", "add", HostAddress + "/24", "dev", BridgeName).ConfigureAwait(false);
        await Ip(ct, "link", "set", BridgeName, "up").ConfigureAwait(false);
        // Bridged frames may traverse the root namespace's FORWARD chain (br_netfilter); a DROP policy there must not cut us.
        await Shell.RunAsync(IptablesTool, $"-w -I FORWARD -i {BridgeName} -o {BridgeName} -m comment --comment {Tag} -j ACCEPT".Split(' '), ct).ConfigureAwait(false);

        for (int k = 0; k < processes; k++)
        {
            string suffix = k == 0 ? "m" : "n" + k.ToString(CultureInfo.InvariantCulture);
            string ns = $"{Tag}-{suffix}";
            string host = $"{Tag}-{suffix}";
            string peer = $"{Tag}-{suffix}p";
            await Ip(ct, "netns", "add", ns).ConfigureAwait(false);
            _namespaces.Add(ns);
            await Ip(ct, "link", "add", host, "type", "veth", "peer", "name", peer).ConfigureAwait(false);
            _hostLinks.Add(host);
            await Ip(ct, "link", "set", host, "master", BridgeName).ConfigureAwait(false);
            await Ip(ct, "link", "set", host, "up").ConfigureAwait(false);
            await Ip(ct, "link", "set", peer, "netns", ns).ConfigureAwait(false);
            await Ip(ct, "-n", ns, "link", "set", peer, "name", "eth0").ConfigureAwait(false);
            await Ip(ct, "-n", ns, "addr", "add", AddressOf(k) + "/24", "dev", "eth0").ConfigureAwait(false);
            await Ip(ct, "-n", ns, "link", "set", "lo", "up").ConfigureAwait(false);
            await Ip(ct, "-n", ns, "link", "set", "eth0", "up").ConfigureAwait(false);
        }
    }

    private Task<string> Ip(CancellationToken ct, params string[] arguments) => Shell.RunAsync(IpTool, arguments, ct);

    private static string OwnerFile(string tag) => Path.Combine(OwnerDirectory, tag + ".owner");

    /// <summary>Whether the run that created <paramref name="tag"/> is still alive (its owner file names a live process).</summary>
    internal static bool OwnerAlive(string tag)
    {
        try
        {
            string text = File.ReadAllText(OwnerFile(tag)).Trim();
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && Directory.Exists($"/proc/{pid}");
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Removes namespaces, links, FORWARD rules and owner files of runs whose owner process is gone.</summary>
    internal static async Task RemoveLeftoversAsync(string ip, string iptables, CancellationToken ct)
    {
        var tags = new HashSet<string>(StringComparer.Ordinal);
        string namespaces = await Shell.RunAsync(ip, new[] { "netns", "list" }, ct).ConfigureAwait(false);
        foreach (string line in namespaces.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            AddTag(tags, line.Split(' ')[0]);
        string links = await Shell.RunAsync(ip, new[] { "-o", "link", "show" }, ct).ConfigureAwait(false);
        foreach (string line in links.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] fields = line.Split(':', 3);
            if (fields.Length >= 2)
                AddTag(tags, fields[1].Trim().Split('@')[0]);
        }
        string rules = (await Shell.RunUncheckedAsync(iptables, new[] { "-w", "-S", "FORWARD" }, ct).ConfigureAwait(false)).Stdout;
        foreach (string line in rules.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int at = line.IndexOf("--comment ", StringComparison.Ordinal);
            if (at >= 0)
                AddTag(tags, line[(at + "--comment ".Length)..].Split(' ')[0].Trim('"'));
        }
        if (Directory.Exists(OwnerDirectory))
        {
            foreach (string file in Directory.EnumerateFiles(OwnerDirectory, Prefix + "*.owner"))
                AddTag(tags, Path.GetFileNameWithoutExtension(file));
        }
        foreach (string tag in tags.Where(t => !OwnerAlive(t)))
        {
            await RemoveTagAsync(ip, iptables, tag, ct).ConfigureAwait(false);
            TryDelete(OwnerFile(tag));
        }
    }

    private static void AddTag(HashSet<string> tags, string name)
    {
        // chnIIII followed by nothing or '-': our names only.
        if (name.Length >= Prefix.Length + 4 && name.StartsWith(Prefix, StringComparison.Ordinal)
            && name.AsSpan(Prefix.Length, 4).ToString().All(Uri.IsHexDigit)
            && (name.Length == Prefix.Length + 4 || name[Prefix.Length + 4] == '-'))
            tags.Add(name[..(Prefix.Length + 4)]);
    }

    /// <summary>Best-effort removal of everything named after <paramref name="tag"/>.</summary>
    private static async Task RemoveTagAsync(string ip, string iptables, string tag, CancellationToken ct)
    {
        string namespaces = (await Shell.RunUncheckedAsync(ip, new[] { "netns", "list" }, ct).ConfigureAwait(false)).Stdout;
        foreach (string ns in namespaces.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).Where(n => n.StartsWith(tag + "-", StringComparison.Ordinal)))
        {
            // A process still inside (a crashed run's child) would keep the namespace alive after its name is gone.
            await KillProcessesInAsync(ip, ns, ct).ConfigureAwait(false);
            await Shell.RunUncheckedAsync(ip, new[] { "netns", "delete", ns }, ct).ConfigureAwait(false);
        }
        string links = (await Shell.RunUncheckedAsync(ip, new[] { "-o", "link", "show" }, ct).ConfigureAwait(false)).Stdout;
        var names = links.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':', 3)).Where(f => f.Length >= 2).Select(f => f[1].Trim().Split('@')[0])
            .Where(n => n.StartsWith(tag + "-", StringComparison.Ordinal))
            .OrderBy(n => n.EndsWith("-br", StringComparison.Ordinal) ? 1 : 0); // veths first, the bridge last
        foreach (string name in names)
            await Shell.RunUncheckedAsync(ip, new[] { "link", "delete", name }, ct).ConfigureAwait(false);
        string rules = (await Shell.RunUncheckedAsync(iptables, new[] { "-w", "-S", "FORWARD" }, ct).ConfigureAwait(false)).Stdout;
        foreach (string rule in rules.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(r => r.StartsWith("-A ", StringComparison.Ordinal) && r.Contains("--comment " + tag, StringComparison.Ordinal)))
            await Shell.RunUncheckedAsync(iptables, ("-w -D " + rule[3..]).Split(' ', StringSplitOptions.RemoveEmptyEntries), ct).ConfigureAwait(false);
        BellJar.SealedNetwork.RemoveNetnsFiles(tag);
    }

    /// <summary>SIGKILL to every process <c>ip netns pids</c> lists in <paramref name="ns"/> (best effort).</summary>
    private static async Task KillProcessesInAsync(string ip, string ns, CancellationToken ct)
    {
        string pids = (await Shell.RunUncheckedAsync(ip, new[] { "netns", "pids", ns }, ct).ConfigureAwait(false)).Stdout;
        foreach (string line in pids.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid == Environment.ProcessId)
                continue;
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                process.Kill();
            }
            catch (ArgumentException)
            {
                // Already gone.
            }
            catch (InvalidOperationException)
            {
            }
            catch (System.ComponentModel.Win32Exception)
            {
            }
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
