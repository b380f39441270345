using System.Net;
using System.Net.Sockets;
using Chain.Rpc;

namespace Chain.Client.Tests;

/// <summary>The public constructor wires the real RpcChannel; no server needed to see a refused connection.</summary>
public class RealTransportTests
{
    private static int ClosedPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    [Fact]
    public async Task An_unreachable_master_ends_in_ChainUnavailable_after_the_attempts()
    {
        await using var client = new ChainClient(new ChainClientOptions
        {
            Master = new Uri($"http://127.0.0.1:{ClosedPort()}"),
            MaxAttempts = 3,
            RetryBaseDelay = TimeSpan.FromMilliseconds(10),
            OperationTimeout = TimeSpan.FromSeconds(20),
            AttemptTimeout = TimeSpan.FromSeconds(5),
        });

        var error = await Assert.ThrowsAsync<ChainUnavailableException>(() => client.GetStatusAsync());

        var rpc = Assert.IsType<RpcException>(error.InnerException);
        Assert.Equal(StatusCode.Unavailable, rpc.Status);
        Assert.Contains("3 attempt", error.Message);
    }
}
