using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Chain.Client.Internal;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Client.Tests;

/// <summary>An in-memory stand-in for the cluster's endpoints: scripted per method, recording every call.</summary>
internal sealed class FakeTransport : IRpcTransport
{
    public static readonly Uri Master = new("http://master:7400");

    private int _configFetches;

    public ConcurrentQueue<(Uri Address, string Method, IMessage Request)> Calls { get; } = new();

    /// <summary>What GetConfig answers (may throw).</summary>
    public Func<ClusterConfig> ConfigSource { get; set; } = () => Cluster(chains: 1, replicas: 3);

    /// <summary>Unary calls other than GetConfig: (address, method name, request) → response, or throw.</summary>
    public Func<Uri, string, IMessage, IMessage>? Unary { get; set; }

    /// <summary>Get: (address, request) → messages (the sequence may throw part-way).</summary>
    public Func<Uri, GetRequest, IEnumerable<GetResponse>>? Get { get; set; }

    /// <summary>Put: makes the fake call of each attempt.</summary>
    public Func<Uri, FakePutCall>? Put { get; set; }

    public List<FakePutCall> PutCalls { get; } = new();

    public int ConfigFetches => Volatile.Read(ref _configFetches);

    public bool Disposed { get; private set; }

    public IRpcCaller For(Uri address) => new Caller(this, address);

    /// <summary>Addresses the client asked to reconnect, in order.</summary>
    public ConcurrentQueue<Uri> Reconnects { get; } = new();

    public void Reconnect(Uri address) => Reconnects.Enqueue(address);

    public void Dispose() => Disposed = true;

    public IEnumerable<(Uri Address, string Method, IMessage Request)> CallsTo(string method) =>
        Calls.Where(c => c.Method == method);

    /// <summary>A config with nodes n0..n(chains*replicas-1); chain i's nodes are consecutive, head first.</summary>
    public static ClusterConfig Cluster(int chains, int replicas, ulong version = 1, ulong epoch = 1, int nodeOffset = 0)
    {
        var config = new ClusterConfig { Version = version, Replicas = (uint)replicas };
        for (int c = 0; c < chains; c++)
        {
            var chain = new ChainInfo { ChainId = (uint)c, Epoch = epoch };
            for (int r = 0; r < replicas; r++)
            {
                int n = nodeOffset + c * replicas + r;
                chain.Nodes.Add($"n{n}");
                config.Nodes.Add(new NodeStatus
                {
                    Node = new NodeInfo { NodeId = $"n{n}", Address = Address(n).ToString() },
                    Alive = true,
                    LastHeartbeatUnixMs = 1_700_000_000_000,
                });
            }
            config.Chains.Add(chain);
        }
        return config;
    }

    public static Uri Address(int node) => new($"http://node{node}:7401/");

    public static RpcException Error(StatusCode status, string? kind, string detail = "scripted")
    {
        var trailers = new Dictionary<string, string>();
        if (kind is not null)
            trailers[ErrorTrailers.Kind] = kind;
        return new RpcException(status, detail, trailers);
    }

    private sealed class Caller(FakeTransport owner, Uri address) : IRpcCaller
    {
        public async Task<TResp> UnaryAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions options)
            where TReq : class, IMessage<TReq>
            where TResp : class, IMessage<TResp>
        {
            await Task.Yield();
            options.CancellationToken.ThrowIfCancellationRequested();
            owner.Calls.Enqueue((address, method.Name, request));
            if (method.FullName == MasterMethods.GetConfig.FullName)
            {
                Interlocked.Increment(ref owner._configFetches);
                return (TResp)(object)owner.ConfigSource().Clone();
            }
            if (owner.Unary is null)
                throw new InvalidOperationException($"no unary handler for {method.Name}");
            return (TResp)owner.Unary(address, method.Name, request);
        }

        public async IAsyncEnumerable<TResp> ServerStreamingAsync<TReq, TResp>(Method<TReq, TResp> method, TReq request, CallOptions options)
            where TReq : class, IMessage<TReq>
            where TResp : class, IMessage<TResp>
        {
            await Task.Yield();
            owner.Calls.Enqueue((address, method.Name, request));
            if (owner.Get is null || request is not GetRequest get)
                throw new InvalidOperationException($"no streaming handler for {method.Name}");
            foreach (var message in owner.Get(address, get))
            {
                options.CancellationToken.ThrowIfCancellationRequested();
                yield return (TResp)(object)message;
                await Task.Yield();
            }
        }

