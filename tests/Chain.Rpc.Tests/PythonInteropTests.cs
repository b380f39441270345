using Chain.Rpc.Tests.V1;
using Google.Protobuf;
using Xunit;

namespace Chain.Rpc.Tests;

/// <summary>The test proto, python stubs generated from it, and the python scripts, in a temporary directory.</summary>
public class PythonStubsFixture : IAsyncLifetime
{
    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "chain-rpc-py-" + Guid.NewGuid().ToString("N"));

    public string ClientScript => Path.Combine(Directory, "interop_client.py");

    public string ServerScript => Path.Combine(Directory, "interop_server.py");

    public virtual async Task InitializeAsync()
    {
        await PythonGrpc.EnsureAvailableAsync();
        System.IO.Directory.CreateDirectory(Directory);
        var proto = Path.Combine(Directory, "chain_test.proto");
        await using (var resource = typeof(PythonStubsFixture).Assembly.GetManifestResourceStream("test.proto")
                                    ?? throw new InvalidOperationException("embedded resource test.proto is missing"))
        await using (var file = File.Create(proto))
        {
            await resource.CopyToAsync(file);
        }
        await PythonGrpc.GenerateStubsAsync(proto, Directory);
        await File.WriteAllTextAsync(ClientScript, ClientSource);
        await File.WriteAllTextAsync(ServerScript, ServerSource);
    }

    public virtual Task DisposeAsync()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
        return Task.CompletedTask;
    }

    private const string ClientSource = """
        import sys
        import grpc
        import chain_test_pb2 as pb
        import chain_test_pb2_grpc as rpc

        target, sleep_id = sys.argv[1], sys.argv[2]
        channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
        stub = rpc.TestServiceStub(channel)

        reply = stub.Echo(pb.EchoRequest(text="héllo from python", want_info=True, header_name="x-from"),
                          metadata=(("x-from", "python"),), timeout=10)
        print("ECHO", reply.text, reply.header_value, reply.has_deadline)

        big = stub.Echo(pb.EchoRequest(payload=b"\x01" * 500000), timeout=10)
        print("BIG", len(big.payload))

        indexes = [r.index for r in stub.Count(pb.CountRequest(count=100, payload_size=10), timeout=10)]
        print("COUNT", len(indexes), indexes == list(range(100)))

        total = stub.Sum(iter([pb.SumRequest(value=v) for v in range(1, 11)]), timeout=10)
        print("SUM", total.total, total.count)

        chat = [m.text for m in stub.Chat(iter([pb.ChatMessage(seq=i, text="p%d" % i) for i in range(3)]), timeout=10)]
        print("CHAT", ",".join(chat))

        try:
            stub.Fail(pb.FailRequest(code=5, message="nicht gefunden: ü 100%", trailers={"x-detail": "abc"}), timeout=10)
            print("FAIL none")
        except grpc.RpcError as e:
            print("FAIL", e.code().name, dict(e.trailing_metadata() or ()).get("x-detail"))
            print("FAILDETAIL", e.details())

        try:
            for _ in stub.Count(pb.CountRequest(count=10, fail_after=2, fail_code=10), timeout=10):
                pass
            print("STREAMFAIL none")
        except grpc.RpcError as e:
            print("STREAMFAIL", e.code().name, dict(e.trailing_metadata() or ()).get("x-failed-at"))

        try:
            stub.Sleep(pb.SleepRequest(id=sleep_id), timeout=1.0)
            print("DEADLINE none")
        except grpc.RpcError as e:
            print("DEADLINE", e.code().name)

        try:
            stub.Echo(pb.EchoRequest(payload=b"\x00" * (2 * 1024 * 1024)), timeout=10)
            print("TOOBIG none")
        except grpc.RpcError as e:
            print("TOOBIG", e.code().name)

        try:
            channel.unary_unary("/chain.test.v1.TestService/Nope")(b"", timeout=10)
            print("UNIMPL none")
        except grpc.RpcError as e:
            print("UNIMPL", e.code().name)

        print("DONE")
        """;

    private const string ServerSource = """
        import sys
        import threading
        from concurrent import futures
        import grpc
        import chain_test_pb2 as pb
        import chain_test_pb2_grpc as rpc


        def status(code):
            return next(c for c in grpc.StatusCode if c.value[0] == code)


        class Service(rpc.TestServiceServicer):
            def Echo(self, request, context):
                reply = pb.EchoReply(text="py:" + request.text, payload=request.payload)
                if request.want_info:
                    reply.header_value = dict(context.invocation_metadata()).get(request.header_name, "")
                    reply.has_deadline = context.time_remaining() is not None
                return reply

            def Count(self, request, context):
                for i in range(request.count):
                    if request.fail_after > 0 and i == request.fail_after:
                        context.set_trailing_metadata((("x-failed-at", str(i)),))
                        context.abort(status(request.fail_code), "py failed after %d" % i)
                    yield pb.CountReply(index=i, payload=b"\x00" * request.payload_size)

            def Sum(self, request_iterator, context):
                total = count = 0
                for r in request_iterator:
                    total += r.value
                    count += 1
                return pb.SumReply(total=total, count=count)

            def Chat(self, request_iterator, context):
                for m in request_iterator:
                    yield pb.ChatMessage(seq=m.seq, text="py:" + m.text)

            def Sleep(self, request, context):
                done = threading.Event()
                context.add_callback(done.set)
                if done.wait(30):
                    print("CANCELLED", request.id, flush=True)
                return pb.SleepReply(id=request.id)

            def Fail(self, request, context):
                context.set_trailing_metadata(tuple(request.trailers.items()))
                context.abort(status(request.code), request.message)


        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        rpc.add_TestServiceServicer_to_server(Service(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        print("PORT", port, flush=True)
        sys.stdin.read()
        server.stop(0)
        """;
}

