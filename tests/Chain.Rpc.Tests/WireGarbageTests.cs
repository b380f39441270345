using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Chain.Rpc.Tests.V1;
using Google.Protobuf;
using Xunit;

namespace Chain.Rpc.Tests;

/// <summary>
/// Hand-made HTTP/2 requests (plain HttpClient) and raw bytes on the socket: each defect gets the right
/// status (or connection error), and the server keeps serving.
/// </summary>
public sealed class WireGarbageTests(ServerFixture fixture) : IClassFixture<ServerFixture>, IDisposable
{
    private static readonly string EchoPath = TestMethods.Echo.FullName;

    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false })
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(15),
    };

    public void Dispose() => _http.Dispose();

    private sealed record RawResult(int HttpStatus, string? GrpcStatus, string? GrpcMessage, byte[] Body);

    private async Task<RawResult> SendRawAsync(string path, byte[] body, string contentType = "application/grpc",
        HttpMethod? method = null, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(method ?? HttpMethod.Post, new Uri(fixture.Server.Address, path))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        if (method != HttpMethod.Get)
        {
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }
        else
        {
            request.Headers.TryAddWithoutValidation("content-type", contentType);
        }
        request.Headers.TryAddWithoutValidation("te", "trailers");
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        using var response = await _http.SendAsync(request).Within();
        var content = await response.Content.ReadAsByteArrayAsync();
        return new RawResult((int)response.StatusCode,
            Get(response.TrailingHeaders, "grpc-status") ?? Get(response.Headers, "grpc-status"),
            Get(response.TrailingHeaders, "grpc-message") ?? Get(response.Headers, "grpc-message"),
            content);

        static string? Get(HttpHeaders headers, string name) =>
            headers.TryGetValues(name, out var values) ? string.Join(",", values) : null;
    }

    private static byte[] Prefix(byte flag, uint length) =>
        [flag, (byte)(length >> 24), (byte)(length >> 16), (byte)(length >> 8), (byte)length];

    private static byte[] Frame(params byte[] payload) => [.. Prefix(0, (uint)payload.Length), .. payload];

    private async Task AssertStillServingAsync()
    {
        var reply = await fixture.Channel.UnaryAsync(TestMethods.Echo, new EchoRequest { Text = "alive" }).Within();
        Assert.Equal("alive", reply.Text);
    }

    private async Task AssertStatusAsync(byte[] body, StatusCode expected, string messagePart, params (string, string)[] headers)
    {
        var result = await SendRawAsync(EchoPath, body, headers: headers);
        Assert.Equal(200, result.HttpStatus);
        Assert.Equal(((int)expected).ToString(), result.GrpcStatus);
        Assert.Contains(messagePart, GrpcWire.PercentDecode(result.GrpcMessage ?? ""), StringComparison.OrdinalIgnoreCase);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task A_well_formed_raw_request_works()
    {
        var result = await SendRawAsync(EchoPath, GrpcWire.Framed(new EchoRequest { Text = "raw" }, 1000));
        Assert.Equal("0", result.GrpcStatus);
        Assert.Equal("raw", EchoReply.Parser.ParseFrom(result.Body.AsSpan(5)).Text);
    }

    [Fact]
    public Task Truncated_prefix_is_Internal() =>
        AssertStatusAsync([0, 0, 0], StatusCode.Internal, "truncated");

    [Fact]
    public Task Truncated_message_is_Internal() =>
        AssertStatusAsync([.. Prefix(0, 10), 0x0A, 0x01, 0x41], StatusCode.Internal, "truncated");

    [Fact]
    public Task Length_prefix_over_the_limit_is_ResourceExhausted() =>
        AssertStatusAsync([.. Prefix(0, 0x7FFF_FFFF), 1, 2, 3], StatusCode.ResourceExhausted, "exceeds the limit");

    [Fact]
    public Task Length_prefix_just_over_the_limit_is_ResourceExhausted() =>
        AssertStatusAsync(Prefix(0, ServerFixture.ServerLimit + 1), StatusCode.ResourceExhausted, "exceeds the limit");

    [Fact]
    public Task Compressed_flag_without_an_encoding_is_Internal() =>
        AssertStatusAsync([.. Prefix(1, 2), 0x0A, 0x00], StatusCode.Internal, "compression not supported");

    [Fact]
    public Task Compressed_flag_with_an_unsupported_encoding_is_Unimplemented() =>
        AssertStatusAsync([.. Prefix(1, 2), 0x0A, 0x00], StatusCode.Unimplemented, "compression not supported", ("grpc-encoding", "gzip"));

    [Fact]
    public Task Invalid_flag_is_Internal() =>
        AssertStatusAsync([.. Prefix(9, 0)], StatusCode.Internal, "compressed flag");

    [Fact]
    public Task Truncated_protobuf_is_InvalidArgument() =>
        AssertStatusAsync(Frame(0x0A, 0x10, 0x41), StatusCode.InvalidArgument, "failed to parse");

    [Fact]
    public Task Invalid_wire_type_is_InvalidArgument() =>
        AssertStatusAsync(Frame(0x0F, 0x01), StatusCode.InvalidArgument, "failed to parse");

    [Fact]
    public Task Empty_unary_request_is_Internal() =>
        AssertStatusAsync([], StatusCode.Internal, "without a request message");

    [Fact]
    public Task Two_messages_for_a_unary_method_is_Internal() =>
        AssertStatusAsync([.. Frame(), .. Frame()], StatusCode.Internal, "more than one request message");

    [Fact]
    public async Task Wrong_content_type_is_415()
    {
        var result = await SendRawAsync(EchoPath, Frame(), contentType: "text/plain");
        Assert.Equal(415, result.HttpStatus);
        var json = await SendRawAsync(EchoPath, Frame(), contentType: "application/grpc+json");
        Assert.Equal(415, json.HttpStatus);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Application_grpc_proto_is_accepted()
    {
        var result = await SendRawAsync(EchoPath, GrpcWire.Framed(new EchoRequest { Text = "proto" }, 1000), contentType: "application/grpc+proto");
        Assert.Equal("0", result.GrpcStatus);
    }

    [Fact]
    public async Task Unknown_path_is_Unimplemented_and_non_grpc_requests_get_404()
    {
        var result = await SendRawAsync("/no.such.Service/Method", Frame());
        Assert.Equal(200, result.HttpStatus);
        Assert.Equal("12", result.GrpcStatus);

        var plain = await SendRawAsync("/index.html", [], contentType: "text/html");
        Assert.Equal(404, plain.HttpStatus);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Server_enforces_grpc_timeout_by_itself()
    {
        // No local timer here: the status must come from the server's own deadline.
        var id = Guid.NewGuid().ToString("N");
        var result = await SendRawAsync(TestMethods.Sleep.FullName, GrpcWire.Framed(new SleepRequest { Id = id }, 1000),
            headers: ("grpc-timeout", "500m"));
        Assert.Equal(((int)StatusCode.DeadlineExceeded).ToString(), result.GrpcStatus);
        Assert.NotNull(await fixture.Service.TokenFired(id).Within());
    }

    [Fact]
    public async Task Malformed_grpc_timeout_is_ignored()
    {
        var result = await SendRawAsync(EchoPath, GrpcWire.Framed(new EchoRequest { Text = "t", WantInfo = true }, 1000),
            headers: ("grpc-timeout", "soon"));
        Assert.Equal("0", result.GrpcStatus);
        Assert.False(EchoReply.Parser.ParseFrom(result.Body.AsSpan(5)).HasDeadline);
    }

    // ---- raw bytes on the TCP socket ----

    private static readonly byte[] Preface = Encoding.ASCII.GetBytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

    private static byte[] H2Frame(byte type, byte flags, int streamId, byte[] payload) =>
    [
        (byte)(payload.Length >> 16), (byte)(payload.Length >> 8), (byte)payload.Length, type, flags,
        (byte)(streamId >> 24), (byte)(streamId >> 16), (byte)(streamId >> 8), (byte)streamId, .. payload,
    ];

    /// <summary>Sends bytes on a fresh connection and waits until the server closes it.</summary>
    private async Task SendAndExpectCloseAsync(byte[] bytes)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(fixture.Server.Endpoint).Within();
        var stream = client.GetStream();
        try
        {
            await stream.WriteAsync(bytes).AsTask().Within();
        }
        catch (IOException)
        {
            return; // already closed by the server
        }
        using var timeout = new CancellationTokenSource(TestTimeouts.Prompt);
        var buffer = new byte[4096];
        try
        {
            while (await stream.ReadAsync(buffer, timeout.Token) > 0)
            {
                // drain (GOAWAY and the like) until the server closes the connection
            }
        }
        catch (IOException)
        {
            // reset by the server: closed as well
        }
    }

    [Fact]
    public async Task Random_bytes_on_the_socket_do_not_hurt()
    {
        var random = new Random(1234);
        for (var i = 0; i < 5; i++)
        {
            var garbage = new byte[1 + random.Next(8192)];
            random.NextBytes(garbage);
            await SendAndExpectCloseAsync(garbage);
        }
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Http1_request_on_the_h2c_port_is_refused()
    {
        await SendAndExpectCloseAsync(Encoding.ASCII.GetBytes("POST /chain.test.v1.TestService/Echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Bad_http2_frames_do_not_hurt()
    {
        var settings = H2Frame(0x4, 0, 0, []);
        // HEADERS with an undecodable HPACK block → COMPRESSION_ERROR
        await SendAndExpectCloseAsync([.. Preface, .. settings, .. H2Frame(0x1, 0x5, 1, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])]);
        // DATA on stream 0 → PROTOCOL_ERROR
        await SendAndExpectCloseAsync([.. Preface, .. settings, .. H2Frame(0x0, 0x1, 0, [1, 2, 3, 4])]);
        // a frame whose length exceeds SETTINGS_MAX_FRAME_SIZE → FRAME_SIZE_ERROR
        await SendAndExpectCloseAsync([.. Preface, .. settings, 0xFF, 0xFF, 0xFF, 0x0, 0x0, 0, 0, 0, 1, 0, 0, 0]);
        // a SETTINGS frame with a bad length → FRAME_SIZE_ERROR
        await SendAndExpectCloseAsync([.. Preface, .. H2Frame(0x4, 0, 0, [1, 2, 3])]);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Connections_dropped_mid_request_do_not_hurt()
    {
        // Well-formed HTTP/2 with a gRPC request whose body never finishes, then the socket is closed.
        using (var client = new TcpClient())
        {
            await client.ConnectAsync(fixture.Server.Endpoint).Within();
            var stream = client.GetStream();
            byte[] headerBlock =
            [
                0x83, // :method POST
                0x86, // :scheme http
                0x04, (byte)EchoPath.Length, .. Encoding.ASCII.GetBytes(EchoPath), // :path, literal without indexing
                0x01, 0x09, .. "localhost"u8,                                      // :authority
                0x0F, 0x10, 0x10, .. "application/grpc"u8,                         // content-type (static index 31)
            ];
            await stream.WriteAsync((byte[])[.. Preface, .. H2Frame(0x4, 0, 0, []), .. H2Frame(0x1, 0x4, 1, headerBlock),
                .. H2Frame(0x0, 0, 1, Prefix(0, 100))]).AsTask().Within();
        }
        await AssertStillServingAsync();
    }
}
