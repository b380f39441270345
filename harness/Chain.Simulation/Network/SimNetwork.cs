using Chain.Protocol;
using Chain.Rpc;
using Chain.Rpc.Server;
using Chain.Simulation.Runtime;

namespace Chain.Simulation.Network;

/// <summary>Network timing of a run (virtual time).</summary>
public sealed record NetworkOptions
{
    public TimeSpan LatencyMin { get; init; } = TimeSpan.FromMicroseconds(100);
    public TimeSpan LatencyMax { get; init; } = TimeSpan.FromMilliseconds(5);
    /// <summary>A stream that crosses a partition for this long is reset (HTTP/2 keepalive: ping delay + timeout).</summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>A connection attempt to a host behind a partition fails after this long (SocketsHttpHandler.ConnectTimeout).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// The in-memory network: hosts listen with an <see cref="RpcServiceRegistry"/> and the registered handlers run
/// as work items of the host's process. Every message is serialized on send and parsed on receipt (nothing is
/// shared by reference) and checked against the message size limit. Each direction of each call is an ordered
/// stream (HTTP/2 over TCP): its messages arrive in order after a random latency, so reordering happens only
/// across streams. Faults: a partition holds a stream's traffic (TCP retransmits) until it heals or the
/// keepalive gives up and resets the stream; a drop resets a stream (the client sees Unavailable, the server's
/// call is cancelled); a crashed host refuses connections and its peers' streams are reset.
/// </summary>
public sealed class SimNetwork
{
    private readonly SimExecutor _executor;
    private readonly Dictionary<string, (SimProcess Process, RpcServiceRegistry Registry)> _listeners = new(StringComparer.Ordinal);
    private readonly Dictionary<(string, string), long> _blockedSince = new();
    private readonly List<SimCall> _calls = new();

    public SimNetwork(SimExecutor executor, NetworkOptions options)
    {
        _executor = executor;
        Options = options;
    }

    public NetworkOptions Options { get; }
    internal SimExecutor Executor => _executor;
    public int ActiveCalls => _calls.Count;
    public long CallsStarted { get; private set; }
    public long Resets { get; private set; }
    public long MessagesSent { get; internal set; }
    /// <summary>Handlers that failed with something other than an RpcException (answered Internal).</summary>
    public long HandlerFailures { get; internal set; }
    public string? LastHandlerFailure { get; internal set; }

    public void Listen(string host, SimProcess process, RpcServiceRegistry registry) => _listeners[host] = (process, registry);

    public void StopListening(string host) => _listeners.Remove(host);

    /// <summary>A client for <paramref name="address"/> whose calls run from <paramref name="from"/>.</summary>
    public IRpcInvoker Connect(SimProcess from, Uri address) => new SimInvoker(this, from, address);

    // ---------------- partitions ----------------

    private static (string, string) Pair(string a, string b) => string.CompareOrdinal(a, b) <= 0 ? (a, b) : (b, a);

    public bool IsBlocked(string a, string b) => _blockedSince.Count > 0 && _blockedSince.ContainsKey(Pair(a, b));

    public void Block(string a, string b)
    {
        if (a != b)
            _blockedSince.TryAdd(Pair(a, b), _executor.Now);
    }

    public void HealAll() => _blockedSince.Clear();

    public int BlockedLinks => _blockedSince.Count;

    /// <summary>Resets the streams that crossed a partition for longer than the keepalive timeout.</summary>
    public void ResetStalledCalls()
    {
        if (_blockedSince.Count == 0)
            return;
        long limit = _executor.Now - Options.KeepAliveTimeout.Ticks;
        foreach (SimCall call in _calls.ToArray())
        {
            if (call.ServerHost is { } host && _blockedSince.TryGetValue(Pair(call.Client.Name, host), out long since) && since <= limit)
                Reset(call, "keepalive timeout: the peer has been unreachable");
        }
    }

    // ---------------- faults on streams ----------------

    /// <summary>Resets one random active call (a dropped connection). False if there was none.</summary>
    public bool ResetRandomCall()
    {
        if (_calls.Count == 0)
            return false;
        Reset(_calls[_executor.Random.Next(_calls.Count)], "connection reset (injected drop)");
        return true;
    }

    /// <summary>A process died: its peers see their streams reset (the kernel closes its sockets).</summary>
    public void ResetCallsOf(SimProcess process)
    {
        foreach (SimCall call in _calls.ToArray())
        {
            if (call.Client == process || call.Server == process)
                Reset(call, $"connection reset: {process.Name} went away");
        }
    }

    internal void Reset(SimCall call, string reason)
    {
        if (!call.Track(false))
            return;
        Resets++;
        call.ResetBothSides(reason);
    }

    internal void Forget(SimCall call) => call.Track(false);

    // ---------------- plumbing for calls ----------------

    internal long Latency() => _executor.Random.NextInt64(Math.Min(Options.LatencyMin.Ticks, Options.LatencyMax.Ticks), Options.LatencyMax.Ticks + 1);

    internal (SimProcess Process, RpcServiceRegistry Registry)? Listener(string host) =>
        _listeners.TryGetValue(host, out var l) ? l : null;

    internal void Started(SimCall call)
    {
        CallsStarted++;
        _calls.Add(call);
    }

    internal void Removed(SimCall call) => _calls.Remove(call);

    internal static byte[] Serialize(Google.Protobuf.IMessage message, string what)
    {
        int size = message.CalculateSize();
        if (size > Limits.MessageBytesMax)
            throw new RpcException(StatusCode.ResourceExhausted, $"{what}: message of {size} bytes exceeds the limit of {Limits.MessageBytesMax} bytes");
        return Google.Protobuf.MessageExtensions.ToByteArray(message);
    }
}

/// <summary>
/// One direction of one call: an ordered stream. Deliveries run in the receiving process at their due time,
/// in order; while the hosts are partitioned, the head of the stream waits (and everything behind it).
/// </summary>
internal sealed class SimLink
{
    private readonly SimNetwork _net;
    private readonly SimProcess _receiver;
    private readonly string _fromHost;
    private readonly string _toHost;
    private readonly Queue<(long Due, Action Deliver)> _queue = new();
    private long _lastDue;
    private bool _pumping;
    private bool _closed;

    public SimLink(SimNetwork net, SimProcess receiver, string fromHost, string toHost)
    {
        _net = net;
        _receiver = receiver;
        _fromHost = fromHost;
        _toHost = toHost;
    }

    public void Send(Action deliver)
    {
        if (_closed)
            return;
        long due = Math.Max(_net.Executor.Now + _net.Latency(), _lastDue);
        _lastDue = due;
        _queue.Enqueue((due, deliver));
        _net.MessagesSent++;
        if (!_pumping)
        {
            _pumping = true;
            _net.Executor.At(due, _receiver, Pump);
        }
    }

    /// <summary>Drops everything not yet delivered (a reset discards buffered data).</summary>
    public void Close()
    {
        _closed = true;
        _queue.Clear();
    }

    private void Pump()
    {
        _pumping = false;
        while (_queue.Count > 0)
        {
            (long due, Action deliver) = _queue.Peek();
            long now = _net.Executor.Now;
            if (due > now)
            {
                _pumping = true;
                _net.Executor.At(due, _receiver, Pump);
                return;
            }
            if (_net.IsBlocked(_fromHost, _toHost))
            {
                _pumping = true;
                _net.Executor.At(now + TimeSpan.TicksPerMillisecond * 100, _receiver, Pump);
                return;
            }
            _queue.Dequeue();
            deliver();
        }
    }
}
