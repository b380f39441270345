using System.Security.Cryptography;
using Xunit;

namespace Chain.Gateway.BuildCache.Tests;

/// <summary>Unmodified Bazel (Debian's bazel-bootstrap) with <c>--remote_cache</c> on the build cache; offline (a genrule needs no downloads).</summary>
[Collection(BuildCacheCollection.Name)]
public sealed class BazelTests
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(120);
    private readonly BuildCacheClusterFixture _fixture;

    public BazelTests(BuildCacheClusterFixture fixture) => _fixture = fixture;

    [Fact]
    public async Task Clean_rebuild_gets_a_remote_cache_hit()
    {
        var work = Path.Combine(_fixture.Root, "bazel-" + Guid.NewGuid().ToString("N")[..8]);
        var workspace = Path.Combine(work, "ws");
        Directory.CreateDirectory(workspace);
        var greeting = "hello-from-chain-" + Guid.NewGuid().ToString("N"); // unique: no earlier entry can answer
        await File.WriteAllTextAsync(Path.Combine(workspace, "WORKSPACE"), "");
        await File.WriteAllTextAsync(Path.Combine(workspace, "BUILD"),
            $"genrule(\n    name = \"greeting\",\n    outs = [\"greeting.txt\"],\n    cmd = \"echo {greeting} > $@\",\n)\n");
        var environment = new Dictionary<string, string> { ["HOME"] = work, ["LC_ALL"] = "C" };
        // Only the system rc (Debian's /etc/bazel/bazelrc names the install base); no user or workspace rc.
        string[] startup = ["--nohome_rc", "--noworkspace_rc", "--batch", "--output_user_root=" + Path.Combine(work, "root")];
        string[] build = ["build", "//:greeting", "--remote_cache=" + new Uri(_fixture.CacheUrl, "bazel-ws"), "--spawn_strategy=standalone",
            "--noshow_progress", "--color=no", "--curses=no"];

        async Task<ToolRun> BazelAsync(params string[] args)
        {
            var run = await ExternalTool.RunAsync("bazel", startup.Concat(args), workspace, environment, ToolTimeout);
            Assert.True(run.ExitCode == 0, $"bazel {string.Join(' ', args)}: {run}");
            return run;
        }

        var first = await BazelAsync(build);
        Assert.DoesNotContain("remote cache hit", first.Output);
        var output = Path.Combine(workspace, "bazel-bin", "greeting.txt");
        var produced = await File.ReadAllBytesAsync(output);
        Assert.Equal(greeting + "\n", System.Text.Encoding.UTF8.GetString(produced));
        // The output is in the CAS under its SHA-256, the action result in the AC.
        var casKey = "bc/bazel-ws/cas/" + Convert.ToHexStringLower(SHA256.HashData(produced));
        Assert.Equal(produced.Length, (await _fixture.Client.StatAsync(_fixture.Options.Bucket, casKey)).Size);

        await BazelAsync("clean");
        Assert.False(File.Exists(output));
        var second = await BazelAsync(build);
        Assert.Contains("1 remote cache hit", second.Output);
        Assert.Equal(produced, await File.ReadAllBytesAsync(output));
    }
}
