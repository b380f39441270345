using System.Security.Cryptography;
using System.Text;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Client.Tests;

public class ChainClientTests
{
    private sealed class Recorder : IProgress<long>
    {
        public List<long> Values { get; } = new();
        public void Report(long value) => Values.Add(value);
    }

    private static ChainClient Client(FakeTransport fake, int maxAttempts = 5, double timeoutSeconds = 20, ReadTarget readFrom = ReadTarget.AnyReplica,
        TimeSpan? retryBaseDelay = null) =>
        new(new ChainClientOptions
        {
            Master = FakeTransport.Master,
            MaxAttempts = maxAttempts,
            RetryBaseDelay = retryBaseDelay ?? TimeSpan.FromMilliseconds(1),
            OperationTimeout = TimeSpan.FromSeconds(timeoutSeconds),
            ReadFrom = readFrom,
        }, fake);

    private static int ChainOf(string bucket, string key, int chains) => (int)Placement.ChainFor(bucket, Encoding.UTF8.GetBytes(key), chains);

    private static IEnumerable<GetResponse> Serve(byte[] data, int piece, byte[]? digest = null, long? size = null)
    {
        yield return new GetResponse
        {
            Meta = new ObjectMeta
            {
                Bucket = "bkt",
                Key = ByteString.CopyFromUtf8("k"),
                Size = (ulong)(size ?? data.Length),
                Sha256 = ByteString.CopyFrom(digest ?? SHA256.HashData(data)),
                Version = 3,
                CreatedUnixMs = 1_700_000_000_123,
                ContentType = "image/png",
            },
        };
        for (int offset = 0; offset < data.Length; offset += piece)
            yield return new GetResponse { Data = ByteString.CopyFrom(data, offset, Math.Min(piece, data.Length - offset)) };
    }

    // ------------------------------------------------------------------ put

    [Fact]
    public async Task Put_streams_a_header_full_chunks_and_a_commit_to_the_head()
    {
        var fake = new FakeTransport { ConfigSource = () => FakeTransport.Cluster(chains: 3, replicas: 3, epoch: 5) };
        fake.Put = _ => new FakePutCall();
        using var client = Client(fake);
        var data = TestData.Random(2 * Limits.StreamFrameBytes + Limits.StreamFrameBytes / 2);
        var progress = new Recorder();

        var result = await client.PutAsync("bkt", "dir/file.bin", new TrickleStream(data, maxPerRead: 7),
            new PutOptions { ContentType = "text/plain", UserMetadata = new Dictionary<string, string> { ["owner"] = "me" }, Progress = progress });

        var call = Assert.Single(fake.PutCalls);
        int chain = ChainOf("bkt", "dir/file.bin", 3);
        Assert.Equal(FakeTransport.Address(chain * 3), call.Address);
        var header = call.Header;
        Assert.Equal((uint)chain, header.Routing.ChainId);
        Assert.Equal(5ul, header.Routing.Epoch);
        Assert.Equal("bkt", header.Bucket);
        Assert.Equal("dir/file.bin"u8.ToArray(), header.Key.ToByteArray());
        Assert.Equal(Limits.RequestIdBytes, header.RequestId.Length);
        Assert.Equal((ulong)data.Length, header.DeclaredSize);
        Assert.Equal("text/plain", header.ContentType);
        Assert.Equal("me", header.UserMetadata["owner"]);

        var chunks = call.Chunks;
        Assert.Equal(new[] { Limits.StreamFrameBytes, Limits.StreamFrameBytes, Limits.StreamFrameBytes / 2 }, chunks.Select(c => c.Data.Length));
        Assert.All(chunks, c => Assert.Equal(SHA256.HashData(c.Data.Span), c.Sha256.ToByteArray()));
        Assert.Equal(data, chunks.SelectMany(c => c.Data.ToByteArray()).ToArray());

        Assert.Equal(PutRequest.PartOneofCase.Commit, call.Messages[^1].PartCase);
        Assert.Equal((ulong)data.Length, call.Commit!.Size);
        Assert.Equal(SHA256.HashData(data), call.Commit.Sha256.ToByteArray());
        Assert.True(call.Completed);
        Assert.True(call.Disposed);

        Assert.Equal(new PutResult("bkt", "dir/file.bin", data.Length, Convert.ToHexStringLower(SHA256.HashData(data)), 7, false), result);
        Assert.Equal(new long[] { Limits.StreamFrameBytes, 2 * Limits.StreamFrameBytes, data.Length }, progress.Values);
    }

