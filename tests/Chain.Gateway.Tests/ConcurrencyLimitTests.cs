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

        Task<HttpResponseMessage> held = http.GetAsync(new Uri(gateway.Address, "/_test/hold"));
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(20));

        HttpResponseMessage refused = await http.GetAsync(new Uri(gateway.Address, "/"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("SlowDown", await GatewayFixture.ErrorCodeAsync(refused));
        HttpResponseMessage refusedPut = await http.PutAsync(new Uri(gateway.Address, "/limit-bucket"), null);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refusedPut.StatusCode);

        release.SetResult();
        Assert.Equal("released", await (await held.WaitAsync(TimeSpan.FromSeconds(20))).Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(gateway.Address, "/"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.PutAsync(new Uri(gateway.Address, "/limit-bucket"), null)).StatusCode);
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

        using var held = new TcpClient();
        await held.ConnectAsync(IPAddress.Loopback, gateway.Address.Port);
        NetworkStream stream = held.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"PUT /slow-bucket/slow HTTP/1.1\r\nHost: {gateway.Address.Authority}\r\nContent-Length: 1000\r\n\r\nabc"));
        await stream.FlushAsync();

        HttpResponseMessage? refused = await WaitForStatusAsync(http, gateway.Address, HttpStatusCode.ServiceUnavailable);
        Assert.True(refused is not null, "no 503 while the upload was held; the held request got: " + await ReadWhatArrivedAsync(stream));

        held.Close();
        Assert.True(await WaitForStatusAsync(http, gateway.Address, HttpStatusCode.OK) is not null, "not served again after the held request ended");
        await Assert.ThrowsAnyAsync<HttpRequestException>(async () =>
            (await http.GetAsync(new Uri(gateway.Address, "/slow-bucket/slow"))).EnsureSuccessStatusCode());
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
