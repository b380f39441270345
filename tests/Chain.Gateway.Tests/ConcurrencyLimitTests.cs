using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;

namespace Chain.Gateway.Tests;

/// <summary>Requests beyond <see cref="GatewayOptions.MaxConcurrentRequests"/> are answered 503 SlowDown, and served again once the slot frees.</summary>
[Collection(GatewayCollection.Name)]
public sealed class ConcurrencyLimitTests(GatewayFixture fixture)
{
    [Fact]
    public async Task BeyondTheLimit_Is503SlowDown_UntilTheHeldRequestEnds()
    {
        // A test-only endpoint holds the only slot until released, so the check does not depend on how any S3
        // handler reads its body.
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var gateway = await GatewayServer.StartAsync(new GatewayOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            Master = fixture.Cluster.MasterAddress,
            MaxConcurrentRequests = 1,
        }, NullLoggerFactory.Instance, endpoints => endpoints.MapGet("/_test/hold", async () =>
        {
            entered.TrySetResult();
            await release.Task;
            return "released";
        }));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(gateway.Address, "/"))).StatusCode);

        Task<HttpResponseMessage> held = await HoldAsync(http, new Uri(gateway.Address, "/_test/hold"), entered.Task);

        HttpResponseMessage refused = await http.GetAsync(new Uri(gateway.Address, "/"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("SlowDown", await GatewayFixture.ErrorCodeAsync(refused));
        HttpResponseMessage refusedPut = await http.PutAsync(new Uri(gateway.Address, "/limit-bucket"), null);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refusedPut.StatusCode);

        release.SetResult();
        Assert.Equal("released", await (await held.WaitAsync(TimeSpan.FromSeconds(20))).Content.ReadAsStringAsync());
        Assert.True(await WaitForStatusAsync(http, gateway.Address, HttpStatusCode.OK) is not null, "not served again after the held request ended");
    }

    /// <summary>
    /// Starts the request that takes the only slot, once it has it. A slot is given back just after its response is
    /// sent, so a request sent the instant the previous response arrived can find it still taken (503 SlowDown, which
    /// S3 clients retry): then try again, a bounded number of times.
    /// </summary>
    private static async Task<Task<HttpResponseMessage>> HoldAsync(HttpClient http, Uri hold, Task entered)
    {
        for (int attempt = 0; attempt < 20; attempt++)
        {
            Task<HttpResponseMessage> held = http.GetAsync(hold);
            if (await Task.WhenAny(entered, held).WaitAsync(TimeSpan.FromSeconds(20)) == entered)
                return held;
            HttpResponseMessage early = await held;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);
            Assert.Equal("SlowDown", await GatewayFixture.ErrorCodeAsync(early));
        }
        throw new Xunit.Sdk.XunitException("the hold request never got the slot in 20 attempts");
    }

    /// <summary>
    /// An upload whose body is still arriving keeps its slot. Waits for the 503 by polling, since nothing signals when
    /// the held request reached its handler; says what the held connection got back if the 503 never came.
    /// </summary>
    [Fact]
    public async Task AnUploadWhoseBodyIsStillArriving_HoldsItsSlot()
    {
        await using var gateway = await GatewayServer.StartAsync(new GatewayOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            Master = fixture.Cluster.MasterAddress,
            MaxConcurrentRequests = 1,
        }, NullLoggerFactory.Instance);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        Assert.Equal(HttpStatusCode.OK, (await http.PutAsync(new Uri(gateway.Address, "/slow-bucket"), null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.PutAsync(new Uri(gateway.Address, "/slow-bucket/warm"), new ByteArrayContent([1, 2, 3]))).StatusCode);

        // Hold the slot with a PUT whose body stops after 3 of 1000 bytes. If the held request itself was refused (the
        // slot of the previous request not yet given back: see HoldAsync), open another; bounded.
        for (int attempt = 0; ; attempt++)
        {
            using var held = new TcpClient();
            await held.ConnectAsync(IPAddress.Loopback, gateway.Address.Port);
            NetworkStream stream = held.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                $"PUT /slow-bucket/slow HTTP/1.1\r\nHost: {gateway.Address.Authority}\r\nContent-Length: 1000\r\n\r\nabc"));
            await stream.FlushAsync();

            HttpResponseMessage? refused = await WaitForStatusAsync(http, gateway.Address, HttpStatusCode.ServiceUnavailable);
            if (refused is null)
            {
                string got = await ReadWhatArrivedAsync(stream);
                Assert.True(got.StartsWith("HTTP/1.1 503", StringComparison.Ordinal) && got.Contains("<Code>SlowDown</Code>", StringComparison.Ordinal),
                    "no 503 while the upload was held; the held request got: " + got);
                Assert.True(attempt < 10, "the held upload was refused in 10 attempts: " + got);
                continue;
            }
            held.Close();
            break;
        }
        Assert.True(await WaitForStatusAsync(http, gateway.Address, HttpStatusCode.OK) is not null, "not served again after the held request ended");
        // Nothing of the cut-off upload was stored.
        HttpStatusCode afterwards = HttpStatusCode.ServiceUnavailable;
        for (int i = 0; i < 50 && afterwards == HttpStatusCode.ServiceUnavailable; i++)
            afterwards = (await http.GetAsync(new Uri(gateway.Address, "/slow-bucket/slow"))).StatusCode;
        Assert.Equal(HttpStatusCode.NotFound, afterwards);
    }

    /// <summary>Whatever the gateway already sent on the held connection (for the failure message).</summary>
    private static async Task<string> ReadWhatArrivedAsync(NetworkStream stream)
    {
        var buffer = new byte[4096];
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        try
        {
            int n = await stream.ReadAsync(buffer, wait.Token);
            return n == 0 ? "(connection closed)" : Encoding.ASCII.GetString(buffer, 0, n);
        }
        catch (OperationCanceledException)
        {
            return "(nothing)";
        }
        catch (IOException e)
        {
            return "(" + e.Message + ")";
        }
    }

    /// <summary>Polls GET / until it answers <paramref name="status"/> (at most 200 tries within 20 s); null if it never did.</summary>
    private static async Task<HttpResponseMessage?> WaitForStatusAsync(HttpClient http, Uri address, HttpStatusCode status)
    {
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 200 && clock.Elapsed < TimeSpan.FromSeconds(20); i++)
        {
            HttpResponseMessage response = await http.GetAsync(new Uri(address, "/"));
            if (response.StatusCode == status)
                return response;
            await Task.Delay(100);
        }
        return null;
    }
}
