using Chain.Rpc.Tests.V1;
using Google.Protobuf;
using Xunit;

namespace Chain.Rpc.Tests;

/// <summary>RpcLimits.MaxMessageBytes on both sides, in both directions. The fixture's server allows 1 MiB.</summary>
public sealed class LimitTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const int ServerLimit = ServerFixture.ServerLimit;

    /// <summary>An Echo request whose serialized size is exactly <paramref name="size"/> bytes.</summary>
    private static EchoRequest EchoOfSize(int size, string text = "")
    {
        var request = new EchoRequest { Text = text };
        var payload = size - request.CalculateSize() - 6;
        while (true)
        {
            request.Payload = ByteString.CopyFrom(new byte[payload]);
            var actual = request.CalculateSize();
            if (actual == size)
            {
                return request;
            }
            payload += size - actual;
        }
    }

    /// <summary>A Count request whose single reply serializes to exactly <paramref name="size"/> bytes.</summary>
    private static CountRequest CountWithReplyOfSize(int size)
    {
        var payload = size - 6;
        while (true)
        {
            var actual = new CountReply { Payload = ByteString.CopyFrom(new byte[payload]) }.CalculateSize();
            if (actual == size)
            {
                return new CountRequest { Count = 1, PayloadSize = payload };
            }
            payload += size - actual;
        }
    }

    private static async Task<List<CountReply>> CollectAsync(IAsyncEnumerable<CountReply> replies)
    {
        var list = new List<CountReply>();
        await foreach (var reply in replies)
        {
            list.Add(reply);
        }
        return list;
    }

    [Fact]
    public async Task Request_exactly_at_the_server_limit_passes_both_ways()
    {
        var request = EchoOfSize(ServerLimit);
        var reply = await fixture.Channel.UnaryAsync(TestMethods.Echo, request).Within();
        Assert.Equal(ServerLimit, reply.CalculateSize());
        Assert.Equal(request.Payload, reply.Payload);
    }

    [Fact]
    public async Task Request_over_the_server_limit_is_ResourceExhausted_and_the_server_keeps_serving()
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            fixture.Channel.UnaryAsync(TestMethods.Echo, EchoOfSize(ServerLimit + 1, "too-big-for-server"))).Within();
        Assert.Equal(StatusCode.ResourceExhausted, ex.Status);
        Assert.False(fixture.Service.EchoTexts.ContainsKey("too-big-for-server"));

        var reply = await fixture.Channel.UnaryAsync(TestMethods.Echo, new EchoRequest { Text = "still here" }).Within();
        Assert.Equal("still here", reply.Text);
    }

    [Fact]
    public async Task Streamed_request_over_the_server_limit_is_ResourceExhausted()
    {
        using var call = fixture.Channel.Duplex(TestMethods.Chat);
        await call.RequestStream.WriteAsync(new ChatMessage { Seq = 1, Text = "small" }).Within();
        try
        {
            await call.RequestStream.WriteAsync(new ChatMessage { Seq = 2, Text = new string('x', ServerLimit + 10) }).Within();
        }
        catch (RpcException ex)
        {
            // The server may already have ended the call while the big message was still being sent.
            Assert.Equal(StatusCode.ResourceExhausted, ex.Status);
        }
        var ex2 = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var unused in call.ResponseStream)
            {
            }
        }).Within();
        Assert.Equal(StatusCode.ResourceExhausted, ex2.Status);
    }

    [Fact]
    public async Task Sending_over_the_client_limit_fails_without_sending()
    {
        using var channel = new RpcChannel(fixture.Server.Address, new RpcLimits { MaxMessageBytes = 64 * 1024 });

        var ok = await channel.UnaryAsync(TestMethods.Echo, EchoOfSize(64 * 1024, "client-at-limit")).Within();
        Assert.Equal("client-at-limit", ok.Text);

        var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(TestMethods.Echo, EchoOfSize(64 * 1024 + 1, "client-over-limit"))).Within();
        Assert.Equal(StatusCode.ResourceExhausted, ex.Status);
        Assert.False(fixture.Service.EchoTexts.ContainsKey("client-over-limit"));

        // On a stream the rejected message is simply not sent; the call goes on.
        using var call = channel.Duplex(TestMethods.Chat);
        var writeEx = await Assert.ThrowsAsync<RpcException>(() =>
            call.RequestStream.WriteAsync(new ChatMessage { Seq = 1, Text = new string('y', 70 * 1024) }).AsTask()).Within();
        Assert.Equal(StatusCode.ResourceExhausted, writeEx.Status);
        await call.RequestStream.WriteAsync(new ChatMessage { Seq = 2, Text = "fits" }).Within();
        await call.RequestStream.CompleteAsync();
        var replies = new List<ChatMessage>();
        await foreach (var reply in call.ResponseStream)
        {
            replies.Add(reply);
        }
        Assert.Equal(2, Assert.Single(replies).Seq);
    }

    [Fact]
    public async Task Receiving_over_the_client_limit_is_ResourceExhausted()
    {
        const int limit = 64 * 1024;
        using var channel = new RpcChannel(fixture.Server.Address, new RpcLimits { MaxMessageBytes = limit });

        var atLimit = await CollectAsync(channel.ServerStreamingAsync(TestMethods.Count, CountWithReplyOfSize(limit))).Within();
        Assert.Equal(limit, Assert.Single(atLimit).CalculateSize());

        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            CollectAsync(channel.ServerStreamingAsync(TestMethods.Count, CountWithReplyOfSize(limit + 1)))).Within();
        Assert.Equal(StatusCode.ResourceExhausted, ex.Status);

        // The channel is fine afterwards.
        var reply = await channel.UnaryAsync(TestMethods.Echo, new EchoRequest { Text = "after" }).Within();
        Assert.Equal("after", reply.Text);
    }

    [Fact]
    public async Task Server_sending_over_its_limit_is_ResourceExhausted()
    {
        var atLimit = await CollectAsync(fixture.Channel.ServerStreamingAsync(TestMethods.Count, CountWithReplyOfSize(ServerLimit))).Within();
        Assert.Single(atLimit);

        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            CollectAsync(fixture.Channel.ServerStreamingAsync(TestMethods.Count, CountWithReplyOfSize(ServerLimit + 1)))).Within();
        Assert.Equal(StatusCode.ResourceExhausted, ex.Status);
    }

    [Fact]
    public async Task Large_messages_stream_quickly()
    {
        // 64 messages of 512 KiB each = 32 MiB through one stream.
        var total = 0L;
        await foreach (var reply in fixture.Channel.ServerStreamingAsync(TestMethods.Count, new CountRequest { Count = 64, PayloadSize = 512 * 1024 }))
        {
            total += reply.Payload.Length;
        }
        Assert.Equal(64L * 512 * 1024, total);
    }
}