/// <summary>A real gRPC client (Python grpcio) against the C# server.</summary>
public sealed class PythonClientInteropTests(ServerFixture server, PythonStubsFixture python)
    : IClassFixture<ServerFixture>, IClassFixture<PythonStubsFixture>
{
    [Fact]
    public async Task Python_grpc_client_talks_to_the_csharp_server()
    {
        var sleepId = Guid.NewGuid().ToString("N");
        var target = $"{server.Server.Endpoint.Address}:{server.Server.Endpoint.Port}";
        var result = await PythonGrpc.RunScriptAsync(python.ClientScript, [target, sleepId], pythonPath: python.Directory);
        Assert.True(result.ExitCode == 0, result.ToString());

        var lines = result.Lines.ToDictionary(l => l.Split(' ', 2)[0], l => l.Split(' ', 2).ElementAtOrDefault(1) ?? "");
        Assert.True(lines.ContainsKey("DONE"), result.ToString());
        Assert.Equal("héllo from python python True", lines["ECHO"]);
        Assert.Equal("500000", lines["BIG"]);
        Assert.Equal("100 True", lines["COUNT"]);
        Assert.Equal("55 10", lines["SUM"]);
        Assert.Equal("echo:p0,echo:p1,echo:p2", lines["CHAT"]);
        Assert.Equal("NOT_FOUND abc", lines["FAIL"]);
        Assert.Equal("nicht gefunden: ü 100%", lines["FAILDETAIL"]);
        Assert.Equal("ABORTED 2", lines["STREAMFAIL"]);
        Assert.Equal("DEADLINE_EXCEEDED", lines["DEADLINE"]);
        Assert.Equal("RESOURCE_EXHAUSTED", lines["TOOBIG"]);
        Assert.Equal("UNIMPLEMENTED", lines["UNIMPL"]);

        // The python deadline reached the handler as a deadline, and its token fired.
        Assert.NotNull(await server.Service.TokenFired(sleepId).Within());
    }
}

/// <summary>A real gRPC server (Python grpcio) on a free port, printing "PORT n" when it is ready.</summary>
public sealed class PythonServerFixture : PythonStubsFixture
{
    public PythonProcess Process { get; private set; } = null!;

    public RpcChannel Channel { get; private set; } = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        Process = PythonGrpc.StartScript(ServerScript, [], pythonPath: Directory);
        var ready = await Process.WaitForLineAsync(line => line.StartsWith("PORT ", StringComparison.Ordinal));
        Channel = new RpcChannel(new Uri($"http://127.0.0.1:{ready["PORT ".Length..]}"));
    }

    public override async Task DisposeAsync()
    {
        Channel?.Dispose();
        Process?.Dispose();
        await base.DisposeAsync();
    }
}

/// <summary>The C# RpcChannel against a real gRPC server (Python grpcio).</summary>
public sealed class PythonServerInteropTests(PythonServerFixture python) : IClassFixture<PythonServerFixture>
{
    private RpcChannel Channel => python.Channel;