    [Fact]
    public async Task Put_of_zero_bytes_sends_the_header_then_the_commit()
    {
        var fake = new FakeTransport { Put = _ => new FakePutCall() };
        using var client = Client(fake);

        var result = await client.PutAsync("bkt", "empty", ReadOnlyMemory<byte>.Empty);

        var call = Assert.Single(fake.PutCalls);
        Assert.Equal(new[] { PutRequest.PartOneofCase.Header, PutRequest.PartOneofCase.Commit }, call.Messages.Select(m => m.PartCase));
        Assert.Equal(0ul, call.Commit!.Size);
        Assert.Equal(SHA256.HashData(Array.Empty<byte>()), call.Commit.Sha256.ToByteArray());
        Assert.Equal(0, result.Size);
    }

    [Fact]
    public async Task Writes_go_on_with_the_cached_table_while_the_master_is_unreachable_and_its_connection_is_renewed()
    {
        bool masterUp = true;
        var fake = new FakeTransport
        {
            ConfigSource = () => masterUp
                ? FakeTransport.Cluster(1, 3, version: 1, epoch: 1)
                : throw FakeTransport.Error(StatusCode.Unavailable, null),
        };
        // The first put meets a node that is not ready (it invalidates the table) just as the master goes away.
        fake.Put = _ => fake.PutCalls.Count == 0
            ? new FakePutCall
            {
                FailOn = (_, index) =>
                {
                    if (index != 0)
                        return null;
                    masterUp = false;
                    return FakeTransport.Error(StatusCode.Unavailable, ErrorKinds.NotReady);
                },
            }
            : new FakePutCall { Respond = _ => new PutResponse { Version = 1 } };
        using var client = Client(fake);

        await client.PutAsync("bkt", "a", new byte[] { 1 });
        for (int i = 0; i < 5; i++)
            await client.PutAsync("bkt", "b" + i, new byte[] { 2 });

        Assert.Equal(7, fake.PutCalls.Count); // one refused attempt, then every put went through with the cached table
        Assert.All(fake.PutCalls, c => Assert.Equal(FakeTransport.Address(0), c.Address));
        Assert.Contains(FakeTransport.Master, fake.Reconnects);
    }

    [Fact]
    public async Task Put_after_a_stale_epoch_refreshes_the_config_reuses_the_request_id_and_rewinds_the_source()
    {
        var config = FakeTransport.Cluster(1, 3, version: 1, epoch: 1);
        var fake = new FakeTransport { ConfigSource = () => config };
        fake.Put = _ => fake.PutCalls.Count == 0
            ? new FakePutCall
            {
                FailOn = (message, index) =>
                {
                    if (index != 2)
                        return null;
                    config = FakeTransport.Cluster(1, 3, version: 2, epoch: 2, nodeOffset: 10); // a new chain
                    return FakeTransport.Error(StatusCode.FailedPrecondition, ErrorKinds.StaleEpoch);
                },
            }
            : new FakePutCall { Respond = _ => new PutResponse { Version = 9, Deduplicated = true } };
        using var client = Client(fake);
        var data = TestData.Random(Limits.StreamFrameBytes + 1000);
        var source = new MemoryStream(new byte[100].Concat(data).ToArray()) { Position = 100 };

        var result = await client.PutAsync("bkt", "k", source);

        Assert.Equal(2, fake.PutCalls.Count);
        var (first, second) = (fake.PutCalls[0], fake.PutCalls[1]);
        Assert.Equal(FakeTransport.Address(0), first.Address);
        Assert.Equal(FakeTransport.Address(10), second.Address);
        Assert.Equal(2ul, second.Header.Routing.Epoch);
        Assert.Equal(first.Header.RequestId, second.Header.RequestId);
        Assert.Equal(data, second.Chunks.SelectMany(c => c.Data.ToByteArray()).ToArray());
        Assert.Equal((ulong)data.Length, second.Header.DeclaredSize);
        Assert.Equal(2, fake.ConfigFetches);
        Assert.Equal((9ul, true), (result.Version, result.Deduplicated));
    }

