using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Chain.Rpc.Server;
using Chain.Rpc.Tests.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using Xunit;

namespace Chain.Rpc.Tests;

/// <summary>Servers of their own: start, options, extra endpoints, logging, graceful and forced stop.</summary>
public sealed class ServerLifecycleTests
{
    private static async Task<(RpcServer Server, TestServiceImpl Service)> StartAsync(RpcServerOptions? options = null)
    {
        var service = new TestServiceImpl();
        var registry = new RpcServiceRegistry();
        service.Register(registry);
        var server = await RpcServer.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), registry, options);
        return (server, service);
    }

    [Fact]
    public async Task Port_zero_binds_a_free_port_and_reports_it()
    {
        var (server, _) = await StartAsync();
        await using (server)
        {
            Assert.NotEqual(0, server.Endpoint.Port);
            Assert.Equal(IPAddress.Loopback, server.Endpoint.Address);
            Assert.Equal(new Uri($"http://127.0.0.1:{server.Endpoint.Port}"), server.Address);
        }
    }

    [Fact]
    public void Registering_a_method_twice_is_rejected()
    {
        var registry = new RpcServiceRegistry();
        registry.AddUnary(TestMethods.Echo, (r, c) => Task.FromResult(new EchoReply()));
        Assert.Throws<InvalidOperationException>(() => registry.AddUnary(TestMethods.Echo, (r, c) => Task.FromResult(new EchoReply())));
    }

    [Fact]
    public async Task Extra_endpoints_are_served_next_to_the_rpc_methods()
    {
        var (server, _) = await StartAsync(new RpcServerOptions
        {
            MapExtraEndpoints = endpoints => endpoints.MapGet("/healthz", () => "ok"),
        });
        await using (server)
        {
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false });
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(server.Address, "/healthz"))
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            };
            using var response = await http.SendAsync(request).Within();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("ok", await response.Content.ReadAsStringAsync());

            using var channel = new RpcChannel(server.Address);
            Assert.Equal("rpc", (await channel.UnaryAsync(TestMethods.Echo, new EchoRequest { Text = "rpc" }).Within()).Text);
        }
    }

    [Fact]
    public async Task Handler_failures_are_logged_to_the_given_logger_factory()
    {
        var provider = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(builder => builder.AddProvider(provider));
        var (server, _) = await StartAsync(new RpcServerOptions { LoggerFactory = loggerFactory });
        await using (server)
        {
            using var channel = new RpcChannel(server.Address);
            await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(TestMethods.Fail, new FailRequest { Code = -1, Message = "logged boom" })).Within();
        }
        Assert.Contains(provider.Entries, e => e.Level == LogLevel.Error && e.Exception?.Message == "logged boom");
    }

    [Fact]
    public async Task Stream_limit_per_connection_spreads_calls_over_more_connections()
    {
        var (server, service) = await StartAsync(new RpcServerOptions { MaxConcurrentStreamsPerConnection = 4 });
        await using (server)
        {
            using var channel = new RpcChannel(server.Address);
            var ids = Enumerable.Range(0, 10).Select(_ => Guid.NewGuid().ToString("N")).ToArray();
            var calls = new List<DuplexCall<SleepRequest, SleepReply>>();
            try
            {
                foreach (var id in ids)
                {
                    calls.Add(await OpenParkedCallAsync(channel, id));
                }
                // All ten are open at once although one connection carries at most four.
                await Task.WhenAll(ids.Select(service.HandlerWaiting)).Within();
            }
            finally
            {
                calls.ForEach(c => c.Dispose());
            }
            await Task.WhenAll(ids.Select(service.TokenFired)).Within();
        }
    }

    /// <summary>
    /// Opens a Park call and waits for its first reply. A stream the server refuses (REFUSED_STREAM: before the
    /// client has seen a new connection's SETTINGS it may exceed the limit) fails with Unavailable and is retried.
    /// </summary>
    private static async Task<DuplexCall<SleepRequest, SleepReply>> OpenParkedCallAsync(RpcChannel channel, string id)
    {
        for (var attempt = 1; ; attempt++)
        {
            var call = channel.Duplex(TestMethods.Park);
            try
            {
                await call.RequestStream.WriteAsync(new SleepRequest { Id = id }).Within();
                var responses = call.ResponseStream.GetAsyncEnumerator();
                Assert.True(await responses.MoveNextAsync().Within());
                return call;
            }
            catch (RpcException ex) when (ex.Status == StatusCode.Unavailable && attempt < 5)
            {
                call.Dispose();
            }
            catch
            {
                call.Dispose();
                throw;
            }
        }
    }

    [Fact]
    public async Task Graceful_stop_lets_calls_in_flight_finish()
    {
        var (server, _) = await StartAsync();
        await using (server)
        {
            using var channel = new RpcChannel(server.Address);
            using var call = channel.Duplex(TestMethods.Chat);
            await using var responses = call.ResponseStream.GetAsyncEnumerator();
            await call.RequestStream.WriteAsync(new ChatMessage { Seq = 1, Text = "before" }).Within();
            Assert.True(await responses.MoveNextAsync().Within());

            var watch = Stopwatch.StartNew();
            var stopping = server.StopAsync(TimeSpan.FromSeconds(20));

            await call.RequestStream.WriteAsync(new ChatMessage { Seq = 2, Text = "during" }).Within();
            Assert.True(await responses.MoveNextAsync().Within());
            Assert.Equal("echo:during", responses.Current.Text);
            await call.RequestStream.CompleteAsync();
            Assert.False(await responses.MoveNextAsync().Within());

            await stopping.Within();
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"stop took {watch.Elapsed}");

            var ex = await Assert.ThrowsAsync<RpcException>(() => channel.UnaryAsync(TestMethods.Echo, new EchoRequest())).Within();
            Assert.Equal(StatusCode.Unavailable, ex.Status);
        }
    }

    [Fact]
    public async Task Stop_after_the_grace_period_aborts_calls_and_fires_their_tokens()
    {
        var (server, service) = await StartAsync();
        await using (server)
        {
            using var channel = new RpcChannel(server.Address);
            var id = Guid.NewGuid().ToString("N");
            var call = channel.UnaryAsync(TestMethods.Sleep, new SleepRequest { Id = id });
            await service.HandlerWaiting(id).Within();

            await server.StopAsync(TimeSpan.FromMilliseconds(200)).Within();

            await service.TokenFired(id).Within();
            var ex = await Assert.ThrowsAsync<RpcException>(() => call).Within();
            Assert.Contains(ex.Status, new[] { StatusCode.Unavailable, StatusCode.Cancelled, StatusCode.Internal });
            await server.StopAsync(); // idempotent
        }
    }

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<(LogLevel Level, string Message, Exception? Exception)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingLoggerProvider owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Entries.Enqueue((logLevel, formatter(state, exception), exception));
        }
    }
}
