using System.Runtime.CompilerServices;
using System.Text;
using Chain.Client;
using Chain.Node;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Server.Tests;

/// <summary>
/// CRAQ reads: every member of a chain answers reads of objects it holds clean; an object with a write the chain has
/// not committed is served only if the tail has committed the same version, else the read is redirected to the
/// tail. One chain of three nodes; each node's channels to its successor and the master go through a
/// <see cref="TrafficGate"/> that can hold updates, acks or the master.
/// </summary>
public class CraqReadTests
{
    private const string Bucket = "craq";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    private sealed class Fixture : IAsyncDisposable
    {
        public required InProcessCluster Cluster { get; init; }
        public required TrafficGate[] Gates { get; init; }
        public required ChainClient Client { get; init; }
        public int Head => Cluster.ChainNodes(0)[0];
        public int Middle => Cluster.ChainNodes(0)[1];
        public int Tail => Cluster.ChainNodes(0)[2];
        public ulong Epoch => Cluster.Master.Current.Chains[0].Epoch;

        public async ValueTask DisposeAsync()
        {
            foreach (TrafficGate gate in Gates)
                gate.OpenAll();
            await Client.DisposeAsync();
            await Cluster.DisposeAsync();
        }
    }

    private static async Task<Fixture> StartAsync(TimeSpan? failureTimeout = null)
    {
        var gates = Enumerable.Range(0, 3).Select(_ => new TrafficGate()).ToArray();
        InProcessCluster cluster = await InProcessCluster.StartAsync(nodes: 3, chains: 1, replicas: 3, failureTimeout: failureTimeout,
            connect: i => address => new GatedInvoker(new RpcChannel(address, new RpcLimits { MaxMessageBytes = Limits.MessageBytesMax }), gates[i]));
        ChainClient client = cluster.CreateClient();
        await client.CreateBucketAsync(Bucket);
        // Bucket creation changed the config: every node needs a heartbeat confirming it before it holds a lease.
        await WaitUntilAsync(() => cluster.Nodes.All(n => n.HasReadLease && n.Config?.Version == cluster.Master.Current.Version),
            "every node runs the current config with a read lease");
        return new Fixture { Cluster = cluster, Gates = gates, Client = client };
    }

    private static StatRequest StatOf(ulong epoch, string key) =>
        new() { Routing = new Routing { ChainId = 0, Epoch = epoch }, Bucket = Bucket, Key = ByteString.CopyFromUtf8(key) };

    private static async Task<ulong> StatAtAsync(Fixture f, int node, string key, ulong? epoch = null)
    {
        using RpcChannel channel = f.Cluster.Channel(node);
        StatResponse response = await channel.UnaryAsync(StoreMethods.Stat, StatOf(epoch ?? f.Epoch, key), new CallOptions { Timeout = Bound });
        return response.Meta.Version;
    }

    private static async Task<RpcException> StatRefusedAtAsync(Fixture f, int node, string key, ulong? epoch = null)
    {
        using RpcChannel channel = f.Cluster.Channel(node);
        return await Assert.ThrowsAsync<RpcException>(() =>
            channel.UnaryAsync(StoreMethods.Stat, StatOf(epoch ?? f.Epoch, key), new CallOptions { Timeout = Bound }));
    }

    private static async Task<(ObjectMeta Meta, byte[] Data)> GetAtAsync(Fixture f, int node, string key)
    {
        using RpcChannel channel = f.Cluster.Channel(node);
        var request = new GetRequest { Routing = new Routing { ChainId = 0, Epoch = f.Epoch }, Bucket = Bucket, Key = ByteString.CopyFromUtf8(key) };
        ObjectMeta? meta = null;
        var data = new MemoryStream();
        await foreach (GetResponse part in channel.ServerStreamingAsync(StoreMethods.Get, request, new CallOptions { Timeout = Bound }))
        {
            if (part.PartCase == GetResponse.PartOneofCase.Meta)
                meta = part.Meta;
            else
                data.Write(part.Data.Span);
        }
        return (meta!, data.ToArray());
    }

    private static async Task<ListResponse> ListAtAsync(Fixture f, int node)
    {
        using RpcChannel channel = f.Cluster.Channel(node);
        return await channel.UnaryAsync(StoreMethods.List, new ListRequest { Routing = new Routing { ChainId = 0, Epoch = f.Epoch }, Bucket = Bucket },
            new CallOptions { Timeout = Bound });
    }

