using Chain.Cli;

namespace Chain.Agent.Tests;

/// <summary>`chain get --p2p` and `chain agent status` against a running agent.</summary>
[Collection(ClusterCollection.Name)]
public sealed class CliP2pTests(ClusterFixture fixture)
{
    private static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var io = new CliIo
        {
            Out = stdout,
            Err = stderr,
            Console = CliIo.PlainConsole(stdout),
            OpenStandardOutput = () => new MemoryStream(),
        };
        int code = await CliApp.RunAsync(args, io);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Get_p2p_writes_the_verified_object_and_agent_status_answers()
    {
        var (key, content) = await fixture.PutObjectAsync(seed: 41, size: 1024 * 1024 + 99);
        await using var agent = await PeerAgent.StartAsync(fixture.AgentOptions("cli", tracker: null));
        string agentAddress = agent.Address.ToString().TrimEnd('/');
        string file = Path.Combine(fixture.NewDir("cli-out"), "object.bin");

        var get = await RunAsync("--master", fixture.Cluster.MasterAddress.ToString(), "get", "--p2p", $"{ClusterFixture.Bucket}/{key}", file, "--agent", agentAddress);
        Assert.True(get.Code == 0, get.Err);
        Assert.Equal(content, await File.ReadAllBytesAsync(file));
        Assert.Contains("from peers 0 B, store 1.0 MiB", get.Out);
        Assert.False(File.Exists(file + ".partial"));

        var status = await RunAsync("agent", "status", "--agent", agentAddress);
        Assert.True(status.Code == 0, status.Err);
        Assert.Contains(agent.PeerId, status.Out);
        Assert.Contains("no downloads in progress", status.Out);

        var missing = await RunAsync("--master", fixture.Cluster.MasterAddress.ToString(), "get", "--p2p", $"{ClusterFixture.Bucket}/no-such-key", file + ".2", "--agent", agentAddress);
        Assert.Equal(CliApp.Failed, missing.Code);
        Assert.Contains("not found", missing.Err);
        Assert.False(File.Exists(file + ".2"));
    }
}
