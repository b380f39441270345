using System.Net;
using Chain.Rpc.Server;
using Chain.Tracker;

namespace Chain.Agent.Tests;

/// <summary>Agents directed by the real tracker (Chain.Tracker's service on a real RpcServer, in process).</summary>
[Collection(ClusterCollection.Name)]
public sealed class RealTrackerTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Three_agents_and_a_seeder_all_get_the_object_and_peers_serve_part_of_it()
    {
        var (key, content) = await fixture.PutObjectAsync(seed: 31, size: 4 * 1024 * 1024);
        var service = new TrackerService(new TrackerOptions { Seed = 7 }, TimeProvider.System);
        var registry = new RpcServiceRegistry();
        service.Register(registry);
        await using var server = await RpcServer.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), registry);
        using var stop = new CancellationTokenSource();
        var sweeper = service.RunSweeperAsync(stop.Token);

        await using var seeder = await PeerAgent.StartAsync(fixture.AgentOptions("seed", server.Address));
        await ClusterFixture.SeedAsync(seeder, key);
        var agents = new List<PeerAgent>();
        try
        {
            for (int i = 0; i < 3; i++)
                agents.Add(await PeerAgent.StartAsync(fixture.AgentOptions("leech" + i, server.Address)));
            var results = await Task.WhenAll(agents.Select(a => ClusterFixture.FetchAsync(a.Address, key, TimeSpan.FromSeconds(90))));
            foreach (var (data, _, _) in results)
                Assert.Equal(ClusterFixture.Sha(content), ClusterFixture.Sha(data));
            Assert.All(agents, a => Assert.True(a.Downloads.Single().UsedTrackerThroughout));
            ulong fromPeers = (ulong)results.Sum(r => (long)r.Progress.BytesFromPeers);
            Assert.True(fromPeers > 0, "no chunk came from a peer: the tracker never named one");
            Assert.True(seeder.BytesUploaded + agents.Sum(a => a.BytesUploaded) >= (long)fromPeers);

            // `chain agent swarms` shows the tracker's metrics: the object, and every peer with its time to complete.
            var stdout = new StringWriter();
            var io = new Chain.Cli.CliIo { Out = stdout, Err = new StringWriter(), Console = Chain.Cli.CliIo.PlainConsole(stdout), OpenStandardOutput = () => new MemoryStream() };
            Assert.Equal(0, await Chain.Cli.CliApp.RunAsync(["agent", "swarms", "--tracker", server.Address.ToString()], io));
            string shown = stdout.ToString();
            Assert.Contains($"{ClusterFixture.Bucket}/{key}  4.0 MiB", shown);
            Assert.Contains("re-fetched after failed verification 0, 4 of 4 peer(s) complete", shown);
            foreach (var agent in agents.Append(seeder))
                Assert.Matches($@"{agent.PeerId}: \d+/\d+ chunks, .*complete in \d+\.\d s", shown);
        }
        finally
        {
            foreach (var agent in agents)
                await agent.DisposeAsync();
            stop.Cancel();
            try
            {
                await sweeper;
            }
            catch (OperationCanceledException)
            {
            }
        }
    }
}
