using System.Security.Cryptography;
using System.Text;
using Chain.Consistency;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Simulation.Network;
using Chain.Simulation.Runtime;
using Google.Protobuf;

namespace Chain.Simulation;

/// <summary>
/// A simulated client process: its own routing (config from the master; writes to the head, reads from the
/// tail), request ids, retries with jittered backoff inside an operation budget, all on the virtual clock.
/// Each operation goes into the history: ok; fail only when no attempt can have taken effect (every attempt
/// was refused before proposing); info when the outcome is unknown — the client then continues under a fresh id.
/// </summary>
internal sealed class SimClient
{
    private static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan OperationBudget = TimeSpan.FromSeconds(10);
    private const int AttemptsMax = 12;

    private readonly SimProcess _process;
    private readonly SimNetwork _net;
    private readonly SimExecutor _executor;
    private readonly History _history;
    private readonly Dictionary<string, IRpcInvoker> _invokers = new(StringComparer.Ordinal);
    private ClusterConfig? _config;
    private readonly SimLog _log;
    private int _clientId;
    private readonly int _craqPercent;

    /// <param name="craqPercent">Per cent of reads sent to a random member of the chain (CRAQ) rather than the tail.</param>
    public SimClient(SimProcess process, SimNetwork net, SimExecutor executor, History history, int clientId, SimLog log, int craqPercent = 0)
    {
        _craqPercent = craqPercent;
        _log = log;
        _process = process;
        _net = net;
        _executor = executor;
        _history = history;
        _clientId = clientId;
    }

    /// <summary>The shared, ordered history of a run (operations are appended when they complete).</summary>
    internal sealed class History
    {
        public List<Operation> Operations { get; } = new();
        public int NextId;
        public int NextClientId = 1_000_000;
        public int Corrupt;
    }

    private TimeProvider Time => _process.Time;

    private IRpcInvoker Invoker(string address)
    {
        if (!_invokers.TryGetValue(address, out IRpcInvoker? invoker))
        {
            invoker = _net.Connect(_process, new Uri(address));
            _invokers[address] = invoker;
        }
        return invoker;
    }

    private async Task<ClusterConfig?> ConfigAsync(bool refresh)
    {
        if (_config is not null && !refresh)
            return _config;
        try
        {
            ClusterConfig fresh = await Invoker($"http://{SimCluster.MasterHost}:7000").UnaryAsync(MasterMethods.GetConfig, new GetConfigRequest(),
                new CallOptions { Timeout = TimeSpan.FromSeconds(1) });
            if (_config is null || fresh.Version >= _config.Version)
                _config = fresh;
        }
        catch (RpcException)
        {
        }
        return _config;
    }

    /// <summary>The key's chain and the address of its head (<paramref name="head"/>), its tail, or the member at <paramref name="member"/>.</summary>
    private static (ChainInfo Chain, string? Address) Route(ClusterConfig config, string key, bool head, int? member = null)
    {
        uint chainId = Placement.ChainFor(SimCluster.Bucket, Encoding.UTF8.GetBytes(key), config.Chains.Count);
        ChainInfo chain = config.Chains[(int)chainId];
        if (chain.Nodes.Count == 0)
            return (chain, null);
        string nodeId = head ? chain.Nodes[0] : member is { } m ? chain.Nodes[m % chain.Nodes.Count] : chain.Nodes[^1];
        return (chain, config.Nodes.FirstOrDefault(n => n.Node.NodeId == nodeId)?.Node.Address);
    }

    private async Task BackoffAsync(int attempt)
    {
        long maxMs = Math.Min(1000, 20L << Math.Min(attempt, 6));
        await Task.Delay(TimeSpan.FromMilliseconds(_executor.Random.NextInt64(5, maxMs + 1)), Time);
    }

    private byte[] NewRequestId()
    {
        var id = new byte[Limits.RequestIdBytes];
        _executor.Random.NextBytes(id);
        return id;
    }

    // ---------------- the workload ----------------

