using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace Chain.Agent.Tests;

/// <summary>
/// The peers' data port on real sockets: an agent's <see cref="ChunkWireServer"/> (through <see cref="PeerAgent"/>)
/// and the <see cref="ChunkWireClient"/> against it, and the client against hand-written misbehaving servers.
/// </summary>
public sealed class ChunkWireTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "chain-wire-" + Guid.NewGuid().ToString("N"));
    private PeerAgent _agent = null!;

    public async Task InitializeAsync()
    {
        // No tracker and no reachable master are needed to serve what the cache holds.
        _agent = await PeerAgent.StartAsync(new PeerAgentOptions
        {
            Master = new Uri("http://127.0.0.1:9"),
            CacheDirectory = _directory,
            MaxUploads = 1,
        });
    }

    public async Task DisposeAsync()
    {
        await _agent.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private string DataAddress => _agent.DataEndPoint!.ToString();

    private async Task<byte[]> CacheChunkAsync(int seed, int size)
    {
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        var sha = SHA256.HashData(data);
        Assert.True(await _agent.Cache.PutAsync(sha, data));
        return data;
    }

    [Fact]
    public async Task A_cached_chunk_arrives_whole_and_the_connection_is_reused_after_a_not_found()
    {
        byte[] chunk = await CacheChunkAsync(1, 700_000);
        using var client = new ChunkWireClient();
        var limiter = new RateLimiter(0);

        var missing = await Assert.ThrowsAsync<PeerWireException>(() =>
            client.FetchAsync(DataAddress, SHA256.HashData(new byte[] { 1 }), new byte[10], limiter, _ => { }, CancellationToken.None));
        Assert.Equal(ChunkWire.NotFound, missing.Status);
        Assert.Contains("not cached", missing.Message, StringComparison.Ordinal);

        var buffer = new byte[chunk.Length];
        int lastProgress = 0;
        Assert.True(await client.FetchAsync(DataAddress, SHA256.HashData(chunk), buffer, limiter, n => lastProgress = n, CancellationToken.None));
        Assert.Equal(chunk, buffer);
        Assert.Equal(chunk.Length, lastProgress);
        Assert.Equal(chunk.Length, _agent.BytesUploaded);
        Assert.Equal(0, _agent.UploadsInFlight);
    }

    [Fact]
    public async Task After_a_whole_chunk_the_reused_connection_reads_short_answers_at_once()
    {
        // The body is read with a receive low-water mark (woken per WakeBytes, not per packet); the mark must be back to
        // one byte before the connection is reused, or an answer shorter than it would never wake the reader.
        byte[] big = await CacheChunkAsync(7, 3 * ChunkWireClient.WakeBytes + 123);
        byte[] small = await CacheChunkAsync(8, 100);
        using var client = new ChunkWireClient();
        var limiter = new RateLimiter(0);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var buffer = new byte[big.Length];
        Assert.True(await client.FetchAsync(DataAddress, SHA256.HashData(big), buffer, limiter, _ => { }, deadline.Token));
        Assert.Equal(big, buffer);
        var missing = await Assert.ThrowsAsync<PeerWireException>(() =>
            client.FetchAsync(DataAddress, SHA256.HashData(new byte[] { 2 }), new byte[10], limiter, _ => { }, deadline.Token));
        Assert.Equal(ChunkWire.NotFound, missing.Status);
        var smallBuffer = new byte[small.Length];
        Assert.True(await client.FetchAsync(DataAddress, SHA256.HashData(small), smallBuffer, limiter, _ => { }, deadline.Token));
        Assert.Equal(small, smallBuffer);
        Assert.Equal(1, client.IdleConnections(DataAddress)); // one connection carried all three answers
    }

    [Fact]
    public async Task A_garbage_request_is_answered_bad_request_and_the_port_keeps_serving()
    {
        byte[] chunk = await CacheChunkAsync(2, 4096);
        using (var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await raw.ConnectAsync(_agent.DataEndPoint!);
            var garbage = new byte[ChunkWire.RequestBytes];
            "GET / HTTP/1.1\r\n"u8.CopyTo(garbage);
            await raw.SendAsync(garbage);
            var header = new byte[ChunkWire.HeaderBytes];
            Assert.True(await ChunkWire.ReadExactlyAsync(raw, header, CancellationToken.None));
            Assert.Equal(ChunkWire.BadRequest, header[0]);
            long length = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(1));
            Assert.InRange(length, 1, ChunkWire.MaxMessageBytes);
            await ChunkWire.ReadExactlyAsync(raw, new byte[length], CancellationToken.None);
            // Then the server closes the connection.
            Assert.Equal(0, await raw.ReceiveAsync(new byte[1], SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(10)));
        }

        using var client = new ChunkWireClient();
        var buffer = new byte[chunk.Length];
        Assert.True(await client.FetchAsync(DataAddress, SHA256.HashData(chunk), buffer, new RateLimiter(0), _ => { }, CancellationToken.None));
        Assert.Equal(chunk, buffer);
    }

    [Fact]
    public async Task Beyond_the_upload_cap_a_request_is_refused_busy()
    {
        byte[] chunk = await CacheChunkAsync(3, 4096);
        using var client = new ChunkWireClient();
        // MaxUploads is 1: hold the only slot, as an upload in progress would.
        var service = _agent.PeerServiceForTests!;
        Assert.True(service.TryBeginUpload());
        try
        {
            var busy = await Assert.ThrowsAsync<PeerWireException>(() =>
                client.FetchAsync(DataAddress, SHA256.HashData(chunk), new byte[chunk.Length], new RateLimiter(0), _ => { }, CancellationToken.None));
            Assert.Equal(ChunkWire.Busy, busy.Status);
        }
        finally
        {
            service.EndUpload();
        }
        var buffer = new byte[chunk.Length];
        Assert.True(await client.FetchAsync(DataAddress, SHA256.HashData(chunk), buffer, new RateLimiter(0), _ => { }, CancellationToken.None));
        Assert.Equal(chunk, buffer);
    }

    [Fact]
    public async Task A_peer_announcing_another_size_is_not_read_and_one_cutting_off_fails_the_transfer()
    {
        var sha = SHA256.HashData(new byte[] { 7 });
        using var client = new ChunkWireClient();

        // Announces 5000 bytes for a chunk of 4000: nothing is read into the buffer, the caller sees a lying source.
        await using (var liar = await FakePeer.StartAsync(ChunkWire.Header(ChunkWire.Ok, 5000), new byte[5000]))
        {
            var buffer = new byte[4000];
            Assert.False(await client.FetchAsync(liar.Address, sha, buffer, new RateLimiter(0), _ => { }, CancellationToken.None));
            Assert.All(buffer, b => Assert.Equal(0, b));
        }

        // Announces the right size, sends half and closes.
        await using (var quitter = await FakePeer.StartAsync(ChunkWire.Header(ChunkWire.Ok, 4000), new byte[2000]))
        {
            var cut = await Assert.ThrowsAsync<PeerWireException>(() =>
                client.FetchAsync(quitter.Address, sha, new byte[4000], new RateLimiter(0), _ => { }, CancellationToken.None));
            Assert.Contains("after 2000 of 4000", cut.Message, StringComparison.Ordinal);
        }

        // An error with an absurd message length is refused without reading it.
        await using (var garbler = await FakePeer.StartAsync(ChunkWire.Header(ChunkWire.NotFound, 1L << 40), []))
        {
            await Assert.ThrowsAsync<PeerWireException>(() =>
                client.FetchAsync(garbler.Address, sha, new byte[4000], new RateLimiter(0), _ => { }, CancellationToken.None));
        }

        // Nobody listening: a typed failure, not a socket exception.
        var closed = new TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        string nobody = closed.LocalEndpoint.ToString()!;
        closed.Stop();
        await Assert.ThrowsAsync<PeerWireException>(() =>
            client.FetchAsync(nobody, sha, new byte[4000], new RateLimiter(0), _ => { }, CancellationToken.None));
    }

    /// <summary>Accepts one connection, reads one request, writes the given bytes and closes.</summary>
    private sealed class FakePeer : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly Task _serving;

        private FakePeer(TcpListener listener, Task serving)
        {
            _listener = listener;
            _serving = serving;
        }

        public string Address => _listener.LocalEndpoint.ToString()!;

        public static Task<FakePeer> StartAsync(byte[] header, byte[] body)
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var serving = Task.Run(async () =>
            {
                using var connection = await listener.AcceptSocketAsync();
                await ChunkWire.ReadExactlyAsync(connection, new byte[ChunkWire.RequestBytes], CancellationToken.None);
                try
                {
                    await connection.SendAsync(header);
                    await connection.SendAsync(body);
                    connection.Shutdown(SocketShutdown.Send);
                }
                catch (SocketException)
                {
                    // the client hung up first (it does after a bad header)
                }
            });
            return Task.FromResult(new FakePeer(listener, serving));
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _serving.WaitAsync(TimeSpan.FromSeconds(10));
        }
    }
}
