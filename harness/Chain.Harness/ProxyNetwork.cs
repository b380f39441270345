using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Chain.Harness;

/// <summary>
/// The non-root network of a <see cref="LocalCluster"/> (<see cref="ClusterNetwork.Proxies"/>): every process listens
/// on a private loopback port and advertises the port of an in-harness TCP proxy in front of it, so every link
/// between processes (node→node replication, node→master heartbeats) passes through this class, where each
/// direction of each link (process a → process b) can be blocked or delayed.
/// <para>The proxy tells who connected by looking the connecting socket up in /proc/net/tcp and finding which of the
/// cluster's processes holds it (/proc/PID/fd, readable for our own children without root). Connections from any
/// other process — the harness's clients — are never blocked or delayed.</para>
/// <para>Blocking a direction stops forwarding its bytes (they wait in the proxy) until unblocked, which is how a TCP
/// connection behind an iptables DROP behaves until the rule goes (then retransmission delivers them). Unlike DROP,
/// a new connection is still accepted during a block; it simply carries nothing in the blocked direction.</para>
/// </summary>
public sealed class ProxyNetwork : IAsyncDisposable
{
    private const int BufferBytes = 64 * 1024;
    public const int Client = -1;

    private readonly int[] _realPorts;
    private readonly Func<int, int> _pidOf;
    private readonly TcpListener[] _listeners;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<(int From, int To), Link> _links = new();
    private readonly ConcurrentDictionary<Task, byte> _tasks = new();
    private long _heldChunks;

    private ProxyNetwork(int[] realPorts, Func<int, int> pidOf)
    {
        _realPorts = realPorts;
        _pidOf = pidOf;
        _listeners = new TcpListener[realPorts.Length];
        for (int k = 0; k < realPorts.Length; k++)
        {
            _listeners[k] = new TcpListener(IPAddress.Loopback, 0);
            _listeners[k].Start(backlog: 128);
        }
    }

    /// <summary>Number of processes (0 = master, i+1 = node i).</summary>
    public int Processes => _realPorts.Length;

    /// <summary>Chunks read in a blocked direction so far (held, not forwarded until the block lifts).</summary>
    public long HeldChunks => Interlocked.Read(ref _heldChunks);

    /// <summary>Starts one proxy per process; <paramref name="pidOf"/> gives the current pid of process k (0 when not running).</summary>
    public static ProxyNetwork Start(int[] realPorts, Func<int, int> pidOf)
    {
        ArgumentNullException.ThrowIfNull(realPorts);
        ArgumentNullException.ThrowIfNull(pidOf);
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("the proxy network identifies peers through /proc: Linux only");
        var network = new ProxyNetwork(realPorts.ToArray(), pidOf);
        for (int k = 0; k < realPorts.Length; k++)
            network.Track(network.AcceptLoopAsync(k));
        return network;
    }

    /// <summary>The port process k advertises (the proxy's).</summary>
    public int ProxyPort(int process) => ((IPEndPoint)_listeners[process].LocalEndpoint).Port;

    /// <summary>Stops forwarding bytes from <paramref name="from"/> to <paramref name="to"/> (counted: N blocks need N unblocks).</summary>
    public void Block(int from, int to) => LinkOf(from, to).Block();

    public void Unblock(int from, int to) => LinkOf(from, to).Unblock();

    /// <summary>Whether bytes from <paramref name="from"/> to <paramref name="to"/> are held.</summary>
    public bool IsBlocked(int from, int to) => LinkOf(from, to).Blocked;