    [Fact]
    public async Task Put_from_a_non_seekable_stream_of_one_chunk_retries_after_content_was_sent()
    {
        // Up to one chunk of an unknown-length stream is read before anything is sent (to choose inline or
        // distributed storage), so even a stream that cannot seek can be sent again.
        var fake = new FakeTransport();
        fake.Put = _ => fake.PutCalls.Count == 0
            ? new FakePutCall { FailOn = (_, index) => index == 1 ? FakeTransport.Error(StatusCode.Unavailable, null, "head died") : null }
            : new FakePutCall();
        using var client = Client(fake);
        var data = TestData.Random(5000);

        var result = await client.PutAsync("bkt", "k", new TrickleStream(data, 100, seekable: false));

        Assert.Equal(2, fake.PutCalls.Count);
        Assert.Equal(fake.PutCalls[0].Header.RequestId, fake.PutCalls[1].Header.RequestId);
        Assert.Equal(data, fake.PutCalls[1].Chunks.SelectMany(c => c.Data.ToByteArray()).ToArray());
        Assert.Equal(data.Length, result.Size);
    }

    [Fact]
    public async Task Put_from_a_non_seekable_stream_retries_when_nothing_was_read_yet()
    {
        var fake = new FakeTransport();
        fake.Put = _ => fake.PutCalls.Count == 0
            ? new FakePutCall { FailOn = (_, index) => index == 0 ? FakeTransport.Error(StatusCode.Unavailable, ErrorKinds.NotReady) : null }
            : new FakePutCall();
        using var client = Client(fake);
        var data = TestData.Random(5000);

        var result = await client.PutAsync("bkt", "k", new TrickleStream(data, 100, seekable: false));

        Assert.Equal(2, fake.PutCalls.Count);
        Assert.Equal((ulong)data.Length, fake.PutCalls[1].Header.DeclaredSize); // known once the one chunk was read
        Assert.Equal(data, fake.PutCalls[1].Chunks.SelectMany(c => c.Data.ToByteArray()).ToArray());
        Assert.Equal(data.Length, result.Size);
    }

    [Fact]
    public async Task Put_to_a_missing_bucket_fails_at_once()
    {
        var fake = new FakeTransport
        {
            Put = _ => new FakePutCall { FailOn = (_, index) => index == 0 ? FakeTransport.Error(StatusCode.NotFound, ErrorKinds.NoSuchBucket) : null },
        };
        using var client = Client(fake);

        var error = await Assert.ThrowsAsync<BucketNotFoundException>(() => client.PutAsync("nope", "k", new byte[10]));

        Assert.Equal("nope", error.Bucket);
        Assert.Single(fake.PutCalls);
    }

    [Fact]
    public async Task Put_stops_sending_once_the_server_has_failed_the_call()
    {
        // The server fails the call after the header, but this transport keeps accepting writes (buffered).
        var fake = new FakeTransport();
        fake.Put = _ => new FakePutCall { FailOn = (_, index) => index == 0 ? FakeTransport.Error(StatusCode.InvalidArgument, ErrorKinds.TooLarge, "too big") : null };
        using var client = Client(fake);

        await Assert.ThrowsAsync<ObjectTooLargeException>(() => client.PutAsync("bkt", "k", new byte[3 * Limits.StreamFrameBytes]));

        Assert.Single(Assert.Single(fake.PutCalls).Messages);
    }

    // ------------------------------------------------------------------ get