    private static ulong? LocalVersion(Fixture f, int node, string key) =>
        f.Cluster.Nodes[node].Store.GetObject(0, Bucket, Encoding.UTF8.GetBytes(key))?.Version;

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        using var timeout = new CancellationTokenSource(Bound);
        for (int i = 0; !condition(); i++)
        {
            if (timeout.IsCancellationRequested || i > 10_000)
                Assert.Fail($"timed out waiting until {what}");
            await Task.Delay(5);
        }
    }

    private static void AssertReadAtTail(RpcException e)
    {
        Assert.Equal(StatusCode.FailedPrecondition, e.Status);
        Assert.Equal(ErrorKinds.ReadAtTail, RawCalls.Kind(e));
    }

    [Fact]
    public async Task Head_and_middle_serve_committed_values_gets_and_listings()
    {
        await using Fixture f = await StartAsync();
        PutResult v1 = await f.Client.PutAsync(Bucket, "k", Encoding.UTF8.GetBytes("one"));
        PutResult v2 = await f.Client.PutAsync(Bucket, "k", Encoding.UTF8.GetBytes("two"));
        await f.Client.PutAsync(Bucket, "other", Encoding.UTF8.GetBytes("x"));
        Assert.True(v2.Version > v1.Version);

        foreach (int node in new[] { f.Head, f.Middle, f.Tail })
        {
            Assert.Equal(v2.Version, await StatAtAsync(f, node, "k"));
            (ObjectMeta meta, byte[] data) = await GetAtAsync(f, node, "k");
            Assert.Equal(v2.Version, meta.Version);
            Assert.Equal("two", Encoding.UTF8.GetString(data));
            ListResponse list = await ListAtAsync(f, node);
            Assert.Equal(new[] { "k", "other" }, list.Objects.Select(o => o.Key.ToStringUtf8()));
            Assert.Equal(ErrorKinds.NoSuchKey, RawCalls.Kind(await StatRefusedAtAsync(f, node, "absent")));
        }
        // Served from the members' own state: no node asked the tail.
        Assert.All(f.Gates, g => Assert.Equal(0, g.StatCalls));
        Assert.Equal(0, f.Cluster.Nodes[f.Head].GetReplica(0)!.DirtyObjects);
    }

    [Fact]
    public async Task A_write_the_tail_lacks_is_never_read_at_head_or_middle_and_the_read_is_redirected_to_the_tail()
    {
        await using Fixture f = await StartAsync();
        PutResult v1 = await f.Client.PutAsync(Bucket, "k", Encoding.UTF8.GetBytes("committed"));
        await f.Client.PutAsync(Bucket, "clean", Encoding.UTF8.GetBytes("c"));

        // The middle stops forwarding: the next write of k becomes durable at head and middle, never at the tail.
        f.Gates[f.Middle].HoldUpdates();
        Task<PutResult> pending = f.Client.PutAsync(Bucket, "k", Encoding.UTF8.GetBytes("uncommitted"));
        await WaitUntilAsync(() => LocalVersion(f, f.Middle, "k") > v1.Version && LocalVersion(f, f.Head, "k") > v1.Version,
            "the write is durable at head and middle");
        Assert.False(pending.IsCompleted);
        Assert.Equal(v1.Version, LocalVersion(f, f.Tail, "k"));

        AssertReadAtTail(await StatRefusedAtAsync(f, f.Head, "k"));
        AssertReadAtTail(await StatRefusedAtAsync(f, f.Middle, "k"));
        Assert.True(f.Gates[f.Head].StatCalls > 0 && f.Gates[f.Middle].StatCalls > 0, "head and middle asked the tail");
        using (RpcChannel head = f.Cluster.Channel(f.Head))
        {
            AssertReadAtTail(await Assert.ThrowsAsync<RpcException>(() => head.UnaryAsync(StoreMethods.List,
                new ListRequest { Routing = new Routing { ChainId = 0, Epoch = f.Epoch }, Bucket = Bucket }, new CallOptions { Timeout = Bound })));
        }
        // Other objects stay readable at every member.
        Assert.Equal(await StatAtAsync(f, f.Tail, "clean"), await StatAtAsync(f, f.Middle, "clean"));

        // The client spreads reads over the members and follows the redirects: always the committed value.
        for (int i = 0; i < 20; i++)
            Assert.Equal("committed", Encoding.UTF8.GetString(await f.Client.GetBytesAsync(Bucket, "k")));
        Assert.Equal(v1.Version, (await f.Client.StatAsync(Bucket, "k")).Version);

        f.Gates[f.Middle].OpenAll();
        PutResult v2 = await pending.WaitAsync(Bound);
        foreach (int node in new[] { f.Head, f.Middle, f.Tail })
            Assert.Equal(v2.Version, await StatAtAsync(f, node, "k"));
        Assert.Equal("uncommitted", Encoding.UTF8.GetString(await f.Client.GetBytesAsync(Bucket, "k")));
    }

    [Fact]
    public async Task A_write_the_tail_committed_is_served_before_its_ack_arrives()
    {
        await using Fixture f = await StartAsync();
        PutResult v1 = await f.Client.PutAsync(Bucket, "k", Encoding.UTF8.GetBytes("one"));

        // The middle stops receiving acks: the tail commits the next write, head and middle do not learn it.
        f.Gates[f.Middle].HoldAcks();
        Task<PutResult> pending = f.Client.PutAsync(Bucket, "k", Encoding.UTF8.GetBytes("two"));
        await WaitUntilAsync(() => LocalVersion(f, f.Tail, "k") > v1.Version, "the tail has the write");
        ulong v2 = LocalVersion(f, f.Tail, "k")!.Value;
        Assert.False(f.Cluster.Nodes[f.Middle].GetReplica(0)!.IsClean(Bucket, Encoding.UTF8.GetBytes("k")));
        Assert.False(pending.IsCompleted);

        Assert.Equal(v2, await StatAtAsync(f, f.Middle, "k"));
        Assert.Equal(v2, await StatAtAsync(f, f.Head, "k"));
        Assert.True(f.Gates[f.Middle].StatCalls > 0, "the middle confirmed the version with the tail");
        Assert.Equal("two", Encoding.UTF8.GetString((await GetAtAsync(f, f.Middle, "k")).Data));

        f.Gates[f.Middle].OpenAll();
        Assert.Equal(v2, (await pending.WaitAsync(Bound)).Version);
        await WaitUntilAsync(() => f.Cluster.Nodes[f.Middle].GetReplica(0)!.DirtyObjects == 0, "the middle's object is clean again");
    }

    [Fact]
    public async Task A_member_without_a_read_lease_or_removed_from_the_chain_refuses_reads()
    {
        await using Fixture f = await StartAsync(failureTimeout: TimeSpan.FromSeconds(2));
        PutResult v1 = await f.Client.PutAsync(Bucket, "k", Encoding.UTF8.GetBytes("one"));
        int middle = f.Middle;
        ulong epoch = f.Epoch;
        Assert.Equal(v1.Version, await StatAtAsync(f, middle, "k"));

        // Cut off from the master, the middle's lease runs out (half the failure timeout) before the master removes it.
        f.Gates[middle].CutMaster();
        await WaitUntilAsync(() => !f.Cluster.Nodes[middle].HasReadLease, "the middle's lease expired");
        RpcException noLease = await StatRefusedAtAsync(f, middle, "k");
        Assert.Equal(ErrorKinds.NotReady, RawCalls.Kind(noLease));

        // Removed from the chain (new epoch) without knowing it: it still refuses, under either epoch.
        await WaitUntilAsync(() => !f.Cluster.Master.Current.Chains[0].Nodes.Contains(f.Cluster.Nodes[middle].NodeId), "the master removed the middle");
        Assert.Equal(epoch, f.Cluster.Nodes[middle].GetReplica(0)!.Role.Epoch);
        Assert.Equal(ErrorKinds.NotReady, RawCalls.Kind(await StatRefusedAtAsync(f, middle, "k", epoch)));
        Assert.Equal(ErrorKinds.StaleEpoch, RawCalls.Kind(await StatRefusedAtAsync(f, middle, "k", f.Epoch)));
        // The chain goes on without it, and the client reads the newest value.
        PutResult v2 = await f.Client.PutAsync(Bucket, "k", Encoding.UTF8.GetBytes("two"));
        Assert.Equal(v2.Version, (await f.Client.StatAsync(Bucket, "k")).Version);
        Assert.Equal(ErrorKinds.NotReady, RawCalls.Kind(await StatRefusedAtAsync(f, middle, "k", epoch)));
    }
}

