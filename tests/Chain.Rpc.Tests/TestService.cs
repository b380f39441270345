using System.Collections.Concurrent;
using System.Net;
using Chain.Rpc.Server;
using Chain.Rpc.Tests.V1;
using Google.Protobuf;
using Xunit;

namespace Chain.Rpc.Tests;

/// <summary>Method descriptors of chain.test.v1.TestService (protos/test.proto).</summary>
public static class TestMethods
{
    public const string Service = "chain.test.v1.TestService";

    public static readonly Method<EchoRequest, EchoReply> Echo = new(MethodType.Unary, Service, "Echo", EchoRequest.Parser, EchoReply.Parser);
    public static readonly Method<CountRequest, CountReply> Count = new(MethodType.ServerStreaming, Service, "Count", CountRequest.Parser, CountReply.Parser);
    public static readonly Method<SumRequest, SumReply> Sum = new(MethodType.ClientStreaming, Service, "Sum", SumRequest.Parser, SumReply.Parser);
    public static readonly Method<ChatMessage, ChatMessage> Chat = new(MethodType.DuplexStreaming, Service, "Chat", ChatMessage.Parser, ChatMessage.Parser);
    public static readonly Method<SleepRequest, SleepReply> Sleep = new(MethodType.Unary, Service, "Sleep", SleepRequest.Parser, SleepReply.Parser);
    public static readonly Method<SleepRequest, SleepReply> Park = new(MethodType.DuplexStreaming, Service, "Park", SleepRequest.Parser, SleepReply.Parser);
    public static readonly Method<FailRequest, Empty> Fail = new(MethodType.Unary, Service, "Fail", FailRequest.Parser, Empty.Parser);
}

/// <summary>The C# implementation of the test service; records what the tests need to observe on the server side.</summary>
public sealed class TestServiceImpl
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource<DateTimeOffset?>> _tokenFired = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _waiting = new();

    /// <summary>Texts of every Echo request that reached the handler.</summary>
    public ConcurrentDictionary<string, bool> EchoTexts { get; } = new();

    /// <summary>Completes (with the call's deadline) when the token of the Sleep/Park call with this id fires.</summary>
    public Task<DateTimeOffset?> TokenFired(string id) => Fired(id).Task;

    /// <summary>Completes when the Sleep/Park handler with this id has started waiting for its token.</summary>
    public Task HandlerWaiting(string id) => Waiting(id).Task;

    private TaskCompletionSource Waiting(string id) =>
        _waiting.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    private TaskCompletionSource<DateTimeOffset?> Fired(string id) =>
        _tokenFired.GetOrAdd(id, _ => new TaskCompletionSource<DateTimeOffset?>(TaskCreationOptions.RunContinuationsAsynchronously));

    public void Register(RpcServiceRegistry registry)
    {
        registry.AddUnary(TestMethods.Echo, (request, context) =>
        {
            EchoTexts[request.Text] = true;
            var reply = new EchoReply { Text = request.Text, Payload = request.Payload };
            if (request.WantInfo)
            {
                reply.HasDeadline = context.Deadline is not null;
                reply.Peer = context.Peer;
                reply.HeaderValue = context.GetHeader(request.HeaderName) ?? "";
            }
            return Task.FromResult(reply);
        });

        registry.AddServerStreaming<CountRequest, CountReply>(TestMethods.Count, async (request, writer, context) =>
        {
            var payload = ByteString.CopyFrom(new byte[request.PayloadSize]);
            for (var i = 0; i < request.Count; i++)
            {
                if (request.FailAfter > 0 && i == request.FailAfter)
                {
                    throw new RpcException((StatusCode)request.FailCode, $"failed after {i} replies",
                        new Dictionary<string, string> { ["x-failed-at"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                }
                await writer.WriteAsync(new CountReply { Index = i, Payload = payload }, context.CancellationToken);
            }
        });

        registry.AddClientStreaming<SumRequest, SumReply>(TestMethods.Sum, async (requests, context) =>
        {
            var reply = new SumReply();
            await foreach (var request in requests.WithCancellation(context.CancellationToken))
            {
                reply.Total += request.Value;
                reply.Count++;
            }
            return reply;
        });

        registry.AddDuplex<ChatMessage, ChatMessage>(TestMethods.Chat, async (requests, writer, context) =>
        {
            await foreach (var message in requests)
            {
                if (message.Text == "fail")
                {
                    throw new RpcException(StatusCode.FailedPrecondition, "chat refused",
                        new Dictionary<string, string> { ["x-chat"] = "refused" });
                }
                await writer.WriteAsync(new ChatMessage { Seq = message.Seq, Text = "echo:" + message.Text });
            }
        });

        registry.AddUnary<SleepRequest, SleepReply>(TestMethods.Sleep, async (request, context) =>
        {
            await WaitForTokenAsync(request.Id, context);
            return new SleepReply { Id = request.Id };
        });

        registry.AddDuplex<SleepRequest, SleepReply>(TestMethods.Park, async (requests, writer, context) =>
        {
            await foreach (var request in requests)
            {
                await writer.WriteAsync(new SleepReply { Id = request.Id });
                await WaitForTokenAsync(request.Id, context);
            }
        });

        registry.AddUnary<FailRequest, Empty>(TestMethods.Fail, (request, context) =>
        {
            if (request.Code < 0)
            {
                throw new InvalidOperationException(request.Message);
            }
            throw new RpcException((StatusCode)request.Code, request.Message, request.Trailers);
        });
    }

    private async Task WaitForTokenAsync(string id, ServerCallContext context)
    {
        var fired = Fired(id);
        Waiting(id).TrySetResult();
        try
        {
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
        }
        finally
        {
            if (context.CancellationToken.IsCancellationRequested)
            {
                fired.TrySetResult(context.Deadline);
            }
        }
    }
}

/// <summary>A server with the test service on a free loopback port (limit 1 MiB) and a default channel to it.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    public const int ServerLimit = 1024 * 1024;

    public TestServiceImpl Service { get; } = new();

    public RpcServer Server { get; private set; } = null!;

    public RpcChannel Channel { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var registry = new RpcServiceRegistry();
        Service.Register(registry);
        Server = await RpcServer.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), registry,
            new RpcServerOptions { Limits = new RpcLimits { MaxMessageBytes = ServerLimit } });
        Channel = new RpcChannel(Server.Address);
    }

    public async Task DisposeAsync()
    {
        Channel.Dispose();
        await Server.DisposeAsync();
    }
}

internal static class TestTimeouts
{
    /// <summary>Upper bound for anything that should happen promptly; a failing test fails instead of hanging.</summary>
    public static readonly TimeSpan Prompt = TimeSpan.FromSeconds(15);

    public static Task<T> Within<T>(this Task<T> task) => task.WaitAsync(Prompt);

    public static Task Within(this Task task) => task.WaitAsync(Prompt);

    public static Task<T> Within<T>(this ValueTask<T> task) => task.AsTask().WaitAsync(Prompt);

    public static Task Within(this ValueTask task) => task.AsTask().WaitAsync(Prompt);
}
