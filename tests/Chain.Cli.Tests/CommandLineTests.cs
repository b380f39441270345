using Xunit;

namespace Chain.Cli.Tests;

public class CommandLineTests
{
    private static ParsedCommand Parse(params string[] args) => CommandLine.Parse(args, environmentMaster: null);

    [Theory]
    [InlineData("b/k", "b", "k")]
    [InlineData("photos/2024/01/a.jpg", "photos", "2024/01/a.jpg")]
    [InlineData("b/k/", "b", "k/")]
    [InlineData("b//k", "b", "/k")]
    [InlineData("b/ spaced key ", "b", " spaced key ")]
    public void ObjectPath_splits_at_the_first_slash(string text, string bucket, string key)
    {
        ObjectPath path = ObjectPath.Parse(text);
        Assert.Equal(bucket, path.Bucket);
        Assert.Equal(key, path.Key);
        Assert.Equal(text, path.ToString());
    }

    [Theory]
    [InlineData("bucket")]
    [InlineData("/key")]
    [InlineData("bucket/")]
    [InlineData("/")]
    [InlineData("")]
    public void ObjectPath_rejects_a_missing_bucket_or_key(string text)
    {
        Assert.Throws<UsageException>(() => ObjectPath.Parse(text));
    }

    [Theory]
    [InlineData("b", "b", "")]
    [InlineData("b/", "b", "")]
    [InlineData("b/logs/2024/", "b", "logs/2024/")]
    public void ListTarget_is_a_bucket_and_an_optional_prefix(string text, string bucket, string prefix)
    {
        Assert.Equal((bucket, prefix), ObjectPath.ParseListTarget(text));
    }

    [Theory]
    [InlineData("")]
    [InlineData("/prefix")]
    public void ListTarget_needs_a_bucket(string text)
    {
        Assert.Throws<UsageException>(() => ObjectPath.ParseListTarget(text));
    }

    [Fact]
    public void Bucket_names_have_no_slash()
    {
        Assert.Equal("demo", ObjectPath.ParseBucket("demo"));
        Assert.Throws<UsageException>(() => ObjectPath.ParseBucket("a/b"));
        Assert.Throws<UsageException>(() => ObjectPath.ParseBucket(""));
    }

    [Fact]
    public void Command_and_positionals_are_parsed()
    {
        ParsedCommand command = Parse("put", "b/dir/k", "file.bin");
        Assert.Equal("put", command.Name);
        Assert.Equal(new[] { "b/dir/k", "file.bin" }, command.Positionals);
        Assert.Equal(new Uri(CommandLine.DefaultMaster), command.Master);
    }

    [Fact]
    public void Master_comes_from_the_option_then_the_environment_then_the_default()
    {
        Assert.Equal(new Uri("http://10.0.0.1:9000"), CommandLine.Parse(new[] { "--master", "http://10.0.0.1:9000", "status" }, "http://env:1").Master);
        Assert.Equal(new Uri("http://10.0.0.1:9000"), CommandLine.Parse(new[] { "status", "--master=http://10.0.0.1:9000" }, null).Master);
        Assert.Equal(new Uri("http://env:1"), CommandLine.Parse(new[] { "status" }, "http://env:1").Master);
        Assert.Equal(new Uri("http://127.0.0.1:7400"), CommandLine.Parse(new[] { "status" }, "").Master);
    }

    [Fact]
    public void Options_may_follow_positionals_and_use_equals()
    {
        ParsedCommand command = Parse("up", "--nodes", "5", "--data=/tmp/x", "--port", "17400");
        Assert.Equal(5, command.IntOption("nodes", 3, 1, 64));
        Assert.Equal("/tmp/x", command.Option("data"));
        Assert.Equal(17400, command.IntOption("port", 7400, 1, 65535));
        Assert.Null(command.IntOption("chains", null, 1, 10));
    }

    [Fact]
    public void Dash_is_a_positional_and_double_dash_ends_options()
    {
        Assert.Equal(new[] { "b/k", "-" }, Parse("get", "b/k", "-").Positionals);
        Assert.Equal(new[] { "b/k", "--odd-name" }, Parse("get", "b/k", "--", "--odd-name").Positionals);
    }

    [Fact]
    public void Flags_take_no_value_and_may_sit_anywhere()
    {
        ParsedCommand command = Parse("put", "--if-absent", "b/k", "file.bin");
        Assert.True(command.Flag("if-absent"));
        Assert.Equal(new[] { "b/k", "file.bin" }, command.Positionals);
        Assert.False(Parse("put", "b/k", "file.bin").Flag("if-absent"));
        Assert.Equal(7UL, CliApp.IfVersionOption(Parse("rm", "b/k", "--if-version", "7")));
        Assert.Null(CliApp.IfVersionOption(Parse("rm", "b/k")));
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    public void Help_flag_anywhere_means_help(string flag)
    {
        Assert.Equal("help", Parse(flag).Name);
        ParsedCommand onPut = Parse("put", flag);
        Assert.Equal("help", onPut.Name);
        Assert.Equal(new[] { "put" }, onPut.Positionals);
    }

    [Theory]
    [InlineData("")]
    [InlineData("frobnicate")]
    [InlineData("put|b/k")]
    [InlineData("put|b/k|f|extra")]
    [InlineData("get|b/k")]
    [InlineData("rm")]
    [InlineData("ls|a|b")]
    [InlineData("status|extra")]
    [InlineData("mb")]
    [InlineData("put|b/k|f|--bogus|1")]
    [InlineData("status|--master")]
    [InlineData("-x|status")]
    [InlineData("--master|not a url|status")]
    [InlineData("--master|ftp://host/|status")]
    [InlineData("status|--=3")]
    public void Bad_command_lines_are_usage_errors(string joined)
    {
        Assert.Throws<UsageException>(() => Parse(CliAppTests.Split(joined)));
    }

    [Theory]
    [InlineData("nodes", "0")]
    [InlineData("nodes", "abc")]
    [InlineData("port", "70000")]
    [InlineData("port", "-1")]
    [InlineData("replicas", "4")]
    public void Out_of_range_up_options_are_usage_errors(string option, string value)
    {
        ParsedCommand command = Parse("up", "--nodes", option == "nodes" ? value : "3", "--" + option, value);
        Assert.Throws<UsageException>(() =>
        {
            int nodes = command.IntOption("nodes", 3, 1, 64)!.Value;
            command.IntOption("port", 7400, 1, 65535 - nodes);
            command.IntOption("replicas", null, 1, nodes);
        });
    }
}
