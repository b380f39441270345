using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Chain.Agent;

/// <summary>
/// The peers' data port: chunk transfers between agents over plain TCP, one request at a time per connection, kept
/// open for the next. The control plane (tracker, Agent service) stays on RPC; bulk bytes skip HTTP/2 and protobuf
/// framing, and an uncapped upload is one <c>sendfile</c> from the cache file.
/// <para>
/// Request: the 4 bytes <c>CHW1</c>, then the chunk's 32-byte SHA-256. Response: a status byte, an 8-byte
/// little-endian length, then that many bytes: the chunk (status <see cref="Ok"/>) or a UTF-8 message of at most
/// <see cref="MaxMessageBytes"/> (any other status). A malformed request is answered <see cref="BadRequest"/> and the
/// connection closed. The receiver verifies every chunk's SHA-256 before it caches or serves it, as for any source.
/// </para>
/// </summary>
public static class ChunkWire
{
    public const byte Ok = 0;
    public const byte NotFound = 1;
    public const byte Busy = 2;
    public const byte BadRequest = 3;

    public const int RequestBytes = 4 + 32;
    public const int HeaderBytes = 1 + 8;
    public const int MaxMessageBytes = 1024;

    private static ReadOnlySpan<byte> Magic => "CHW1"u8;

    public static byte[] Request(ReadOnlySpan<byte> sha256)
    {
        if (sha256.Length != 32)
            throw new ArgumentException($"a chunk id is 32 bytes, got {sha256.Length}", nameof(sha256));
        var request = new byte[RequestBytes];
        Magic.CopyTo(request);
        sha256.CopyTo(request.AsSpan(4));
        return request;
    }

    /// <summary>The chunk id of a well-formed request; null when the magic is wrong.</summary>
    public static byte[]? ParseRequest(ReadOnlySpan<byte> request) =>
        request.Length == RequestBytes && request[..4].SequenceEqual(Magic) ? request[4..].ToArray() : null;

    public static byte[] Header(byte status, long length)
    {
        var header = new byte[HeaderBytes];
        header[0] = status;
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(1), length);
        return header;
    }

    internal static async Task SendErrorAsync(Socket socket, byte status, string message, CancellationToken ct)
    {
        byte[] text = Encoding.UTF8.GetBytes(message.Length > MaxMessageBytes / 4 ? message[..(MaxMessageBytes / 4)] : message);
        await socket.SendAsync(Header(status, text.Length), SocketFlags.None, ct).ConfigureAwait(false);
        await socket.SendAsync(text, SocketFlags.None, ct).ConfigureAwait(false);
    }

    /// <summary>Reads exactly <paramref name="buffer"/>'s length; false on a clean end of stream before the first byte.</summary>
    internal static async Task<bool> ReadExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken ct)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = await socket.ReceiveAsync(buffer[read..], SocketFlags.None, ct).ConfigureAwait(false);
            if (n == 0)
            {
                if (read == 0)
                    return false;
                throw new PeerWireException($"the connection ended after {read} of {buffer.Length} bytes");
            }
            read += n;
        }
        return true;
    }
}

/// <summary>A peer's data port failed a transfer: refused (busy, not cached), garbled, or cut off. The source failed; nothing was accepted.</summary>
public sealed class PeerWireException(string message, byte status = ChunkWire.Ok) : IOException(message)
{
    /// <summary>The peer's status byte when it answered with an error; <see cref="ChunkWire.Ok"/> for a broken transfer.</summary>
    public byte Status { get; } = status;
}

/// <summary>
/// Serves cached chunks on the data port. Shares the Peer service's upload count and cap (busy beyond it) and the
/// upload rate cap; at most <see cref="MaxConnections"/> connections (more are closed at once); idle connections are
/// closed after <see cref="IdleTimeout"/>, and an upload still unsent after the chunk timeout drops its connection.
/// Stopping closes every connection at once.
/// </summary>
internal sealed class ChunkWireServer : IAsyncDisposable
{
    public const int MaxConnections = 256;
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(2);

    private readonly Socket _listener;
    private readonly ChunkCache _cache;
    private readonly PeerService _uploads;
    private readonly PeerAgentOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<Socket, byte> _connections = new();
    private readonly Task _accepting;

    private ChunkWireServer(Socket listener, ChunkCache cache, PeerService uploads, PeerAgentOptions options)
    {
        _listener = listener;
        _cache = cache;
        _uploads = uploads;
        _options = options;
        EndPoint = (IPEndPoint)listener.LocalEndPoint!;
        _accepting = AcceptLoopAsync();
    }

    public IPEndPoint EndPoint { get; }