        public IClientStreamingCall<TReq, TResp> ClientStreaming<TReq, TResp>(Method<TReq, TResp> method, CallOptions options)
            where TReq : class, IMessage<TReq>
            where TResp : class, IMessage<TResp>
        {
            if (owner.Put is null || typeof(TReq) != typeof(PutRequest))
                throw new InvalidOperationException($"no client-streaming handler for {method.Name}");
            var call = owner.Put(address);
            call.Address = address;
            call.Options = options;
            lock (owner.PutCalls)
                owner.PutCalls.Add(call);
            owner.Calls.Enqueue((address, method.Name, new PutRequest()));
            return (IClientStreamingCall<TReq, TResp>)(object)call;
        }
    }
}

/// <summary>
/// One fake Put call. Like a real transport, a call the server failed makes later writes throw an I/O error while
/// the status comes from ResponseAsync.
/// </summary>
internal sealed class FakePutCall : IClientStreamingCall<PutRequest, PutResponse>, IClientStreamWriter<PutRequest>
{
    private readonly TaskCompletionSource<PutResponse> _response = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Uri? Address { get; set; }
    public CallOptions? Options { get; set; }
    public List<PutRequest> Messages { get; } = new();
    public bool Completed { get; private set; }
    public bool Disposed { get; private set; }

    /// <summary>Inspects each written message; a returned exception fails the call with it.</summary>
    public Func<PutRequest, int, RpcException?>? FailOn { get; init; }

    /// <summary>The answer once the client half-closes.</summary>
    public Func<FakePutCall, PutResponse> Respond { get; init; } = _ => new PutResponse { Version = 7 };

    public IClientStreamWriter<PutRequest> RequestStream => this;
    public Task<PutResponse> ResponseAsync => _response.Task;

    public async ValueTask WriteAsync(PutRequest message, CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        cancellationToken.ThrowIfCancellationRequested();
        if (_response.Task.IsCompleted)
            throw new IOException("the call is over");
        // Messages are kept as sent; the chunk data is copied so later buffer reuse would be detected.
        Messages.Add(message.Clone());
        if (FailOn?.Invoke(message, Messages.Count - 1) is { } error)
        {
            _response.TrySetException(error);
            throw new IOException("stream reset by the server");
        }
    }

    public ValueTask CompleteAsync()
    {
        Completed = true;
        try
        {
            _response.TrySetResult(Respond(this));
        }
        catch (Exception ex)
        {
            _response.TrySetException(ex);
        }
        return ValueTask.CompletedTask;
    }

    public void Dispose() => Disposed = true;

    public PutHeader Header => Messages[0].Header;

    public IReadOnlyList<PutChunk> Chunks => Messages.Where(m => m.PartCase == PutRequest.PartOneofCase.Chunk).Select(m => m.Chunk).ToList();

    public PutCommit? Commit => Messages.LastOrDefault(m => m.PartCase == PutRequest.PartOneofCase.Commit)?.Commit;
}

/// <summary>A readable stream that returns at most <paramref name="maxPerRead"/> bytes per read; optionally not seekable.</summary>
internal sealed class TrickleStream(byte[] data, int maxPerRead, bool seekable = true) : Stream
{
    private long _position;

    public int Reads { get; private set; }

    public override bool CanRead => true;
    public override bool CanSeek => seekable;
    public override bool CanWrite => false;
    public override long Length => seekable ? data.Length : throw new NotSupportedException();

    public override long Position
    {
        get => seekable ? _position : throw new NotSupportedException();
        set
        {
            if (!seekable)
                throw new NotSupportedException();
            _position = value;
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        Reads++;
        int n = (int)Math.Min(Math.Min(buffer.Length, maxPerRead), data.Length - _position);
        data.AsSpan((int)_position, n).CopyTo(buffer);
        _position += n;
        return n;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Read(buffer.Span));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        Task.FromResult(Read(buffer.AsSpan(offset, count)));

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>A write-only, non-seekable destination.</summary>
internal sealed class SinkStream : Stream
{
    public MemoryStream Inner { get; } = new();
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => Inner.Write(buffer, offset, count);
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Inner.Write(buffer.Span);
        return ValueTask.CompletedTask;
    }
}

internal static class TestData
{
    public static byte[] Random(int size, int seed = 1)
    {
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        return data;
    }

    public static ObjectMeta Meta(string key, long size = 1) => new()
    {
        Bucket = "bkt",
        Key = ByteString.CopyFromUtf8(key),
        Size = (ulong)size,
        Sha256 = ByteString.CopyFrom(new byte[32]),
        Version = 1,
        CreatedUnixMs = 1_700_000_000_000,
        ContentType = "text/plain",
    };
}
