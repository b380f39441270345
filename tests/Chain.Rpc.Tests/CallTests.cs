using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Chain.Rpc.Tests.V1;
using Xunit;

namespace Chain.Rpc.Tests;

public sealed class CallTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private RpcChannel Channel => fixture.Channel;

    [Fact]
    public async Task Unary_round_trip_with_call_information()
    {
        var reply = await Channel.UnaryAsync(TestMethods.Echo,
            new EchoRequest { Text = "hello ✓", WantInfo = true, HeaderName = "x-test-header" },
            new CallOptions { Headers = new Dictionary<string, string> { ["x-test-header"] = "value-42" } }).Within();

        Assert.Equal("hello ✓", reply.Text);
        Assert.Equal("value-42", reply.HeaderValue);
        Assert.False(reply.HasDeadline);
        Assert.StartsWith("ipv4:127.0.0.1:", reply.Peer);

        var withDeadline = await Channel.UnaryAsync(TestMethods.Echo, new EchoRequest { WantInfo = true },
            new CallOptions { Timeout = TimeSpan.FromSeconds(30) }).Within();
        Assert.True(withDeadline.HasDeadline);
    }

    [Fact]
    public async Task Server_streaming_delivers_many_messages_in_order()
    {
        const int count = 5000;
        var next = 0;
        await foreach (var reply in Channel.ServerStreamingAsync(TestMethods.Count, new CountRequest { Count = count, PayloadSize = 16 }))
        {
            Assert.Equal(next++, reply.Index);
            Assert.Equal(16, reply.Payload.Length);
        }
        Assert.Equal(count, next);
    }

    [Fact]
    public async Task Server_streaming_with_no_messages_is_an_empty_sequence()
    {
        // No message: the server answers Trailers-Only with status OK.
        var replies = new List<CountReply>();
        await foreach (var reply in Channel.ServerStreamingAsync(TestMethods.Count, new CountRequest { Count = 0 }))
        {
            replies.Add(reply);
        }
        Assert.Empty(replies);
    }

    [Fact]
    public async Task Server_streaming_is_lazy_and_can_be_left_early()
    {
        var stream = Channel.ServerStreamingAsync(TestMethods.Count, new CountRequest { Count = 1_000_000, PayloadSize = 1000 });
        var seen = 0;
        await foreach (var reply in stream)
        {
            if (++seen == 3)
            {
                break; // disposing the enumerator cancels the call
            }
        }
        Assert.Equal(3, seen);
        var again = await Channel.UnaryAsync(TestMethods.Echo, new EchoRequest { Text = "after early exit" }).Within();
        Assert.Equal("after early exit", again.Text);
    }

    [Fact]
    public async Task Server_streaming_failure_after_some_messages_carries_status_and_trailers()
    {
        var received = new List<int>();
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var reply in Channel.ServerStreamingAsync(TestMethods.Count,
                               new CountRequest { Count = 10, FailAfter = 3, FailCode = (int)StatusCode.Aborted }))
            {
                received.Add(reply.Index);
            }
        }).Within();
        Assert.Equal([0, 1, 2], received);
        Assert.Equal(StatusCode.Aborted, ex.Status);
        Assert.Equal("failed after 3 replies", ex.Detail);
        Assert.Equal("3", ex.Trailers["x-failed-at"]);
    }

    [Fact]
    public async Task Client_streaming_sums_the_request_stream()
    {
        using var call = Channel.ClientStreaming(TestMethods.Sum);
        for (var i = 1; i <= 100; i++)
        {
            await call.RequestStream.WriteAsync(new SumRequest { Value = i }).Within();
        }
        await call.RequestStream.CompleteAsync();
        var reply = await call.ResponseAsync.Within();
        Assert.Equal(5050, reply.Total);
        Assert.Equal(100, reply.Count);
    }

    [Fact]
    public async Task Client_streaming_with_an_empty_request_stream()
    {
        using var call = Channel.ClientStreaming(TestMethods.Sum);
        await call.RequestStream.CompleteAsync();
        var reply = await call.ResponseAsync.Within();
        Assert.Equal(0, reply.Count);
    }

    [Fact]
    public async Task Duplex_interleaves_one_request_one_response()
    {
        using var call = Channel.Duplex(TestMethods.Chat);
        await using var responses = call.ResponseStream.GetAsyncEnumerator();
        for (var i = 0; i < 50; i++)
        {
            // The request stream stays open: each answer can only come back if the transport is full duplex.
            await call.RequestStream.WriteAsync(new ChatMessage { Seq = i, Text = $"m{i}" }).Within();
            Assert.True(await responses.MoveNextAsync().Within());
            Assert.Equal(i, responses.Current.Seq);
            Assert.Equal($"echo:m{i}", responses.Current.Text);
        }
        await call.RequestStream.CompleteAsync();
        Assert.False(await responses.MoveNextAsync().Within());
    }

    [Fact]
    public async Task Writes_after_the_server_ended_the_call_report_its_status()
    {
        using var call = Channel.Duplex(TestMethods.Chat);
        await call.RequestStream.WriteAsync(new ChatMessage { Seq = 1, Text = "hi" }).Within();
        await call.RequestStream.WriteAsync(new ChatMessage { Seq = 2, Text = "fail" }).Within();

        // Nobody reads the responses; the writer still learns why the stream was closed.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        RpcException? writeError = null;
        while (writeError is null && watch.Elapsed < TestTimeouts.Prompt)
        {
            try
            {
                await call.RequestStream.WriteAsync(new ChatMessage { Seq = 3, Text = "more" }).Within();
            }
            catch (RpcException ex)
            {
                writeError = ex;
            }
        }
        Assert.NotNull(writeError);
        Assert.True(writeError.Status == StatusCode.FailedPrecondition, writeError.ToString());
        Assert.Equal("chat refused", writeError.Detail);
        Assert.Equal("refused", writeError.Trailers["x-chat"]);

        var replies = new List<ChatMessage>();
        var ex2 = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var reply in call.ResponseStream)
            {
                replies.Add(reply);
            }
        }).Within();
        Assert.Equal(1, Assert.Single(replies).Seq);
        Assert.Equal(StatusCode.FailedPrecondition, ex2.Status);
        Assert.Equal("chat refused", ex2.Detail);
    }

    [Fact]
    public async Task Duplex_response_stream_can_be_enumerated_only_once()
    {
        using var call = Channel.Duplex(TestMethods.Chat);
        await using var first = call.ResponseStream.GetAsyncEnumerator();
        Assert.Throws<InvalidOperationException>(() => call.ResponseStream.GetAsyncEnumerator());
        await call.RequestStream.CompleteAsync();
        Assert.False(await first.MoveNextAsync().Within());
    }

    [Fact]
    public async Task Writing_after_complete_is_rejected()
    {
        using var call = Channel.ClientStreaming(TestMethods.Sum);
        await call.RequestStream.CompleteAsync();
        await Assert.ThrowsAsync<InvalidOperationException>(() => call.RequestStream.WriteAsync(new SumRequest { Value = 1 }).AsTask()).Within();
        Assert.Equal(0, (await call.ResponseAsync.Within()).Count);
    }

    [Fact]
    public async Task Disposing_a_duplex_call_aborts_it_and_fires_the_handler_token()
    {
        var id = Guid.NewGuid().ToString("N");
        var call = Channel.Duplex(TestMethods.Park);
        await call.RequestStream.WriteAsync(new SleepRequest { Id = id }).Within();
        var responses = call.ResponseStream.GetAsyncEnumerator();
        Assert.True(await responses.MoveNextAsync().Within());
        Assert.Equal(id, responses.Current.Id);

        call.Dispose();

        await fixture.Service.TokenFired(id).Within();
        var ex = await Assert.ThrowsAsync<RpcException>(() => responses.MoveNextAsync().AsTask()).Within();
        Assert.Equal(StatusCode.Cancelled, ex.Status);
    }

    [Fact]
    public async Task Deadline_gives_DeadlineExceeded_quickly_and_fires_the_handler_token()
    {
        var id = Guid.NewGuid().ToString("N");
        var watch = Stopwatch.StartNew();
        var call = Channel.UnaryAsync(TestMethods.Sleep, new SleepRequest { Id = id },
            new CallOptions { Timeout = TimeSpan.FromSeconds(1) });
        await fixture.Service.HandlerWaiting(id).Within();
        var ex = await Assert.ThrowsAsync<RpcException>(() => call).Within();
        watch.Stop();

        Assert.Equal(StatusCode.DeadlineExceeded, ex.Status);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4), $"took {watch.Elapsed}");
        var deadline = await fixture.Service.TokenFired(id).Within();
        Assert.NotNull(deadline); // the server saw the grpc-timeout
    }

    [Fact]
    public async Task Deadline_applies_to_streams_too()
    {
        var id = Guid.NewGuid().ToString("N");
        using var call = Channel.Duplex(TestMethods.Park, new CallOptions { Timeout = TimeSpan.FromSeconds(1) });
        await call.RequestStream.WriteAsync(new SleepRequest { Id = id }).Within();
        await using var responses = call.ResponseStream.GetAsyncEnumerator();
        Assert.True(await responses.MoveNextAsync().Within());
        var ex = await Assert.ThrowsAsync<RpcException>(() => responses.MoveNextAsync().AsTask()).Within();
        Assert.Equal(StatusCode.DeadlineExceeded, ex.Status);
        await fixture.Service.TokenFired(id).Within();
    }

    [Fact]
    public async Task Expired_deadline_fails_without_calling()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => Channel.UnaryAsync(TestMethods.Echo, new EchoRequest { Text = "never" },
            new CallOptions { Timeout = TimeSpan.Zero })).Within();
        Assert.Equal(StatusCode.DeadlineExceeded, ex.Status);
    }

    [Fact]
    public async Task Caller_cancellation_gives_OperationCanceledException_and_fires_the_handler_token()
    {
        var id = Guid.NewGuid().ToString("N");
        using var cts = new CancellationTokenSource();
        var call = Channel.UnaryAsync(TestMethods.Sleep, new SleepRequest { Id = id }, new CallOptions { CancellationToken = cts.Token });
        // Cancel once the handler is running: its token must then fire because the stream was reset.
        await fixture.Service.HandlerWaiting(id).Within();
        cts.Cancel();
        var ex = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call).Within();
        Assert.Equal(cts.Token, ex.CancellationToken);
        await fixture.Service.TokenFired(id).Within();
    }

    [Fact]
    public async Task Enumerator_cancellation_gives_OperationCanceledException()
    {
        using var cts = new CancellationTokenSource();
        var seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var reply in Channel.ServerStreamingAsync(TestMethods.Count, new CountRequest { Count = 1_000_000, PayloadSize = 100 })
                               .WithCancellation(cts.Token))
            {
                if (++seen == 10)
                {
                    cts.Cancel();
                }
            }
        }).Within();
        Assert.Equal(10, seen);
    }

    [Fact]
    public async Task Status_message_and_custom_trailers_round_trip()
    {
        const string message = "nicht gefunden: ü ✓ 日本 100% %41 %zz \"quoted\"\nsecond line";
        var ex = await Assert.ThrowsAsync<RpcException>(() => Channel.UnaryAsync(TestMethods.Fail, new FailRequest
        {
            Code = (int)StatusCode.NotFound,
            Message = message,
            Trailers = { ["x-error-id"] = "abc-123", ["x-retry"] = "no thanks; 100%" },
        })).Within();

        Assert.Equal(StatusCode.NotFound, ex.Status);
        Assert.Equal(message, ex.Detail);
        Assert.Equal("abc-123", ex.Trailers["x-error-id"]);
        Assert.Equal("no thanks; 100%", ex.Trailers["x-retry"]);
        Assert.DoesNotContain(ex.Trailers.Keys, k => k.StartsWith("grpc-", StringComparison.Ordinal) || k == "content-type" || k == "date");
    }

    [Theory]
    [InlineData(StatusCode.Cancelled)]
    [InlineData(StatusCode.InvalidArgument)]
    [InlineData(StatusCode.AlreadyExists)]
    [InlineData(StatusCode.FailedPrecondition)]
    [InlineData(StatusCode.Unavailable)]
    [InlineData(StatusCode.Unauthenticated)]
    public async Task Every_status_code_round_trips(StatusCode code)
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            Channel.UnaryAsync(TestMethods.Fail, new FailRequest { Code = (int)code, Message = code.ToString() })).Within();
        Assert.Equal(code, ex.Status);
        Assert.Equal(code.ToString(), ex.Detail);
    }

    [Fact]
    public async Task Handler_exception_becomes_Internal_with_its_type_and_message()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            Channel.UnaryAsync(TestMethods.Fail, new FailRequest { Code = -1, Message = "boom" })).Within();
        Assert.Equal(StatusCode.Internal, ex.Status);
        Assert.Equal("internal error: System.InvalidOperationException: boom", ex.Detail);
    }

    [Fact]
    public async Task Unknown_method_is_Unimplemented()
    {
        var nope = new Method<EchoRequest, EchoReply>(MethodType.Unary, TestMethods.Service, "Nope", EchoRequest.Parser, EchoReply.Parser);
        var ex = await Assert.ThrowsAsync<RpcException>(() => Channel.UnaryAsync(nope, new EchoRequest())).Within();
        Assert.Equal(StatusCode.Unimplemented, ex.Status);

        var noService = new Method<EchoRequest, EchoReply>(MethodType.Unary, "no.such.Service", "Echo", EchoRequest.Parser, EchoReply.Parser);
        var ex2 = await Assert.ThrowsAsync<RpcException>(() => Channel.UnaryAsync(noService, new EchoRequest())).Within();
        Assert.Equal(StatusCode.Unimplemented, ex2.Status);

        var stream = new Method<EchoRequest, EchoReply>(MethodType.DuplexStreaming, TestMethods.Service, "Nope", EchoRequest.Parser, EchoReply.Parser);
        using var duplex = Channel.Duplex(stream);
        var ex3 = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var unused in duplex.ResponseStream)
            {
            }
        }).Within();
        Assert.Equal(StatusCode.Unimplemented, ex3.Status);
    }

    [Fact]
    public async Task Connection_refused_is_Unavailable()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        using var channel = new RpcChannel(new Uri($"http://127.0.0.1:{port}"));
        var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(TestMethods.Echo, new EchoRequest())).Within();
        Assert.Equal(StatusCode.Unavailable, ex.Status);

        using var call = channel.ClientStreaming(TestMethods.Sum);
        var writeEx = await Assert.ThrowsAsync<RpcException>(() => call.RequestStream.WriteAsync(new SumRequest { Value = 1 }).AsTask()).Within();
        Assert.Equal(StatusCode.Unavailable, writeEx.Status);
        var responseEx = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync).Within();
        Assert.Equal(StatusCode.Unavailable, responseEx.Status);
    }

    [Fact]
    public async Task Two_hundred_concurrent_unary_calls()
    {
        var calls = Enumerable.Range(0, 200)
            .Select(i => Channel.UnaryAsync(TestMethods.Echo, new EchoRequest { Text = $"concurrent-{i}" }))
            .ToArray();
        var replies = await Task.WhenAll(calls).Within();
        for (var i = 0; i < replies.Length; i++)
        {
            Assert.Equal($"concurrent-{i}", replies[i].Text);
        }
    }

    [Fact]
    public async Task Concurrent_streams_on_one_channel()
    {
        var sums = Enumerable.Range(1, 20).Select(async n =>
        {
            using var call = Channel.ClientStreaming(TestMethods.Sum);
            for (var i = 1; i <= n; i++)
            {
                await call.RequestStream.WriteAsync(new SumRequest { Value = i });
            }
            await call.RequestStream.CompleteAsync();
            return (n, (await call.ResponseAsync).Total);
        });
        foreach (var (n, total) in await Task.WhenAll(sums).Within())
        {
            Assert.Equal(n * (n + 1) / 2, total);
        }
    }
}