    public static ChunkWireServer Start(IPEndPoint listen, ChunkCache cache, PeerService uploads, PeerAgentOptions options)
    {
        var listener = new Socket(listen.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Bind(listen);
            listener.Listen(128);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        return new ChunkWireServer(listener, cache, uploads, options);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket connection;
            try
            {
                connection = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested)
                    return;
                continue; // a connection that failed during accept
            }
            if (_connections.Count >= MaxConnections)
            {
                connection.Dispose();
                continue;
            }
            connection.NoDelay = true;
            _connections[connection] = 0;
            _ = ServeAsync(connection);
        }
    }

    private async Task ServeAsync(Socket connection)
    {
        var request = new byte[ChunkWire.RequestBytes];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                using (var idle = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
                {
                    idle.CancelAfter(IdleTimeout);
                    if (!await ChunkWire.ReadExactlyAsync(connection, request, idle.Token).ConfigureAwait(false))
                        return; // the peer closed its idle connection
                }
                byte[]? sha256 = ChunkWire.ParseRequest(request);
                if (sha256 is null)
                {
                    await ChunkWire.SendErrorAsync(connection, ChunkWire.BadRequest, "not a chunk request (expected CHW1 and a 32-byte SHA-256)", _stop.Token).ConfigureAwait(false);
                    return;
                }
                await ServeChunkAsync(connection, Convert.ToHexStringLower(sha256)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
            // the peer went away, idled out, or this agent is stopping: the connection is dropped
        }
        finally
        {
            _connections.TryRemove(connection, out _);
            connection.Dispose();
        }
    }

    private async Task ServeChunkAsync(Socket connection, string hex)
    {
        // A peer that stops reading must not hold an upload slot for ever: one chunk's upload has the same deadline as
        // a download of one chunk (the connection is dropped when it passes).
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        deadline.CancelAfter(_options.ChunkTimeout);
        var ct = deadline.Token;
        if (!_uploads.TryBeginUpload())
        {
            await ChunkWire.SendErrorAsync(connection, ChunkWire.Busy, $"at the upload cap ({_options.MaxUploads} at once)", ct).ConfigureAwait(false);
            return;
        }
        try
        {
            using var pin = _cache.Pin(hex);
            if (pin is null)
            {
                await ChunkWire.SendErrorAsync(connection, ChunkWire.NotFound, $"chunk {hex} is not cached here", ct).ConfigureAwait(false);
                return;
            }
            string path = _cache.PathOf(hex);
            long size = new FileInfo(path).Length;
            if (!_uploads.UploadsPaced)
            {
                // Uncapped: the kernel copies the file to the socket.
                await connection.SendFileAsync(path, ChunkWire.Header(ChunkWire.Ok, size), ReadOnlyMemory<byte>.Empty, TransmitFileOptions.UseDefaultWorkerThread, ct).ConfigureAwait(false);
                _uploads.Uploaded(size);
                return;
            }
            await connection.SendAsync(ChunkWire.Header(ChunkWire.Ok, size), SocketFlags.None, ct).ConfigureAwait(false);
            await foreach (var frame in _uploads.UploadFramesAsync(hex, size, ct).ConfigureAwait(false))
                await connection.SendAsync(frame, SocketFlags.None, ct).ConfigureAwait(false);
        }
        finally
        {
            _uploads.EndUpload();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
            return;
        _stop.Cancel();
        _listener.Dispose();
        foreach (var connection in _connections.Keys)
            connection.Dispose(); // cut off at once, like a killed process
        try
        {
            await _accepting.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }
}

/// <summary>
/// Fetches chunks from peers' data ports, reusing idle connections (at most <see cref="IdlePerPeer"/> kept per peer).
/// A connection that saw any error or cancellation is closed, never reused.
/// </summary>
internal sealed class ChunkWireClient : IDisposable
{
    public const int IdlePerPeer = 8;
    private const int ReadBytes = 256 * 1024;
    /// <summary>
    /// How many bytes of a chunk's body must be queued before the receiver is woken. Small enough that the kernel
    /// neither raises nor clamps the receive window for it (half the default 128 KiB receive buffer at most).
    /// </summary>
    internal const int WakeBytes = 32 * 1024;
    private const int SolSocket = 1, SoRcvLowat = 18;

    private readonly ConcurrentDictionary<string, ConcurrentBag<Socket>> _idle = new(StringComparer.Ordinal);
    private int _disposed;

    /// <summary>
    /// Reads the chunk <paramref name="sha256"/> of <paramref name="size"/> bytes from <paramref name="dataAddress"/>
    /// (host:port) into <paramref name="buffer"/>, each read paid to <paramref name="downloadLimit"/> and reported to
    /// <paramref name="progress"/>. False when the peer announced another size (a lying peer: nothing read is used);
    /// <see cref="PeerWireException"/> when it refused or broke off.
    /// </summary>
    public async Task<bool> FetchAsync(string dataAddress, ReadOnlyMemory<byte> sha256, Memory<byte> buffer, RateLimiter downloadLimit,
        Action<int> progress, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!IPEndPoint.TryParse(dataAddress, out var endPoint) || endPoint.Port == 0)
            throw new PeerWireException($"bad peer data address '{dataAddress}'");
        var socket = await RentAsync(dataAddress, endPoint, ct).ConfigureAwait(false);
        bool reusable = false;
        int lowWater = 1;
        try
        {
            await socket.SendAsync(ChunkWire.Request(sha256.Span), SocketFlags.None, ct).ConfigureAwait(false);
            var header = new byte[ChunkWire.HeaderBytes];
            if (!await ChunkWire.ReadExactlyAsync(socket, header, ct).ConfigureAwait(false))
                throw new PeerWireException($"peer {dataAddress} closed the connection without answering");
            byte status = header[0];
            long length = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(1));
            if (status != ChunkWire.Ok)
            {
                if (length is < 0 or > ChunkWire.MaxMessageBytes)
                    throw new PeerWireException($"peer {dataAddress} answered status {status} with a {length}-byte message");
                var message = new byte[length];
                await ChunkWire.ReadExactlyAsync(socket, message, ct).ConfigureAwait(false);
                reusable = status != ChunkWire.BadRequest;
                throw new PeerWireException($"peer {dataAddress}: {Encoding.UTF8.GetString(message)}", status);
            }
            if (length != buffer.Length)
                return false;
            int received = 0;
            while (received < buffer.Length)
            {
                int wake = Math.Min(WakeBytes, buffer.Length - received);
                if (wake != lowWater)
                    lowWater = SetReceiveLowWater(socket, wake);
                int n = await socket.ReceiveAsync(buffer.Slice(received, Math.Min(ReadBytes, buffer.Length - received)), SocketFlags.None, ct).ConfigureAwait(false);
                if (n == 0)
                    throw new PeerWireException($"peer {dataAddress} ended the chunk after {received} of {buffer.Length} bytes");
                await downloadLimit.WaitAsync(n, ct).ConfigureAwait(false);
                received += n;
                progress(received);
            }
            if (lowWater != 1)
                lowWater = SetReceiveLowWater(socket, 1); // the next answer's header may be shorter than the mark
            reusable = true;
            return true;
        }
        catch (SocketException e)
        {
            throw new PeerWireException($"peer {dataAddress}: {e.Message}");
        }
        finally
        {
            if (reusable && !ct.IsCancellationRequested)
                Return(dataAddress, socket);
            else
                socket.Dispose();
        }
    }

    /// <summary>
    /// Sets SO_RCVLOWAT (Linux): the socket reports readable only once <paramref name="bytes"/> are queued (or at end of
    /// stream), so a chunk arriving packet by packet over a slow link wakes the receiver once per
    /// <see cref="WakeBytes"/> rather than once per packet or two. Returns the mark now in force (1 where not supported).
    /// </summary>
    private static int SetReceiveLowWater(Socket socket, int bytes)
    {
        if (!OperatingSystem.IsLinux())
            return 1;
        Span<byte> value = stackalloc byte[sizeof(int)];
        BinaryPrimitives.WriteInt32LittleEndian(value, bytes);
        socket.SetRawSocketOption(SolSocket, SoRcvLowat, value);
        return bytes;
    }

    private async Task<Socket> RentAsync(string key, IPEndPoint endPoint, CancellationToken ct)
    {
        if (_idle.TryGetValue(key, out var bag))
        {
            while (bag.TryTake(out var idle))
            {
                // A peer that closed the idle connection (stopped, idled out) left it readable at end of stream.
                if (idle.Connected && !(idle.Poll(0, SelectMode.SelectRead) && idle.Available == 0))
                    return idle;
                idle.Dispose();
            }
        }
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint, ct).ConfigureAwait(false);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new PeerWireException($"peer {key}: {e.Message}");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Idle pooled connections to <paramref name="dataAddress"/> (tests).</summary>
    internal int IdleConnections(string dataAddress) => _idle.TryGetValue(dataAddress, out var bag) ? bag.Count : 0;

    private void Return(string key, Socket socket)
    {
        var bag = _idle.GetOrAdd(key, _ => new ConcurrentBag<Socket>());
        if (Volatile.Read(ref _disposed) != 0 || bag.Count >= IdlePerPeer)
        {
            socket.Dispose();
            return;
        }
        bag.Add(socket);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        foreach (var bag in _idle.Values)
        {
            while (bag.TryTake(out var socket))
                socket.Dispose();
        }
    }
}