    [Fact]
    public async Task Unary_against_python()
    {
        var reply = await Channel.UnaryAsync(TestMethods.Echo, new EchoRequest { Text = "from C# ✓", WantInfo = true, HeaderName = "x-from" },
            new CallOptions { Headers = new Dictionary<string, string> { ["x-from"] = "csharp" }, Timeout = TimeSpan.FromSeconds(10) }).Within();
        Assert.Equal("py:from C# ✓", reply.Text);
        Assert.Equal("csharp", reply.HeaderValue);
        Assert.True(reply.HasDeadline);

        var big = await Channel.UnaryAsync(TestMethods.Echo, new EchoRequest { Payload = ByteString.CopyFrom(new byte[3_000_000]) }).Within();
        Assert.Equal(3_000_000, big.Payload.Length);
    }

    [Fact]
    public async Task Server_streaming_against_python()
    {
        var indexes = new List<int>();
        await foreach (var reply in Channel.ServerStreamingAsync(TestMethods.Count, new CountRequest { Count = 200, PayloadSize = 100 }))
        {
            indexes.Add(reply.Index);
        }
        Assert.Equal(Enumerable.Range(0, 200), indexes);
    }

    [Fact]
    public async Task Server_streaming_failure_against_python()
    {
        var indexes = new List<int>();
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var reply in Channel.ServerStreamingAsync(TestMethods.Count,
                               new CountRequest { Count = 5, FailAfter = 2, FailCode = (int)StatusCode.Aborted }))
            {
                indexes.Add(reply.Index);
            }
        }).Within();
        Assert.Equal([0, 1], indexes);
        Assert.Equal(StatusCode.Aborted, ex.Status);
        Assert.Equal("py failed after 2", ex.Detail);
        Assert.Equal("2", ex.Trailers["x-failed-at"]);
    }

    [Fact]
    public async Task Error_status_against_python()
    {
        const string message = "kein Zugriff: ü ✓ 100% %41";
        var ex = await Assert.ThrowsAsync<RpcException>(() => Channel.UnaryAsync(TestMethods.Fail, new FailRequest
        {
            Code = (int)StatusCode.PermissionDenied,
            Message = message,
            Trailers = { ["x-reason"] = "policy-7" },
        })).Within();
        Assert.Equal(StatusCode.PermissionDenied, ex.Status);
        Assert.Equal(message, ex.Detail);
        Assert.Equal("policy-7", ex.Trailers["x-reason"]);

        var nope = new Method<EchoRequest, EchoReply>(MethodType.Unary, TestMethods.Service, "Nope", EchoRequest.Parser, EchoReply.Parser);
        var unimplemented = await Assert.ThrowsAsync<RpcException>(() => Channel.UnaryAsync(nope, new EchoRequest())).Within();
        Assert.Equal(StatusCode.Unimplemented, unimplemented.Status);
    }

    [Fact]
    public async Task Client_streaming_and_duplex_against_python()
    {
        using (var call = Channel.ClientStreaming(TestMethods.Sum))
        {
            for (var i = 1; i <= 10; i++)
            {
                await call.RequestStream.WriteAsync(new SumRequest { Value = i }).Within();
            }
            await call.RequestStream.CompleteAsync();
            var sum = await call.ResponseAsync.Within();
            Assert.Equal(55, sum.Total);
        }

        using var chat = Channel.Duplex(TestMethods.Chat);
        await using var responses = chat.ResponseStream.GetAsyncEnumerator();
        for (var i = 0; i < 5; i++)
        {
            await chat.RequestStream.WriteAsync(new ChatMessage { Seq = i, Text = $"c{i}" }).Within();
            Assert.True(await responses.MoveNextAsync().Within());
            Assert.Equal($"py:c{i}", responses.Current.Text);
        }
        await chat.RequestStream.CompleteAsync();
        Assert.False(await responses.MoveNextAsync().Within());
    }

    [Fact]
    public async Task Deadline_against_python()
    {
        var id = Guid.NewGuid().ToString("N");
        var ex = await Assert.ThrowsAsync<RpcException>(() => Channel.UnaryAsync(TestMethods.Sleep, new SleepRequest { Id = id },
            new CallOptions { Timeout = TimeSpan.FromSeconds(1) })).Within();
        Assert.Equal(StatusCode.DeadlineExceeded, ex.Status);
        await python.Process.WaitForLineAsync(line => line == "CANCELLED " + id);
    }
}