    /// <summary>Delays every chunk from <paramref name="from"/> to <paramref name="to"/> by <paramref name="delay"/> (zero: none).</summary>
    public void SetDelay(int from, int to, TimeSpan delay)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delay, TimeSpan.Zero);
        LinkOf(from, to).Delay = delay;
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
            return;
        _stop.Cancel();
        foreach (TcpListener listener in _listeners)
            listener.Stop();
        foreach (Link link in _links.Values)
            link.Release();
        await Task.WhenAll(_tasks.Keys).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private Link LinkOf(int from, int to)
    {
        if (from != Client)
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)from, (uint)Processes, nameof(from));
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)to, (uint)Processes, nameof(to));
        return _links.GetOrAdd((from, to), _ => new Link());
    }

    private void Track(Task task)
    {
        _tasks[task] = 0;
        _ = task.ContinueWith(t => _tasks.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async Task AcceptLoopAsync(int process)
    {
        CancellationToken ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            Socket inbound;
            try
            {
                inbound = await _listeners[process].AcceptSocketAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            Track(ServeAsync(process, inbound, ct));
        }
    }

    private async Task ServeAsync(int process, Socket inbound, CancellationToken ct)
    {
        using (inbound)
        using (var outbound = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            inbound.NoDelay = true;
            outbound.NoDelay = true;
            int source = Identify((IPEndPoint)inbound.RemoteEndPoint!, ProxyPort(process));
            try
            {
                await outbound.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _realPorts[process]), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                return; // the process is down: the caller sees the connection close, as with a refused connect
            }
            using var done = CancellationTokenSource.CreateLinkedTokenSource(ct);
            Link forward = source == Client ? new Link() : LinkOf(source, process);
            Link backward = source == Client ? new Link() : LinkOf(process, source);
            Task up = PumpAsync(inbound, outbound, forward, done.Token);
            Task down = PumpAsync(outbound, inbound, backward, done.Token);
            await Task.WhenAny(up, down).ConfigureAwait(false);
            done.Cancel();
            await Task.WhenAll(up, down).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private async Task PumpAsync(Socket from, Socket to, Link link, CancellationToken ct)
    {
        byte[] buffer = new byte[BufferBytes];
        try
        {
            while (true)
            {
                int read = await from.ReceiveAsync(buffer, SocketFlags.None, ct).ConfigureAwait(false);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }
                if (link.Blocked)
                    Interlocked.Increment(ref _heldChunks);
                await link.WaitOpenAsync(ct).ConfigureAwait(false);
                if (link.Delay > TimeSpan.Zero)
                    await Task.Delay(link.Delay, ct).ConfigureAwait(false);
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    /// <summary>The cluster process that owns the connecting socket 127.0.0.1:port → proxy port; <see cref="Client"/> for anyone else.</summary>
    private int Identify(IPEndPoint remote, int proxyPort)
    {
        long inode = SocketInode(remote.Port, proxyPort);
        if (inode <= 0)
            return Client;
        string target = $"socket:[{inode.ToString(CultureInfo.InvariantCulture)}]";
        for (int k = 0; k < Processes; k++)
        {
            int pid = _pidOf(k);
            if (pid <= 0)
                continue;
            try
            {
                foreach (string fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
                {
                    if (new FileInfo(fd).LinkTarget == target)
                        return k;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The process went away meanwhile.
            }
        }
        return Client;
    }

    /// <summary>
    /// The inode of the loopback socket with local port <paramref name="localPort"/> connected to <paramref name="remotePort"/>:
    /// /proc/net/tcp for IPv4 sockets, /proc/net/tcp6 for dual-mode ones (::ffff:127.0.0.1), as .NET's HTTP handler makes.
    /// </summary>
    private static long SocketInode(int localPort, int remotePort)
    {
        string local = ":" + localPort.ToString("X4", CultureInfo.InvariantCulture);
        string remote = ":" + remotePort.ToString("X4", CultureInfo.InvariantCulture);
        foreach (string table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(table))
                continue;
            foreach (string line in File.ReadLines(table).Skip(1))
            {
                string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 9 && IsLoopback(fields[1], local) && IsLoopback(fields[2], remote))
                    return long.Parse(fields[9], CultureInfo.InvariantCulture);
            }
        }
        return 0;
    }

    private static bool IsLoopback(string field, string port) =>
        field.EndsWith(port, StringComparison.Ordinal) && field.AsSpan(0, field.Length - port.Length).EndsWith("0100007F", StringComparison.Ordinal);

    /// <summary>One direction between two processes: a block count, a delay, and a gate that opens when unblocked.</summary>
    private sealed class Link
    {
        private readonly object _gate = new();
        private int _blocks;
        private TaskCompletionSource _open = NewOpen(completed: true);

        public TimeSpan Delay { get; set; }

        public bool Blocked
        {
            get { lock (_gate) return _blocks > 0; }
        }

        public void Block()
        {
            lock (_gate)
            {
                if (_blocks++ == 0)
                    _open = NewOpen(completed: false);
            }
        }

        public void Unblock()
        {
            lock (_gate)
            {
                if (_blocks == 0)
                    throw new InvalidOperationException("unblocking a link that is not blocked");
                if (--_blocks == 0)
                    _open.TrySetResult();
            }
        }

        /// <summary>Opens the gate for good (dispose).</summary>
        public void Release()
        {
            lock (_gate)
            {
                _blocks = 0;
                _open.TrySetResult();
            }
        }

        public Task WaitOpenAsync(CancellationToken ct)
        {
            lock (_gate)
                return _open.Task.IsCompleted ? Task.CompletedTask : _open.Task.WaitAsync(ct);
        }

        private static TaskCompletionSource NewOpen(bool completed)
        {
            var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (completed)
                tcs.SetResult();
            return tcs;
        }
    }
}
