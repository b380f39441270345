using System.Diagnostics;
using System.Text;
using Chain.Client;
using Chain.Harness;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Integration.Tests;

/// <summary>
/// The deliberately broken server modes (<c>--unsafe-test-break</c>) that prove the consistency harness catches
/// violations: refused without the opt-in environment variable; with it, <c>ack-before-tail</c> acknowledges a
/// write the tail cannot have and <c>dirty-reads</c> lets a non-tail answer reads. A normal cluster does neither.
/// </summary>
public class TestBreakTests
{
    internal const string AllowVariable = "CHAIN_ALLOW_UNSAFE_TEST_BREAKS";
    internal const string Bucket = "breaks";

    [Theory]
    [InlineData(null, "ack-before-tail", "refused unless CHAIN_ALLOW_UNSAFE_TEST_BREAKS=1")]
    [InlineData("0", "dirty-reads", "refused unless CHAIN_ALLOW_UNSAFE_TEST_BREAKS=1")]
    [InlineData("1", "lose-everything", "unknown --unsafe-test-break mode 'lose-everything'")]
    public async Task The_option_is_refused_without_the_environment_variable_and_for_unknown_modes(string? allow, string mode, string expected)
    {
        string data = Path.Combine(Path.GetTempPath(), "chain-breaks-refused-" + Guid.NewGuid().ToString("N"));
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in new[]
        {
            ServerLocator.Locate(), "node", "--listen", "127.0.0.1:0", "--data", data, "--master", "http://127.0.0.1:9",
            "--node-id", "n1", "--unsafe-test-break", mode,
        })
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment.Remove(AllowVariable);
        if (allow is not null)
            start.Environment[AllowVariable] = allow;

        using var process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"the node did not exit within 60 s; stderr so far: {await stderr}");
        }
        string errors = await stderr;
        Assert.Equal(2, process.ExitCode);
        Assert.Contains(expected, errors, StringComparison.Ordinal);
        Assert.DoesNotContain("READY", await stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("WARNING: UNSAFE TEST BREAK ACTIVE", errors, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(data, "node.rocksdb")), "the refused node opened its data directory");
        if (Directory.Exists(data))
            Directory.Delete(data, recursive: true);
    }

    /// <summary>Everything the node process wrote to stderr so far (the harness appends it to the node's log file).</summary>
    internal static string ReadLog(ServerProcess process)
    {
        using var stream = new FileStream(process.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    internal static string DotnetHost()
    {
        string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        return !string.IsNullOrEmpty(host) && File.Exists(host) ? host : "dotnet";
    }

    internal static LocalClusterOptions ChainOfThree(string dataDirectory) => new()
    {
        Nodes = 3,
        Chains = 1,
        Replicas = 3,
        DataDirectory = dataDirectory,
        // The paused tail must stay in the chain for the whole test.
        FailureTimeout = TimeSpan.FromSeconds(60),
    };

    /// <summary>Node index of chain 0's member at <paramref name="position"/> (0 = head, -1 = tail), with the chain's epoch.</summary>
    internal static async Task<(int Index, ulong Epoch)> MemberAsync(LocalCluster cluster, ChainClient client, int position)
    {
        ClusterStatus status = await client.GetStatusAsync();
        ChainView chain = status.Chains.Single(c => c.ChainId == 0);
        Assert.Equal(3, chain.NodeIds.Count);
        string id = chain.NodeIds[position >= 0 ? position : chain.NodeIds.Count + position];
        return (cluster.Nodes.ToList().FindIndex(n => n.Id == id), chain.Epoch);
    }

    internal static async Task<StatResponse> StatAtAsync(LocalCluster cluster, int nodeIndex, ulong epoch, string key)
    {
        using var channel = new RpcChannel(cluster.Nodes[nodeIndex].Address);
        return await channel.UnaryAsync(StoreMethods.Stat, new StatRequest
        {
            Routing = new Routing { ChainId = 0, Epoch = epoch },
            Bucket = Bucket,
            Key = ByteString.CopyFromUtf8(key),
        }, new CallOptions { Timeout = TimeSpan.FromSeconds(5) });
    }

    /// <summary>
    /// Waits (at most 30 s) until the node holds a read lease, i.e. until a direct stat of an existing key stops
    /// answering Unavailable. A node gets its lease from a heartbeat that carries the master's current configuration
    /// version, so just after the cluster formed or a bucket was created it may briefly hold none.
    /// </summary>
    internal static async Task WaitForReadLeaseAsync(LocalCluster cluster, int nodeIndex, ulong epoch, string existingKey)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await StatAtAsync(cluster, nodeIndex, epoch, existingKey);
                return;
            }
            catch (RpcException e) when (e.Status == StatusCode.Unavailable && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(50);
            }
        }
    }

    internal static async Task<ReplicaStateResponse> ReplicaStateAsync(LocalCluster cluster, int nodeIndex)
    {
        using var channel = new RpcChannel(cluster.Nodes[nodeIndex].Address);
        return await channel.UnaryAsync(AdminMethods.ReplicaState, new ReplicaStateRequest { ChainId = 0 }, new CallOptions { Timeout = TimeSpan.FromSeconds(5) });
    }
}