    [Fact]
    public async Task Get_writes_verified_data_from_the_tail()
    {
        var data = TestData.Random(2 * Limits.StreamFrameBytes + 3);
        var fake = new FakeTransport
        {
            ConfigSource = () => FakeTransport.Cluster(chains: 2, replicas: 3, epoch: 4),
            Get = (_, _) => Serve(data, 300_000),
        };
        using var client = Client(fake, readFrom: ReadTarget.Tail);
        var destination = new MemoryStream();
        var progress = new Recorder();

        var info = await client.GetAsync("bkt", "some key", destination, progress);

        Assert.Equal(data, destination.ToArray());
        Assert.Equal(data.Length, progress.Values[^1]);
        Assert.Equal(new ObjectInfo("bkt", "some key", data.Length, Convert.ToHexStringLower(SHA256.HashData(data)), 3,
            DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_123), "image/png"), info);
        var call = Assert.Single(fake.CallsTo("Get"));
        int chain = ChainOf("bkt", "some key", 2);
        Assert.Equal(FakeTransport.Address(chain * 3 + 2), call.Address);
        var request = (GetRequest)call.Request;
        Assert.Equal(((uint)chain, 4ul), (request.Routing.ChainId, request.Routing.Epoch));
        Assert.Equal("some key"u8.ToArray(), request.Key.ToByteArray());
    }

    [Fact]
    public async Task GetBytes_returns_the_object()
    {
        var data = TestData.Random(12345);
        var fake = new FakeTransport { Get = (_, _) => Serve(data, 1000) };
        using var client = Client(fake);

        Assert.Equal(data, await client.GetBytesAsync("bkt", "k"));
    }

    [Fact]
    public async Task Get_with_a_wrong_digest_or_size_is_an_integrity_error()
    {
        var data = TestData.Random(5000);
        var fake = new FakeTransport { Get = (_, _) => Serve(data, 1000, digest: new byte[32]) };
        using var client = Client(fake);
        await Assert.ThrowsAsync<IntegrityException>(() => client.GetBytesAsync("bkt", "k"));

        fake.Get = (_, _) => Serve(data, 1000, size: data.Length + 1);
        await Assert.ThrowsAsync<IntegrityException>(() => client.GetBytesAsync("bkt", "k"));

        fake.Get = (_, _) => Serve(data, 1000, size: data.Length - 1);
        await Assert.ThrowsAsync<IntegrityException>(() => client.GetBytesAsync("bkt", "k"));
        Assert.Equal(3, fake.CallsTo("Get").Count());
    }

    private static IEnumerable<GetResponse> FailAfter(IEnumerable<GetResponse> messages, int count, RpcException error)
    {
        foreach (var message in messages.Take(count))
            yield return message;
        throw error;
    }

    [Fact]
    public async Task Get_retry_rewinds_a_seekable_destination_to_where_it_started()
    {
        var data = TestData.Random(10_000);
        var fake = new FakeTransport();
        fake.Get = (_, _) => fake.CallsTo("Get").Count() == 1
            ? FailAfter(Serve(data, 1000), 4, FakeTransport.Error(StatusCode.Unavailable, null))
            : Serve(data, 1000);
        using var client = Client(fake);
        var destination = new MemoryStream();
        destination.Write("HEAD!"u8);
        destination.Write(new byte[50]); // stale bytes beyond the start must go
        destination.Position = 5;

        await client.GetAsync("bkt", "k", destination);

        Assert.Equal("HEAD!"u8.ToArray().Concat(data).ToArray(), destination.ToArray());
        Assert.Equal(2, fake.CallsTo("Get").Count());
    }

    [Fact]
    public async Task Get_into_a_non_seekable_destination_cannot_retry_after_writing()
    {
        var data = TestData.Random(10_000);
        var fake = new FakeTransport { Get = (_, _) => FailAfter(Serve(data, 1000), 3, FakeTransport.Error(StatusCode.Unavailable, null)) };
        using var client = Client(fake);

        var error = await Assert.ThrowsAsync<ChainUnavailableException>(() => client.GetAsync("bkt", "k", new SinkStream()));

        Assert.Contains("rewound", error.Message);
        Assert.Single(fake.CallsTo("Get"));
    }

    [Fact]
    public async Task Get_into_a_non_seekable_destination_retries_when_nothing_was_written()
    {
        var data = TestData.Random(10_000);
        var fake = new FakeTransport();
        fake.Get = (_, _) => fake.CallsTo("Get").Count() == 1
            ? FailAfter(Serve(data, 1000), 1, FakeTransport.Error(StatusCode.FailedPrecondition, ErrorKinds.NotTail))
            : Serve(data, 1000);
        using var client = Client(fake);
        var sink = new SinkStream();

        await client.GetAsync("bkt", "k", sink);

        Assert.Equal(data, sink.Inner.ToArray());
        Assert.Equal(2, fake.ConfigFetches);
    }

    // ------------------------------------------------------------------ CRAQ routing

    [Fact]
    public async Task Reads_spread_over_the_members_and_a_read_at_tail_redirect_goes_to_the_tail_at_once_without_a_refresh()
    {
        var fake = new FakeTransport { ConfigSource = () => FakeTransport.Cluster(chains: 1, replicas: 3) };
        Uri tail = FakeTransport.Address(2);
        fake.Unary = (address, _, _) => address == tail
            ? new StatResponse { Meta = TestData.Meta("k") }
            : throw FakeTransport.Error(StatusCode.FailedPrecondition, ErrorKinds.ReadAtTail);
        // A backoff would take far longer than the deadline: only an immediate retry can succeed.
        using var client = Client(fake, timeoutSeconds: 5, retryBaseDelay: TimeSpan.FromSeconds(30));

        const int reads = 30;
        for (int i = 0; i < reads; i++)
            await client.StatAsync("bkt", "k");

        var addresses = fake.CallsTo("Stat").Select(c => c.Address).ToList();
        Assert.Equal(1, fake.ConfigFetches);
        // Every attempt at another member was followed by one at the tail; each read ended at the tail.
        int redirected = addresses.Count(a => a != tail);
        Assert.Equal(reads + redirected, addresses.Count);
        for (int i = 0; i < addresses.Count; i++)
        {
            if (addresses[i] != tail)
                Assert.Equal(tail, addresses[i + 1]);
        }
        // The first attempts went to more than one member (all 30 at one of three by chance: 3 * 3^-30).
        Assert.True(redirected > 0 && redirected < reads, $"{redirected} of {reads} reads went to the head or middle first");
        Assert.Contains(FakeTransport.Address(0), addresses);
        Assert.Contains(FakeTransport.Address(1), addresses);
    }

    [Fact]
    public async Task Reads_from_the_tail_only_never_go_elsewhere_and_a_second_redirect_refreshes_the_config()
    {
        var fake = new FakeTransport { ConfigSource = () => FakeTransport.Cluster(chains: 1, replicas: 3) };
        int calls = 0;
        fake.Unary = (_, _, _) => ++calls <= 2
            ? throw FakeTransport.Error(StatusCode.FailedPrecondition, ErrorKinds.ReadAtTail)
            : new StatResponse { Meta = TestData.Meta("k") };
        using var client = Client(fake, readFrom: ReadTarget.Tail);

        await client.StatAsync("bkt", "k");

        Assert.All(fake.CallsTo("Stat"), c => Assert.Equal(FakeTransport.Address(2), c.Address));
        Assert.Equal(3, fake.CallsTo("Stat").Count());
        Assert.Equal(2, fake.ConfigFetches);
    }

    // ------------------------------------------------------------------ stat, delete

    [Fact]
    public async Task Stat_of_a_missing_key_is_not_found_without_retries()
    {
        var fake = new FakeTransport { Unary = (_, _, _) => throw FakeTransport.Error(StatusCode.NotFound, ErrorKinds.NoSuchKey) };
        using var client = Client(fake);

        var error = await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.StatAsync("bkt", "missing"));

        Assert.Equal(("bkt", "missing"), (error.Bucket, error.Key));
        Assert.Single(fake.CallsTo("Stat"));
    }

    [Fact]
    public async Task Stat_gives_up_after_MaxAttempts()
    {
        var fake = new FakeTransport { Unary = (_, _, _) => throw FakeTransport.Error(StatusCode.Unavailable, ErrorKinds.NotReady) };
        using var client = Client(fake, maxAttempts: 3);

        var error = await Assert.ThrowsAsync<ChainUnavailableException>(() => client.StatAsync("bkt", "k"));

        Assert.Equal(3, fake.CallsTo("Stat").Count());
        Assert.IsType<RpcException>(error.InnerException);
    }

    [Fact]
    public async Task Delete_retries_with_the_same_request_id_after_refreshing_the_config()
    {
        var fake = new FakeTransport { ConfigSource = () => FakeTransport.Cluster(2, 2) };
        fake.Unary = (_, method, _) => fake.CallsTo("Delete").Count() == 1
            ? throw FakeTransport.Error(StatusCode.Unavailable, null, "connection refused")
            : new DeleteResponse { Existed = true };
        using var client = Client(fake);

        Assert.True(await client.DeleteAsync("bkt", "k"));

        var calls = fake.CallsTo("Delete").ToList();
        Assert.Equal(2, calls.Count);
        var ids = calls.Select(c => ((DeleteRequest)c.Request).RequestId).ToList();
        Assert.Equal(Limits.RequestIdBytes, ids[0].Length);
        Assert.Equal(ids[0], ids[1]);
        Assert.All(calls, c => Assert.Equal(FakeTransport.Address(ChainOf("bkt", "k", 2) * 2), c.Address));
        Assert.Equal(2, fake.ConfigFetches);
    }

    [Fact]
    public async Task Operations_wait_for_a_cluster_that_is_still_forming()
    {
        int fetches = 0;
        var fake = new FakeTransport
        {
            ConfigSource = () => ++fetches < 3 ? new ClusterConfig { Version = (ulong)fetches } : FakeTransport.Cluster(1, 1, version: 3),
            Unary = (_, _, _) => new StatResponse { Meta = TestData.Meta("k", 5) },
        };
        using var client = Client(fake);

        var info = await client.StatAsync("bkt", "k");

        Assert.Equal(5, info.Size);
        Assert.Equal(3, fake.ConfigFetches);
    }

    [Fact]
    public async Task Invalid_names_are_rejected_locally()
    {
        var fake = new FakeTransport();
        using var client = Client(fake);

        await Assert.ThrowsAsync<ChainArgumentException>(() => client.StatAsync("Bad_Bucket", "k"));
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.StatAsync("bkt", ""));
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.StatAsync("bkt", "a\0b"));
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.StatAsync("bkt", new string('x', Limits.KeyBytesMax + 1)));
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.StatAsync("bkt", "\uD800"));
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.PutAsync("bkt", "", new byte[1]));
        await Assert.ThrowsAsync<ChainArgumentException>(() => client.CreateBucketAsync("x"));
        Assert.Throws<ChainArgumentException>(() => client.ListAsync("bkt", prefix: "a\0"));
        Assert.Empty(fake.Calls);
    }

    // ------------------------------------------------------------------ list

    [Fact]
    public async Task List_merges_every_chains_pages_from_their_tails()
    {
        const int chains = 3;
        var keys = Enumerable.Range(0, 60).Select(i => $"photos/{i:D2}").Append("photos/é").Append("other/x").ToList();
        var byChain = keys.GroupBy(k => ChainOf("bkt", k, chains)).ToDictionary(g => g.Key, g => g.ToList());
        var fake = new FakeTransport { ConfigSource = () => FakeTransport.Cluster(chains, 2) };
        fake.Unary = (address, method, message) =>
        {
            var request = (ListRequest)message;
            int chain = (int)request.Routing.ChainId;
            Assert.Equal(FakeTransport.Address(chain * 2 + 1), address); // the tail
            Assert.Equal((uint)Limits.ListLimitMax, request.Limit);
            var matching = byChain.GetValueOrDefault(chain, new List<string>())
                .Select(Encoding.UTF8.GetBytes)
                .Where(k => k.AsSpan().StartsWith(request.Prefix.Span))
                .Where(k => k.AsSpan().SequenceCompareTo(request.StartAfter.Span) > 0)
                .OrderBy(k => k, Comparer<byte[]>.Create((a, b) => a.AsSpan().SequenceCompareTo(b)))
                .ToList();
            var response = new ListResponse { Truncated = matching.Count > 4 }; // short pages: the server may return fewer
            response.Objects.AddRange(matching.Take(4).Select(k => TestData.Meta(Encoding.UTF8.GetString(k))));
            return response;
        };
        using var client = Client(fake, readFrom: ReadTarget.Tail);

        var listed = new List<string>();
        await foreach (var info in client.ListAsync("bkt", prefix: "photos/", startAfter: "photos/09"))
            listed.Add(info.Key);

        var expected = keys.Where(k => k.StartsWith("photos/", StringComparison.Ordinal) && string.CompareOrdinal(k, "photos/09") > 0)
            .OrderBy(k => k, StringComparer.Ordinal).ToList();
        Assert.Equal(expected, listed);
        Assert.True(fake.CallsTo("List").Count() > chains);
    }

    // ------------------------------------------------------------------ buckets, status

    [Fact]
    public async Task Bucket_operations_go_to_the_master()
    {
        var existing = new HashSet<string> { "old" };
        var fake = new FakeTransport();
        fake.Unary = (address, method, message) =>
        {
            Assert.Equal(FakeTransport.Master, address);
            var name = ((BucketRequest)message).Name;
            switch (method)
            {
                case "CreateBucket":
                    return new BucketResponse { Existed = !existing.Add(name) };
                case "DeleteBucket" when name == "full":
                    throw FakeTransport.Error(StatusCode.FailedPrecondition, ErrorKinds.BucketNotEmpty, "bucket 'full' is not empty");
                case "DeleteBucket" when !existing.Remove(name):
                    throw FakeTransport.Error(StatusCode.NotFound, ErrorKinds.NoSuchBucket);
                case "DeleteBucket":
                    return new BucketResponse { Existed = true };
                default:
                    throw new InvalidOperationException(method);
            }
        };
        using var client = Client(fake);

        Assert.True(await client.CreateBucketAsync("new"));
        Assert.False(await client.CreateBucketAsync("old"));
        Assert.True(await client.DeleteBucketAsync("old"));
        Assert.False(await client.DeleteBucketAsync("old"));
        var error = await Assert.ThrowsAsync<BucketNotEmptyException>(() => client.DeleteBucketAsync("full"));
        Assert.Equal("bucket 'full' is not empty", error.Message);
        Assert.Equal("full", error.Bucket);
    }

    [Fact]
    public async Task Bucket_list_and_status_come_from_a_fresh_config()
    {
        var config = FakeTransport.Cluster(2, 2, version: 8, epoch: 3);
        config.Buckets.Add(new Chain.Protocol.V1.BucketInfo { Name = "zeta", CreatedUnixMs = 2000 });
        config.Buckets.Add(new Chain.Protocol.V1.BucketInfo { Name = "alpha", CreatedUnixMs = 1000 });
        var fake = new FakeTransport { ConfigSource = () => config };
        using var client = Client(fake);

        var buckets = await client.ListBucketsAsync();
        var status = await client.GetStatusAsync();

        Assert.Equal(new[] { "alpha", "zeta" }, buckets.Select(b => b.Name));
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1000), buckets[0].Created);
        Assert.Equal(2, fake.ConfigFetches);
        Assert.Equal((8ul, 2), (status.ConfigVersion, status.Replicas));
        Assert.Equal(new[] { "n2", "n3" }, status.Chains[1].NodeIds);
        Assert.Equal(3ul, status.Chains[1].Epoch);
        Assert.Equal(4, status.Nodes.Count);
        Assert.Equal(FakeTransport.Address(0).ToString(), status.Nodes[0].Address);
        Assert.True(status.Nodes[0].Alive);
        Assert.Equal(2, status.Buckets.Count);
    }

    [Fact]
    public async Task Status_retries_while_the_master_is_unreachable()
    {
        int fetches = 0;
        var fake = new FakeTransport
        {
            ConfigSource = () => ++fetches < 3 ? throw FakeTransport.Error(StatusCode.Unavailable, null) : FakeTransport.Cluster(1, 1),
        };
        using var client = Client(fake);

        var status = await client.GetStatusAsync();

        Assert.Single(status.Chains);
        Assert.Equal(3, fetches);
    }

    [Fact]
    public async Task Dispose_closes_the_transport_and_later_calls_fail()
    {
        var fake = new FakeTransport();
        var client = Client(fake);
        await client.DisposeAsync();
        client.Dispose();

        Assert.True(fake.Disposed);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.StatAsync("bkt", "k"));
    }
}