    public async Task RunAsync(int operations, int keys, int thinkMaxMs, int clientIndex)
    {
        for (int n = 0; n < operations; n++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(_executor.Random.Next(0, thinkMaxMs + 1)), Time);
            string key = "k" + _executor.Random.Next(keys);
            int dice = _executor.Random.Next(100);
            if (dice < 45)
                await WriteAsync(key, $"v{clientIndex}.{n}");
            else if (dice < 85)
                await ReadAsync(key);
            else
                await WriteAsync(key, null);
        }
    }

    /// <summary>A put of <paramref name="value"/>, or a delete when it is null; recorded as a register write.</summary>
    public async Task WriteAsync(string key, string? value)
    {
        long call = _executor.Now;
        byte[] requestId = NewRequestId();
        bool maybeApplied = false;
        long deadline = call + OperationBudget.Ticks;
        bool refresh = false;
        for (int attempt = 0; attempt < AttemptsMax && _executor.Now < deadline; attempt++)
        {
            if (attempt > 0)
                await BackoffAsync(attempt);
            ClusterConfig? config = await ConfigAsync(refresh);
            refresh = true;
            if (config is null || config.Chains.Count == 0)
                continue;
            (ChainInfo chain, string? address) = Route(config, key, head: true);
            if (address is null)
                continue;
            var routing = new Routing { ChainId = chain.ChainId, Epoch = chain.Epoch };
            try
            {
                if (value is null)
                {
                    await Invoker(address).UnaryAsync(StoreMethods.Delete, new DeleteRequest
                    {
                        Routing = routing, Bucket = SimCluster.Bucket, Key = ByteString.CopyFromUtf8(key), RequestId = ByteString.CopyFrom(requestId),
                    }, new CallOptions { Timeout = AttemptTimeout });
                }
                else
                {
                    await PutOnceAsync(Invoker(address), routing, key, value, requestId);
                }
                Record(key, OpKind.Write, value, null, call, OpStatus.Ok);
                if (_log.Verbose)
                    _log.Event($"c{_clientId} {(value is null ? "delete" : "put " + value)} {key} attempt {attempt} at {address} chain {chain.ChainId} epoch {chain.Epoch}: ok");
                return;
            }
            catch (RpcException e)
            {
                if (_log.Verbose)
                    _log.Event($"c{_clientId} {(value is null ? "delete" : "put " + value)} {key} attempt {attempt} at {address} chain {chain.ChainId} epoch {chain.Epoch}: {e.Status} {e.Detail}");
                // Refused before anything was proposed (stale epoch, not the head): this attempt did nothing.
                if (e.Status != StatusCode.FailedPrecondition)
                    maybeApplied = true;
            }
        }
        Record(key, OpKind.Write, value, null, call, maybeApplied ? OpStatus.Info : OpStatus.Fail);
    }

    private static async Task PutOnceAsync(IRpcInvoker invoker, Routing routing, string key, string value, byte[] requestId)
    {
        byte[] data = Encoding.UTF8.GetBytes(value);
        ByteString digest = ByteString.CopyFrom(SHA256.HashData(data));
        using ClientStreamingCall<PutRequest, PutResponse> put = invoker.ClientStreaming(StoreMethods.Put, new CallOptions { Timeout = AttemptTimeout });
        await put.RequestStream.WriteAsync(new PutRequest
        {
            Header = new PutHeader
            {
                Routing = routing, Bucket = SimCluster.Bucket, Key = ByteString.CopyFromUtf8(key), RequestId = ByteString.CopyFrom(requestId),
                DeclaredSize = (ulong)data.Length,
            },
        });
        await put.RequestStream.WriteAsync(new PutRequest { Chunk = new PutChunk { Data = ByteString.CopyFrom(data), Sha256 = digest } });
        await put.RequestStream.WriteAsync(new PutRequest { Commit = new PutCommit { Size = (ulong)data.Length, Sha256 = digest } });
        await put.RequestStream.CompleteAsync();
        await put.ResponseAsync;
    }

    /// <summary>
    /// A get at the tail, or (CRAQ, <see cref="_craqPercent"/> of reads) at a random member, which may redirect it to
    /// the tail (read-at-tail: retried there at once, same table); not found reads as null. Unknown outcomes are
    /// recorded as info (the checker drops them).
    /// </summary>
    public async Task<bool> ReadAsync(string key)
    {
        long call = _executor.Now;
        long deadline = call + OperationBudget.Ticks;
        bool refresh = false;
        bool atTail = _craqPercent == 0 || _executor.Random.Next(100) >= _craqPercent;
        bool redirected = false;
        for (int attempt = 0; attempt < AttemptsMax && _executor.Now < deadline; attempt++)
        {
            if (attempt > 0 && !redirected)
                await BackoffAsync(attempt);
            ClusterConfig? config = await ConfigAsync(refresh && !redirected);
            refresh = true;
            redirected = false;
            if (config is null || config.Chains.Count == 0)
                continue;
            (ChainInfo chain, string? address) = Route(config, key, head: false, atTail ? null : _executor.Random.Next(1000));
            if (address is null)
                continue;
            try
            {
                string? value = await GetOnceAsync(Invoker(address), new Routing { ChainId = chain.ChainId, Epoch = chain.Epoch }, key);
                Record(key, OpKind.Read, null, value, call, OpStatus.Ok);
                return true;
            }
            catch (RpcException e) when (e.Status == StatusCode.NotFound && e.Trailers.TryGetValue(ErrorTrailers.Kind, out string? kind) && kind == ErrorKinds.NoSuchKey)
            {
                Record(key, OpKind.Read, null, null, call, OpStatus.Ok);
                return true;
            }
            catch (RpcException e) when (!atTail && e.Trailers.TryGetValue(ErrorTrailers.Kind, out string? kind) && kind == ErrorKinds.ReadAtTail)
            {
                atTail = true;
                redirected = true;
            }
            catch (RpcException)
            {
            }
        }
        Record(key, OpKind.Read, null, null, call, OpStatus.Info);
        return false;
    }

    private async Task<string?> GetOnceAsync(IRpcInvoker invoker, Routing routing, string key)
    {
        ObjectMeta? meta = null;
        var data = new List<byte>();
        await foreach (GetResponse part in invoker.ServerStreamingAsync(StoreMethods.Get,
                           new GetRequest { Routing = routing, Bucket = SimCluster.Bucket, Key = ByteString.CopyFromUtf8(key) },
                           new CallOptions { Timeout = AttemptTimeout }))
        {
            if (part.PartCase == GetResponse.PartOneofCase.Meta)
                meta = part.Meta;
            else
                data.AddRange(part.Data.ToByteArray());
        }
        byte[] bytes = data.ToArray();
        if (meta is null || (ulong)bytes.Length != meta.Size || !SHA256.HashData(bytes).AsSpan().SequenceEqual(meta.Sha256.Span))
        {
            _history.Corrupt++;
            return "<corrupt>";
        }
        return Encoding.UTF8.GetString(bytes);
    }

    private void Record(string key, OpKind kind, string? input, string? output, long call, OpStatus status)
    {
        _history.Operations.Add(new Operation(_history.NextId++, key, _clientId, kind, input, null, output, call, _executor.Now, status));
        _executor.Mix((ulong)status + 7 * (ulong)_executor.Now);
        if (status == OpStatus.Info)
            _clientId = _history.NextClientId++; // a client whose operation ended unknown continues as a new client
    }
}
