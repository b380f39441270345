using System.Text;
using Chain.Client;
using Chain.Harness;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Integration.Tests;

/// <summary>
/// A deposed tail must not serve stale reads: SIGSTOP the tail past its read lease, keep writing through the
/// new tail, SIGCONT it, and read from the old tail directly — with the routing clients had before — at once.
/// </summary>
[Trait("Category", "Integration")]
public sealed class FencingTests : LocalClusterTest
{
    public FencingTests() : base("fence")
    {
    }

    protected override LocalClusterOptions Options(string dataDirectory) =>
        new() { Nodes = 3, Chains = 1, DataDirectory = dataDirectory, FailureTimeout = TimeSpan.FromSeconds(3) };

    [Fact]
    public async Task A_resumed_old_tail_never_returns_a_value_older_than_an_acknowledged_write()
    {
        using ChainClient client = Cluster.CreateClient();
        await client.CreateBucketAsync("fence");
        await client.PutAsync("fence", "key", Encoding.UTF8.GetBytes("v0"));
        ClusterStatus before = await client.GetStatusAsync();
        string tailId = before.Chains[0].NodeIds[^1];
        int tailIndex = Cluster.Nodes.ToList().FindIndex(n => n.Id == tailId);
        Uri tailAddress = new(before.Nodes.Single(n => n.NodeId == tailId).Address);
        var oldRouting = new Routing { ChainId = 0, Epoch = before.Chains[0].Epoch };

        Cluster.SuspendNode(tailIndex);
        bool suspended = true;
        try
        {
            // Writes go on: the client retries until the master has removed the frozen tail.
            string last = "v0";
            for (int i = 1; i <= 5; i++)
            {
                last = $"v{i}";
                await client.PutAsync("fence", "key", Encoding.UTF8.GetBytes(last));
            }
            ClusterStatus after = await client.GetStatusAsync();
            Assert.DoesNotContain(tailId, after.Chains[0].NodeIds);

            Cluster.ResumeNode(tailIndex);
            suspended = false;
            using var channel = new RpcChannel(tailAddress);
            int answered = 0, refused = 0;
            var stale = new List<string>();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(3);
            for (int attempt = 0; attempt < 300 && DateTime.UtcNow < deadline; attempt++)
            {
                foreach (Routing routing in new[] { oldRouting, new Routing { ChainId = 0, Epoch = after.Chains[0].Epoch } })
                {
                    try
                    {
                        var data = new List<byte>();
                        await foreach (GetResponse part in channel.ServerStreamingAsync(StoreMethods.Get,
                            new GetRequest { Routing = routing, Bucket = "fence", Key = ByteString.CopyFromUtf8("key") },
                            new CallOptions { Timeout = TimeSpan.FromSeconds(2) }))
                        {
                            if (part.PartCase == GetResponse.PartOneofCase.Data)
                                data.AddRange(part.Data.ToByteArray());
                        }
                        answered++;
                        string value = Encoding.UTF8.GetString(data.ToArray());
                        if (value != last)
                            stale.Add($"epoch {routing.Epoch}: read {value}, last acknowledged {last}");
                    }
                    catch (RpcException)
                    {
                        refused++;
                    }
                }
            }
            Assert.Empty(stale);
            Assert.True(refused > 0, "the old tail was never even asked while deposed");
            Assert.Equal(last, Encoding.UTF8.GetString(await client.GetBytesAsync("fence", "key")));
            _ = answered;
        }
        finally
        {
            if (suspended)
                Cluster.ResumeNode(tailIndex);
        }
    }
}
