using System.Net;
using Chain.Rpc.Tests.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace Chain.Rpc.Tests;

/// <summary>
/// A bare Kestrel app that answers gRPC requests wrongly in every way the client has to cope with.
/// The path's method name selects the misbehaviour.
/// </summary>
public sealed class MisbehavingServerFixture : IAsyncLifetime
{
    private WebApplication? _app;

    public RpcChannel Channel { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.AddLogging();
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
            k.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2));
        _app = builder.Build();
        _app.Run(HandleAsync);
        await _app.StartAsync();
        Channel = new RpcChannel(new Uri(_app.Urls.First()));
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync(new CancellationTokenSource(TimeSpan.Zero).Token);
            await _app.DisposeAsync();
        }
    }

    private static readonly byte[] OkMessage = GrpcWire.Framed(new EchoReply { Text = "ok" }, 1000);

    private static async Task HandleAsync(HttpContext http)
    {
        var name = http.Request.Path.Value!.Split('/').Last();
        var response = http.Response;
        await http.Request.Body.CopyToAsync(Stream.Null);
        switch (name)
        {
            case "NoStatus":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(OkMessage);
                break;
            case "Http503":
                response.StatusCode = 503;
                break;
            case "Http404":
                response.StatusCode = 404;
                break;
            case "Http503WithStatus":
                response.StatusCode = 503;
                response.Headers["grpc-status"] = "9";
                response.Headers["grpc-message"] = "explicit status wins";
                break;
            case "TextHtml":
                response.ContentType = "text/html";
                await response.WriteAsync("<html>not grpc</html>");
                break;
            case "Truncated":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(OkMessage.AsMemory(0, OkMessage.Length - 1));
                response.AppendTrailer("grpc-status", "0");
                break;
            case "Compressed":
                response.ContentType = "application/grpc";
                var compressed = (byte[])OkMessage.Clone();
                compressed[0] = 1;
                await response.Body.WriteAsync(compressed);
                response.AppendTrailer("grpc-status", "0");
                break;
            case "Garbage":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(new byte[] { 0, 0, 0, 0, 2, 0x0F, 0xFF });
                response.AppendTrailer("grpc-status", "0");
                break;
            case "TwoMessages":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(OkMessage);
                await response.Body.WriteAsync(OkMessage);
                response.AppendTrailer("grpc-status", "0");
                break;
            case "OkWithoutMessage":
                response.ContentType = "application/grpc";
                response.Headers["grpc-status"] = "0";
                break;
            case "InvalidStatus":
                response.ContentType = "application/grpc";
                response.Headers["grpc-status"] = "abc";
                break;
            case "UnknownCode":
                response.ContentType = "application/grpc";
                response.Headers["grpc-status"] = "99";
                response.Headers["grpc-message"] = "from the future";
                break;
            case "Reset":
                response.ContentType = "application/grpc";
                await response.Body.WriteAsync(OkMessage);
                await response.Body.FlushAsync();
                http.Abort();
                break;
            default:
                response.StatusCode = 400;
                break;
        }
    }
}

public sealed class MisbehavingServerTests(MisbehavingServerFixture fixture) : IClassFixture<MisbehavingServerFixture>
{
    private static Method<EchoRequest, EchoReply> Bad(string name) =>
        new(MethodType.Unary, "bad.Service", name, EchoRequest.Parser, EchoReply.Parser);

    [Theory]
    [InlineData("NoStatus", StatusCode.Internal, "without a grpc-status")]
    [InlineData("Http503", StatusCode.Unavailable, "HTTP status 503")]
    [InlineData("Http404", StatusCode.Unimplemented, "HTTP status 404")]
    [InlineData("Http503WithStatus", StatusCode.FailedPrecondition, "explicit status wins")]
    [InlineData("TextHtml", StatusCode.Unknown, "content-type")]
    [InlineData("Truncated", StatusCode.Internal, "truncated")]
    [InlineData("Compressed", StatusCode.Internal, "compression not supported")]
    [InlineData("Garbage", StatusCode.Internal, "failed to parse")]
    [InlineData("TwoMessages", StatusCode.Internal, "more than one response message")]
    [InlineData("OkWithoutMessage", StatusCode.Internal, "without a response message")]
    [InlineData("InvalidStatus", StatusCode.Unknown, "invalid grpc-status")]
    [InlineData("UnknownCode", StatusCode.Unknown, "from the future")]
    [InlineData("Reset", StatusCode.Internal, "")]
    public async Task Client_maps_broken_responses_to_statuses(string name, StatusCode expected, string detailPart)
    {
        var ex = await Assert.ThrowsAsync<RpcException>(() => fixture.Channel.UnaryAsync(Bad(name), new EchoRequest())).Within();
        Assert.True(ex.Status == expected, $"expected {expected}, got {ex}");
        Assert.Contains(detailPart, ex.Detail, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Streaming_client_sees_messages_then_the_error()
    {
        var stream = new Method<EchoRequest, EchoReply>(MethodType.ServerStreaming, "bad.Service", "Truncated", EchoRequest.Parser, EchoReply.Parser);
        var ex = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var unused in fixture.Channel.ServerStreamingAsync(stream, new EchoRequest()))
            {
            }
        }).Within();
        Assert.Equal(StatusCode.Internal, ex.Status);

        var two = new Method<EchoRequest, EchoReply>(MethodType.ServerStreaming, "bad.Service", "TwoMessages", EchoRequest.Parser, EchoReply.Parser);
        var texts = new List<string>();
        await foreach (var reply in fixture.Channel.ServerStreamingAsync(two, new EchoRequest()))
        {
            texts.Add(reply.Text);
        }
        Assert.Equal(["ok", "ok"], texts);
    }
}
