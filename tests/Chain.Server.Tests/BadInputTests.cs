using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Chain.Client;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Server.Tests;

/// <summary>Every bad input gets a clear, typed error; nothing crashes; nothing partial becomes visible.</summary>
public class BadInputTests : IAsyncLifetime
{
    private InProcessCluster _c = null!;
    private ClusterConfig _config = null!;

    public async Task InitializeAsync()
    {
        _c = await InProcessCluster.StartAsync(objectBytesMax: 3 * Limits.ChunkBytes);
        using ChainClient client = _c.CreateClient();
        await client.CreateBucketAsync("bad");
        _config = _c.Master.Current;
    }

    public async Task DisposeAsync() => await _c.DisposeAsync();

    private RpcChannel HeadOf(string bucket, byte[] key, out uint chain)
    {
        chain = Placement.ChainFor(bucket, key, _config.Chains.Count);
        return _c.Channel(_c.ChainNodes(chain)[0]);
    }

    private async Task AssertNothingVisibleAsync(string key)
    {
        using ChainClient client = _c.CreateClient();
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.StatAsync("bad", key));
        await foreach (ObjectInfo o in client.ListAsync("bad"))
            Assert.NotEqual(key, o.Key);
    }

    public static TheoryData<string, byte[]> BadKeys => new()
    {
        { "empty", Array.Empty<byte>() },
        { "over 1 KiB", Encoding.UTF8.GetBytes(new string('k', Limits.KeyBytesMax + 1)) },
        { "not UTF-8", new byte[] { 0x61, 0xFF, 0xFE, 0x62 } },
        { "truncated UTF-8", new byte[] { 0x61, 0xE2, 0x82 } },
        { "NUL byte", new byte[] { 0x61, 0x00, 0x62 } },
    };

    [Theory]
    [MemberData(nameof(BadKeys))]
    public async Task Bad_keys_are_refused_on_the_wire(string what, byte[] key)
    {
        using RpcChannel channel = _c.Channel(0);
        var header = RawCalls.Header(_config, "bad", key, RawCalls.NewRequestId(), chain: 0);
        var e = await Assert.ThrowsAsync<RpcException>(() => RawCalls.PutBytesAsync(channel, header, Encoding.UTF8.GetBytes("v")));
        Assert.Equal(StatusCode.InvalidArgument, e.Status);
        Assert.Equal(ErrorKinds.InvalidKey, RawCalls.Kind(e));
        Assert.False(string.IsNullOrWhiteSpace(e.Detail), what);

        var get = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(StoreMethods.Stat,
            new StatRequest { Routing = header.Routing, Bucket = "bad", Key = ByteString.CopyFrom(key) }));
        Assert.Equal(StatusCode.InvalidArgument, get.Status);
    }

    [Fact]
    public async Task Bad_keys_are_refused_by_the_client_library_with_a_typed_error()
    {
        using ChainClient client = _c.CreateClient();
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.PutAsync("bad", "", new byte[1]));
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.PutAsync("bad", new string('x', 1025), new byte[1]));
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.PutAsync("Not_A_Bucket", "k", new byte[1]));
    }

    [Fact]
    public async Task Unknown_bucket_is_not_found()
    {
        byte[] key = Encoding.UTF8.GetBytes("k");
        using RpcChannel channel = HeadOf("nobucket", key, out _);
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            RawCalls.PutBytesAsync(channel, RawCalls.Header(_config, "nobucket", key, RawCalls.NewRequestId()), new byte[] { 1 }));
        Assert.Equal(StatusCode.NotFound, e.Status);
        Assert.Equal(ErrorKinds.NoSuchBucket, RawCalls.Kind(e));

        using ChainClient client = _c.CreateClient();
        await Assert.ThrowsAsync<BucketNotFoundException>(() => client.PutAsync("nobucket", "k", new byte[1]));
        await Assert.ThrowsAsync<BucketNotFoundException>(() => client.GetBytesAsync("nobucket", "k"));
    }

    [Fact]
    public async Task Objects_over_the_maximum_size_are_refused_and_leave_nothing()
    {
        using ChainClient client = _c.CreateClient();
        byte[] big = new byte[3 * Limits.ChunkBytes + 1];
        await Assert.ThrowsAsync<ObjectTooLargeException>(() => client.PutAsync("bad", "big", big));
        await AssertNothingVisibleAsync("big");

        // Lying about the size: the declared size passes, the data does not.
        byte[] key = Encoding.UTF8.GetBytes("liar");
        using RpcChannel channel = HeadOf("bad", key, out _);
        PutHeader header = RawCalls.Header(_config, "bad", key, RawCalls.NewRequestId());
        byte[] chunk = new byte[Limits.ChunkBytes];
        var e = await Assert.ThrowsAsync<RpcException>(() => RawCalls.PutAsync(channel,
            new PutRequest { Header = header },
            new PutRequest { Chunk = RawCalls.Chunk(chunk) }, new PutRequest { Chunk = RawCalls.Chunk(chunk) },
            new PutRequest { Chunk = RawCalls.Chunk(chunk) }, new PutRequest { Chunk = RawCalls.Chunk(new byte[] { 1 }) },
            new PutRequest { Commit = new PutCommit { Size = (ulong)(3 * chunk.Length + 1) } }));
        Assert.Equal(ErrorKinds.TooLarge, RawCalls.Kind(e));
        await AssertNothingVisibleAsync("liar");
    }

    [Fact]
    public async Task Stale_epoch_is_refused_with_a_distinct_error_and_the_current_epoch()
    {
        byte[] key = Encoding.UTF8.GetBytes("epoch");
        using RpcChannel channel = HeadOf("bad", key, out uint chain);
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            RawCalls.PutBytesAsync(channel, RawCalls.Header(_config, "bad", key, RawCalls.NewRequestId(), epoch: 99), new byte[] { 1 }));
        Assert.Equal(StatusCode.FailedPrecondition, e.Status);
        Assert.Equal(ErrorKinds.StaleEpoch, RawCalls.Kind(e));
        Assert.Equal(_config.Chains[(int)chain].Epoch.ToString(), e.Trailers[ErrorTrailers.Epoch]);
        await AssertNothingVisibleAsync("epoch");

        var read = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(StoreMethods.Stat, new StatRequest
        {
            Routing = new Routing { ChainId = chain, Epoch = 99 }, Bucket = "bad", Key = ByteString.CopyFrom(key),
        }));
        Assert.Equal(ErrorKinds.StaleEpoch, RawCalls.Kind(read));
    }

    [Fact]
    public async Task Writes_to_a_non_head_are_redirected_and_reads_at_a_non_tail_member_are_served()
    {
        byte[] key = Encoding.UTF8.GetBytes("role");
        uint chain = Placement.ChainFor("bad", key, _config.Chains.Count);
        int[] nodes = _c.ChainNodes(chain);
        using RpcChannel tail = _c.Channel(nodes[^1]);
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            RawCalls.PutBytesAsync(tail, RawCalls.Header(_config, "bad", key, RawCalls.NewRequestId()), new byte[] { 1 }));
        Assert.Equal(ErrorKinds.NotHead, RawCalls.Kind(e));

        // CRAQ: the head answers the read itself (nothing of the key is in flight): the object does not exist.
        using RpcChannel head = _c.Channel(nodes[0]);
        var r = await Assert.ThrowsAsync<RpcException>(() => head.UnaryAsync(StoreMethods.Stat, new StatRequest
        {
            Routing = new Routing { ChainId = chain, Epoch = _config.Chains[(int)chain].Epoch }, Bucket = "bad", Key = ByteString.CopyFrom(key),
        }));
        Assert.Equal(ErrorKinds.NoSuchKey, RawCalls.Kind(r));
    }

    [Fact]
    public async Task Corrupted_chunks_and_wrong_object_digests_are_refused_and_leave_nothing()
    {
        byte[] key = Encoding.UTF8.GetBytes("digest");
        using RpcChannel channel = HeadOf("bad", key, out _);
        byte[] data = Encoding.UTF8.GetBytes("some data");
        PutChunk corrupted = RawCalls.Chunk(data);
        corrupted.Data = ByteString.CopyFrom(Encoding.UTF8.GetBytes("some dat4"));
        var e1 = await Assert.ThrowsAsync<RpcException>(() => RawCalls.PutAsync(channel,
            new PutRequest { Header = RawCalls.Header(_config, "bad", key, RawCalls.NewRequestId()) },
            new PutRequest { Chunk = corrupted }, new PutRequest { Commit = RawCalls.Commit(data) }));
        Assert.Equal(ErrorKinds.BadDigest, RawCalls.Kind(e1));

        var e2 = await Assert.ThrowsAsync<RpcException>(() => RawCalls.PutAsync(channel,
            new PutRequest { Header = RawCalls.Header(_config, "bad", key, RawCalls.NewRequestId()) },
            new PutRequest { Chunk = RawCalls.Chunk(data) }, new PutRequest { Commit = RawCalls.Commit(Encoding.UTF8.GetBytes("other dat")) }));
        Assert.Equal(ErrorKinds.BadDigest, RawCalls.Kind(e2));
        await AssertNothingVisibleAsync("digest");
    }

    [Fact]
    public async Task A_put_stream_that_ends_without_commit_leaves_nothing()
    {
        byte[] key = Encoding.UTF8.GetBytes("cut");
        using RpcChannel channel = HeadOf("bad", key, out _);
        var e = await Assert.ThrowsAsync<RpcException>(() => RawCalls.PutAsync(channel,
            new PutRequest { Header = RawCalls.Header(_config, "bad", key, RawCalls.NewRequestId()) },
            new PutRequest { Chunk = RawCalls.Chunk(new byte[] { 1, 2, 3 }) }));
        Assert.Equal(StatusCode.InvalidArgument, e.Status);
        await AssertNothingVisibleAsync("cut");

        var noHeader = await Assert.ThrowsAsync<RpcException>(() => RawCalls.PutAsync(channel,
            new PutRequest { Chunk = RawCalls.Chunk(new byte[] { 1 }) }));
        Assert.Equal(StatusCode.InvalidArgument, noHeader.Status);
    }

    [Fact]
    public async Task Garbage_and_truncated_frames_get_errors_and_the_node_keeps_serving()
    {
        using var http = new HttpClient(new SocketsHttpHandler()) { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        Uri stat = new(_c.NodeAddresses[0], "/chain.v1.ChainStore/Stat");
        byte[][] bodies =
        {
            new byte[] { 0, 0, 0, 0, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, // invalid protobuf
            new byte[] { 0, 0, 0, 0, 50, 1, 2, 3 },                                                      // truncated message
            new byte[] { 0, 0, 0 },                                                                      // truncated prefix
            new byte[] { 0, 0x7F, 0xFF, 0xFF, 0xFF },                                                    // length over the limit
        };
        foreach (byte[] body in bodies)
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
            using HttpResponseMessage response = await http.PostAsync(stat, content);
            await response.Content.ReadAsByteArrayAsync();
            string? status = response.TrailingHeaders.TryGetValues("grpc-status", out var t) ? t.First()
                : response.Headers.TryGetValues("grpc-status", out var h) ? h.First() : null;
            Assert.NotNull(status);
            Assert.NotEqual("0", status);
        }
        using ChainClient client = _c.CreateClient();
        await client.PutAsync("bad", "still-serving", Encoding.UTF8.GetBytes("ok"));
        Assert.Equal("ok", Encoding.UTF8.GetString(await client.GetBytesAsync("bad", "still-serving")));
    }
}