/// <summary>Holds one node's outgoing replication updates, incoming acks, or its calls to the master, on command.</summary>
internal sealed class TrafficGate
{
    private readonly object _lock = new();
    private TaskCompletionSource _updates = Opened();
    private TaskCompletionSource _acks = Opened();
    private volatile bool _masterCut;
    private int _statCalls;

    private static TaskCompletionSource Opened()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    /// <summary>Stat calls this node made to peers (a member asking the tail for an object's committed version).</summary>
    public int StatCalls => Volatile.Read(ref _statCalls);
    public bool MasterCut => _masterCut;

    public void HoldUpdates()
    {
        lock (_lock)
            _updates = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public void HoldAcks()
    {
        lock (_lock)
            _acks = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public void CutMaster() => _masterCut = true;

    public void OpenAll()
    {
        _masterCut = false;
        lock (_lock)
        {
            _updates.TrySetResult();
            _acks.TrySetResult();
        }
    }

    public Task UpdatesOpen(CancellationToken ct)
    {
        lock (_lock)
            return _updates.Task.WaitAsync(ct);
    }

    public Task AcksOpen(CancellationToken ct)
    {
        lock (_lock)
            return _acks.Task.WaitAsync(ct);
    }

    public void CountStat() => Interlocked.Increment(ref _statCalls);
}

/// <summary>A node's channel to one peer or the master, with its traffic passing a <see cref="TrafficGate"/>.</summary>
internal sealed class GatedInvoker(IRpcInvoker inner, TrafficGate gate) : IRpcInvoker
{
    public Uri Address => inner.Address;

    private void CheckMaster(string service)
    {
        if (gate.MasterCut && service == MasterMethods.Service)
            throw new RpcException(StatusCode.Unavailable, "test: the master is cut off from this node");
    }

    public Task<TResp> UnaryAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions? options = null)
        where TReq : class, IMessage<TReq> where TResp : class, IMessage<TResp>
    {
        CheckMaster(method.ServiceName);
        if (method.FullName == StoreMethods.Stat.FullName)
            gate.CountStat();
        return inner.UnaryAsync(method, request, options);
    }

    public IAsyncEnumerable<TResp> ServerStreamingAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions? options = null)
        where TReq : class, IMessage<TReq> where TResp : class, IMessage<TResp>
    {
        CheckMaster(method.ServiceName);
        return inner.ServerStreamingAsync(method, request, options);
    }