/// <summary>A cluster whose every node runs with <c>--unsafe-test-break ack-before-tail,dirty-reads</c>.</summary>
public sealed class BrokenClusterTests() : LocalClusterTest("breaks-on")
{
    protected override LocalClusterOptions Options(string dataDirectory)
    {
        LocalClusterOptions options = TestBreakTests.ChainOfThree(dataDirectory);
        options.ExtraNodeArguments = ["--unsafe-test-break", "ack-before-tail,dirty-reads"];
        options.NodeEnvironment = new Dictionary<string, string> { [TestBreakTests.AllowVariable] = "1" };
        return options;
    }

    [Fact]
    public async Task Ack_before_tail_acknowledges_a_write_the_paused_tail_cannot_have_and_dirty_reads_serve_it_from_the_head()
    {
        foreach (NodeProcess node in Cluster.Nodes)
            Assert.Contains("WARNING: UNSAFE TEST BREAK ACTIVE (AckBeforeTail, DirtyReads)", TestBreakTests.ReadLog(node), StringComparison.Ordinal);

        await using ChainClient client = Cluster.CreateClient();
        await client.CreateBucketAsync(TestBreakTests.Bucket);
        await client.PutAsync(TestBreakTests.Bucket, "warm", Encoding.UTF8.GetBytes("before"));
        (int head, ulong epoch) = await TestBreakTests.MemberAsync(Cluster, client, 0);
        (int tail, _) = await TestBreakTests.MemberAsync(Cluster, client, -1);
        await TestBreakTests.WaitForReadLeaseAsync(Cluster, head, epoch, "warm");

        Cluster.SuspendNode(tail);
        try
        {
            // Without the break this put could not complete at all: the tail is stopped and stays in the chain
            // (failure timeout 60 s, longer than the client's 30 s deadline), so the head never gets its ack.
            PutResult put = await client.PutAsync(TestBreakTests.Bucket, "k", Encoding.UTF8.GetBytes("acked-without-the-tail"));

            // The head acknowledged a write the rest of the chain has not acknowledged: its chain-wide ack is behind.
            ReplicaStateResponse headState = await TestBreakTests.ReplicaStateAsync(Cluster, head);
            Assert.True(headState.AppliedSeq >= put.Version, $"head applied {headState.AppliedSeq}, write version {put.Version}");
            Assert.True(headState.AckedSeq < put.Version, $"head's chain-wide ack {headState.AckedSeq} covers the write {put.Version} although the tail is stopped");

            // Dirty read: the head (not the tail) answers, with the write the tail does not hold.
            StatResponse stat = await TestBreakTests.StatAtAsync(Cluster, head, epoch, "k");
            Assert.Equal(put.Version, stat.Meta.Version);
        }
        finally
        {
            Cluster.ResumeNode(tail);
        }
    }
}

/// <summary>
/// The same scenario on a normal cluster: the put waits for the paused tail, and the head (CRAQ) serves only what is
/// committed: the clean object, not the one with the write in flight.
/// </summary>
public sealed class HealthyClusterBreakControlTests() : LocalClusterTest("breaks-off")
{
    protected override LocalClusterOptions Options(string dataDirectory) => TestBreakTests.ChainOfThree(dataDirectory);

    [Fact]
    public async Task Without_the_break_a_put_waits_for_the_paused_tail_and_the_head_serves_only_committed_objects()
    {
        foreach (NodeProcess node in Cluster.Nodes)
            Assert.DoesNotContain("UNSAFE TEST BREAK", TestBreakTests.ReadLog(node), StringComparison.Ordinal);

        await using ChainClient client = Cluster.CreateClient();
        await using ChainClient impatient = Cluster.CreateClient(o => o with
        {
            OperationTimeout = TimeSpan.FromSeconds(3),
            AttemptTimeout = TimeSpan.FromSeconds(3),
            MaxAttempts = 1,
        });
        await client.CreateBucketAsync(TestBreakTests.Bucket);
        PutResult warm = await client.PutAsync(TestBreakTests.Bucket, "warm", Encoding.UTF8.GetBytes("before"));
        (int head, ulong epoch) = await TestBreakTests.MemberAsync(Cluster, client, 0);
        (int tail, _) = await TestBreakTests.MemberAsync(Cluster, client, -1);

        // CRAQ: the head answers for an object it holds clean (acknowledged by the whole chain).
        await TestBreakTests.WaitForReadLeaseAsync(Cluster, head, epoch, "warm");
        Assert.Equal(warm.Version, (await TestBreakTests.StatAtAsync(Cluster, head, epoch, "warm")).Meta.Version);

        Cluster.SuspendNode(tail);
        try
        {
            await Assert.ThrowsAnyAsync<ChainException>(() =>
                impatient.PutAsync(TestBreakTests.Bucket, "k", Encoding.UTF8.GetBytes("must-wait-for-the-tail")));
            ReplicaStateResponse headState = await TestBreakTests.ReplicaStateAsync(Cluster, head);
            Assert.True(headState.AppliedSeq > headState.AckedSeq, "the write should be durable at the head but not acknowledged");
            // The head holds the write durably but the paused tail cannot confirm it: redirected to the tail.
            RpcException redirected = await Assert.ThrowsAsync<RpcException>(() => TestBreakTests.StatAtAsync(Cluster, head, epoch, "k"));
            Assert.Equal(StatusCode.FailedPrecondition, redirected.Status);
            Assert.Equal(ErrorKinds.ReadAtTail, redirected.Trailers[ErrorTrailers.Kind]);
        }
        finally
        {
            Cluster.ResumeNode(tail);
        }
    }
}
