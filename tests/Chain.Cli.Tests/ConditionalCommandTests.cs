using Chain.Client;
using Chain.Harness;
using Xunit;

namespace Chain.Cli.Tests;

/// <summary>One single-node cluster of real processes, shared by the conditional put/rm tests.</summary>
public sealed class SingleNodeClusterFixture : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "chain-cli-cond-" + Guid.NewGuid().ToString("N"));

    public LocalCluster Cluster { get; private set; } = null!;

    public string Root => _root;

    public async Task InitializeAsync()
    {
        Cluster = await LocalCluster.StartAsync(new LocalClusterOptions
        {
            Nodes = 1,
            DataDirectory = Path.Combine(_root, "cluster"),
            DeleteDataOnDispose = true,
        }, CancellationToken.None);
        await using var client = new ChainClient(new ChainClientOptions { Master = Cluster.MasterAddress });
        await client.CreateBucketAsync("cond");
    }

    public async Task DisposeAsync()
    {
        await Cluster.DisposeAsync();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>put --if-absent / --if-version and rm --if-version through the CLI, against a real cluster.</summary>
public sealed class ConditionalCommandTests : IClassFixture<SingleNodeClusterFixture>
{
    private readonly SingleNodeClusterFixture _fixture;

    public ConditionalCommandTests(SingleNodeClusterFixture fixture) => _fixture = fixture;

    private sealed record Run(int ExitCode, string Out, string Err, byte[] Data);

    private async Task<Run> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var data = new MemoryStream();
        var io = new CliIo
        {
            Out = stdout,
            Err = stderr,
            Console = CliIo.PlainConsole(stdout),
            OpenStandardOutput = () => data,
            EnvironmentMaster = _fixture.Cluster.MasterAddress.ToString(),
        };
        int code = await CliApp.RunAsync(args, io);
        return new Run(code, stdout.ToString(), stderr.ToString(), data.ToArray());
    }

    private string TempFile(string content)
    {
        Directory.CreateDirectory(_fixture.Root);
        string path = Path.Combine(_fixture.Root, Guid.NewGuid().ToString("N"));
        System.IO.File.WriteAllText(path, content);
        return path;
    }

    private static string Key() => "cond/" + Guid.NewGuid().ToString("N");

    private async Task<string> ContentAsync(string key)
    {
        Run run = await RunAsync("get", key, "-");
        Assert.Equal(0, run.ExitCode);
        return System.Text.Encoding.UTF8.GetString(run.Data);
    }

    private static ulong VersionOf(Run put)
    {
        string line = put.Out.Split('\n').Single(l => l.TrimStart().StartsWith("version:", StringComparison.Ordinal));
        return ulong.Parse(line.Split(':')[1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void AssertPreconditionFailed(Run run)
    {
        Assert.Equal(CliApp.PreconditionFailed, run.ExitCode);
        Assert.StartsWith("error: precondition failed", run.Err);
        Assert.Single(run.Err.TrimEnd('\n').Split('\n'));
        Assert.Equal("", run.Out);
    }

    [Fact]
    public async Task Rb_of_a_bucket_with_objects_fails_with_one_clear_line_and_succeeds_once_it_is_empty()
    {
        Assert.Equal(0, (await RunAsync("mb", "rb-test")).ExitCode);
        Assert.Equal(0, (await RunAsync("put", "rb-test/only", TempFile("x"))).ExitCode);

        Run refused = await RunAsync("rb", "rb-test");
        Assert.Equal(CliApp.Failed, refused.ExitCode);
        Assert.StartsWith("error: bucket 'rb-test' is not empty", refused.Err);
        Assert.Contains("delete its objects first", refused.Err);
        Assert.Single(refused.Err.TrimEnd('\n').Split('\n'));
        Assert.Equal("x", await ContentAsync("rb-test/only"));

        Assert.Equal(0, (await RunAsync("rm", "rb-test/only")).ExitCode);
        Run removed = await RunAsync("rb", "rb-test");
        Assert.Equal(0, removed.ExitCode);
        Assert.Contains("removed bucket 'rb-test'", removed.Out);
    }

    [Fact]
    public async Task Put_if_absent_creates_once_and_then_fails_keeping_the_first_content()
    {
        string key = Key();
        Run first = await RunAsync("put", key, TempFile("first"), "--if-absent");
        Assert.Equal(0, first.ExitCode);

        Run second = await RunAsync("put", key, TempFile("second"), "--if-absent");
        AssertPreconditionFailed(second);
        Assert.Equal("first", await ContentAsync(key));
    }

    [Fact]
    public async Task Put_if_version_replaces_only_the_given_version()
    {
        string key = Key();
        Run first = await RunAsync("put", key, TempFile("one"));
        Assert.Equal(0, first.ExitCode);
        ulong version = VersionOf(first);

        Run wrong = await RunAsync("put", key, TempFile("stale"), "--if-version", (version + 7).ToString(System.Globalization.CultureInfo.InvariantCulture));
        AssertPreconditionFailed(wrong);
        Assert.Equal("one", await ContentAsync(key));

        Run right = await RunAsync("put", key, TempFile("two"), $"--if-version={version}");
        Assert.Equal(0, right.ExitCode);
        Assert.True(VersionOf(right) > version);
        Assert.Equal("two", await ContentAsync(key));

        // The old version is gone: the same condition no longer holds.
        AssertPreconditionFailed(await RunAsync("put", key, TempFile("three"), "--if-version", version.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal("two", await ContentAsync(key));
    }

    [Fact]
    public async Task Put_if_version_of_a_missing_object_fails()
    {
        AssertPreconditionFailed(await RunAsync("put", Key(), TempFile("x"), "--if-version", "1"));
    }

    [Fact]
    public async Task Rm_if_version_deletes_only_the_given_version()
    {
        string key = Key();
        Run put = await RunAsync("put", key, TempFile("doomed"));
        ulong version = VersionOf(put);

        AssertPreconditionFailed(await RunAsync("rm", key, "--if-version", (version + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal("doomed", await ContentAsync(key));

        Run rm = await RunAsync("rm", key, "--if-version", version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(0, rm.ExitCode);
        Assert.Equal($"deleted {key}\n", rm.Out.ReplaceLineEndings("\n"));
        Assert.Equal(1, (await RunAsync("stat", key)).ExitCode);
    }
}
