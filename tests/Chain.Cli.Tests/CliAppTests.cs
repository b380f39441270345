using Chain.Client;
using Xunit;

namespace Chain.Cli.Tests;

/// <summary>Runs the CLI in-process against string writers. No cluster: only paths that fail before any RPC.</summary>
public class CliAppTests
{
    internal sealed record Run(int ExitCode, string Out, string Err);

    /// <summary>Command lines in InlineData are written with '|' between arguments.</summary>
    internal static string[] Split(string joined) => joined.Length == 0 ? Array.Empty<string>() : joined.Split('|');

    internal static async Task<Run> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var io = new CliIo
        {
            Out = stdout,
            Err = stderr,
            Console = CliIo.PlainConsole(stdout),
            OpenStandardOutput = () => new MemoryStream(),
            EnvironmentMaster = null,
            // Any RPC goes to a port nobody listens on, quickly: a test reaching it fails with exit 1.
            ClientFactory = master => new ChainClient(new ChainClientOptions
            {
                Master = master,
                OperationTimeout = TimeSpan.FromSeconds(2),
                AttemptTimeout = TimeSpan.FromSeconds(1),
                MaxAttempts = 1,
            }),
        };
        int code = await CliApp.RunAsync(args, io);
        return new Run(code, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("nope")]
    [InlineData("put|bucket-only|file")]
    [InlineData("put|b/k")]
    [InlineData("get|b/|out")]
    [InlineData("rm|/k")]
    [InlineData("stat|b")]
    [InlineData("mb|a/b")]
    [InlineData("ls|/x")]
    [InlineData("up|--nodes|0")]
    [InlineData("up|--port|http")]
    [InlineData("up|--nodes|2|--replicas|3")]
    [InlineData("--master|localhost|status")]
    [InlineData("help|nope")]
    [InlineData("check|--nemesis|gremlins")]
    [InlineData("check|--workload|bank")]
    [InlineData("check|--clients|0")]
    [InlineData("check|--read-from|nowhere")]
    [InlineData("check|--shrink|-1")]
    [InlineData("check|--spec|/nonexistent/spec.json")]
    [InlineData("drill")]
    [InlineData("drill|earthquake")]
    [InlineData("drill|short|--seed|x")]
    [InlineData("drill|short|full")]
    [InlineData("put|b/k|/nonexistent/file|--if-absent|--if-version|3")]
    [InlineData("put|b/k|/nonexistent/file|--if-version|0")]
    [InlineData("put|b/k|/nonexistent/file|--if-version|-1")]
    [InlineData("put|b/k|/nonexistent/file|--if-version|x")]
    [InlineData("put|b/k|/nonexistent/file|--if-version")]
    [InlineData("put|b/k|/nonexistent/file|--if-absent=yes")]
    [InlineData("rm|b/k|--if-version|0")]
    [InlineData("rm|b/k|--if-version|1.5")]
    [InlineData("rm|b/k|--if-absent")]
    [InlineData("get|b/k|out|--if-version|1")]
    [InlineData("backup")]
    [InlineData("backup|a|b")]
    [InlineData("restore")]
    [InlineData("restore|dir|--port|x")]
    public async Task Usage_errors_exit_2_with_an_error_line_and_usage(string joined)
    {
        Run run = await RunAsync(Split(joined));
        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: ", run.Err);
        Assert.Contains("usage: chain", run.Err);
        Assert.Equal("", run.Out);
    }

    [Fact]
    public async Task Usage_of_the_command_is_shown()
    {
        Run run = await RunAsync("put", "just-a-bucket", "file");
        Assert.Contains("usage: chain put BUCKET/KEY FILE", run.Err);
        Assert.Contains("'just-a-bucket'", run.Err);
    }

    [Fact]
    public async Task Help_lists_every_command_and_exits_0()
    {
        Run run = await RunAsync("help");
        Assert.Equal(0, run.ExitCode);
        foreach (string name in CommandLine.Commands.Keys)
            Assert.Contains("  " + name, run.Out);
        Assert.Equal("", run.Err);
    }

    [Fact]
    public async Task Help_on_a_command_shows_its_options()
    {
        Run run = await RunAsync("up", "--help");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("--nodes N", run.Out);
        Assert.Contains("--replicas R", run.Out);
        Assert.Contains("--tracker-port P", run.Out);
    }

    [Fact]
    public async Task Help_documents_the_conditions_and_their_exit_code()
    {
        Run put = await RunAsync("put", "--help");
        Assert.Equal(0, put.ExitCode);
        Assert.Contains("--if-absent", put.Out);
        Assert.Contains("--if-version N", put.Out);
        Assert.Contains("exit 3", put.Out);
        Run rm = await RunAsync("help", "rm");
        Assert.Contains("--if-version N", rm.Out);
        Assert.Contains("3 precondition failed", (await RunAsync("help")).Out);
    }

    [Fact]
    public async Task Put_of_a_missing_file_fails_with_exit_1_and_one_line()
    {
        string missing = Path.Combine(Path.GetTempPath(), "chain-cli-tests-" + Guid.NewGuid().ToString("N"));
        Run run = await RunAsync("put", "b/k", missing);
        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith($"error: cannot read '{missing}'", run.Err);
        Assert.Single(run.Err.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void Typed_client_errors_are_printed_as_their_message()
    {
        var io = new CliIo
        {
            Out = TextWriter.Null,
            Err = TextWriter.Null,
            Console = CliIo.PlainConsole(TextWriter.Null),
            OpenStandardOutput = () => Stream.Null,
        };
        Assert.Equal("object 'b/k' not found", CliApp.Describe(new ObjectNotFoundException("b", "k"), null, io));
        Assert.Equal("bucket 'b' does not exist", CliApp.Describe(new BucketNotFoundException("b"), null, io));
        Assert.Equal(3, CliApp.PreconditionFailed);
    }

    [Theory]
    [InlineData("dir/file.bin", "file.bin")]
    [InlineData("file.bin", "file.bin")]
    public void Get_into_a_directory_uses_the_last_key_segment(string key, string name)
    {
        Assert.Equal(name, CliApp.LocalNameOf(new ObjectPath("b", key)));
    }

    [Theory]
    [InlineData("dir/")]
    [InlineData("dir/..")]
    public void Get_into_a_directory_needs_a_usable_name(string key)
    {
        Assert.Throws<UsageException>(() => CliApp.LocalNameOf(new ObjectPath("b", key)));
    }

    [Theory]
    [InlineData(0, "0 B")]
    [InlineData(1023, "1023 B")]
    [InlineData(1024, "1.0 KiB")]
    [InlineData(104857600, "100.0 MiB")]
    public void Sizes_are_formatted_in_binary_units(long bytes, string text)
    {
        Assert.Equal(text, CliApp.FormatBytes(bytes));
    }
}