    public ClientStreamingCall<TReq, TResp> ClientStreaming<TReq, TResp>(Method<TReq, TResp> method, CallOptions? options = null)
        where TReq : class, IMessage<TReq> where TResp : class, IMessage<TResp>
    {
        CheckMaster(method.ServiceName);
        return inner.ClientStreaming(method, options);
    }

    public DuplexCall<TReq, TResp> Duplex<TReq, TResp>(Method<TReq, TResp> method, CallOptions? options = null)
        where TReq : class, IMessage<TReq> where TResp : class, IMessage<TResp>
    {
        DuplexCall<TReq, TResp> call = inner.Duplex(method, options);
        return new DuplexCall<TReq, TResp>(call, new GatedWriter<TReq>(call.RequestStream, gate), GatedAcks(call.ResponseStream));
    }

    private async IAsyncEnumerable<TResp> GatedAcks<TResp>(IAsyncEnumerable<TResp> responses, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await foreach (TResp message in responses.WithCancellation(ct))
        {
            await gate.AcksOpen(ct);
            yield return message;
        }
    }

    public void Dispose() => inner.Dispose();

    private sealed class GatedWriter<T>(IClientStreamWriter<T> inner, TrafficGate gate) : IClientStreamWriter<T>
    {
        public async ValueTask WriteAsync(T message, CancellationToken cancellationToken = default)
        {
            await gate.UpdatesOpen(cancellationToken);
            await inner.WriteAsync(message, cancellationToken);
        }

        public ValueTask CompleteAsync() => inner.CompleteAsync();
    }
}
