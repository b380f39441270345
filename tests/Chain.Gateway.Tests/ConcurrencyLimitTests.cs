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
        await using var gateway = await GatewayServer.StartAsync(new GatewayOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            Master = fixture.Cluster.MasterAddress,
            MaxConcurrentRequests = 1,
        }, NullLoggerFactory.Instance);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        Assert.Equal(HttpStatusCode.OK, (await http.PutAsync(new Uri(gateway.Address, "/limit-bucket"), null)).StatusCode);

        // Hold the only slot: a PUT whose body never finishes arriving.
        using var held = new TcpClient();
        await held.ConnectAsync(IPAddress.Loopback, gateway.Address.Port);
        NetworkStream stream = held.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"PUT /limit-bucket/slow HTTP/1.1\r\nHost: {gateway.Address.Authority}\r\nContent-Length: 1000\r\n\r\nabc"));
        await stream.FlushAsync();

        HttpResponseMessage? refused = await WaitForStatusAsync(http, gateway.Address, HttpStatusCode.ServiceUnavailable);
        Assert.True(refused is not null, "no 503 while the slot was held");
        Assert.Equal("SlowDown", await GatewayFixture.ErrorCodeAsync(refused));

        held.Close();
        Assert.True(await WaitForStatusAsync(http, gateway.Address, HttpStatusCode.OK) is not null, "not served again after the held request ended");
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
