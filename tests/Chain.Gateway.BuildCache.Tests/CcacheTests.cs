using System.Globalization;
using System.Text.RegularExpressions;
using Xunit;

namespace Chain.Gateway.BuildCache.Tests;

/// <summary>Unmodified ccache (Debian's 4.7) with its HTTP remote storage on the build cache, in each layout.</summary>
[Collection(BuildCacheCollection.Name)]
public sealed class CcacheTests
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(60);
    private readonly BuildCacheClusterFixture _fixture;

    public CcacheTests(BuildCacheClusterFixture fixture) => _fixture = fixture;

    [Theory]
    [InlineData("subdirs")]
    [InlineData("flat")]
    [InlineData("bazel")]
    public async Task Second_compile_with_an_empty_local_cache_hits_the_remote(string layout)
    {
        var project = await CcacheProject.CreateAsync(_fixture.Root, layout);
        var remote = $"http://127.0.0.1:{_fixture.Host.Address.Port}/cache|layout={layout}|connect-timeout=2000";

        await project.CompileAsync("A", remote, "answer-a.o");
        var first = await project.StatsAsync("A", remote);
        Assert.True(first.GetValueOrDefault("remote_storage_write") >= 1, $"no remote write from cache dir A: {Show(first)}");
        Assert.Equal(0, first.GetValueOrDefault("remote_storage_error"));

        await project.CompileAsync("B", remote, "answer-b.o");
        var second = await project.StatsAsync("B", remote);
        Assert.True(second.GetValueOrDefault("remote_storage_hit") == 1, $"no remote hit with the empty cache dir B: {Show(second)}");
        Assert.True(second.GetValueOrDefault("remote_storage_read_hit") >= 2, $"remote reads did not hit: {Show(second)}");
        Assert.Equal(0, second.GetValueOrDefault("cache_miss"));
        Assert.Equal(await project.ReadAsync("answer-a.o"), await project.ReadAsync("answer-b.o"));
    }

    [Fact]
    public async Task Bearer_token_is_required_and_accepted()
    {
        await using var host = await _fixture.StartHostAsync(_fixture.Options with { BearerToken = "ccache-token" });
        var project = await CcacheProject.CreateAsync(_fixture.Root, "auth");
        var url = $"http://127.0.0.1:{host.Address.Port}/cache|layout=flat|connect-timeout=2000";

        await project.CompileAsync("A", url + "|bearer-token=ccache-token", "answer-a.o");
        var first = await project.StatsAsync("A", url);
        Assert.True(first.GetValueOrDefault("remote_storage_write") >= 1, $"no remote write with the right token: {Show(first)}");

        // The entries are there, but a wrong token reads none of them.
        await project.CompileAsync("B", url + "|bearer-token=wrong-token", "answer-b.o");
        var denied = await project.StatsAsync("B", url);
        Assert.True(denied.GetValueOrDefault("remote_storage_hit") == 0, $"a wrong token got a remote hit: {Show(denied)}");

        await project.CompileAsync("C", url + "|bearer-token=ccache-token", "answer-c.o");
        var allowed = await project.StatsAsync("C", url);
        Assert.True(allowed.GetValueOrDefault("remote_storage_hit") == 1, $"no remote hit with the right token: {Show(allowed)}");
    }

    /// <summary>A one-file C project compiled through ccache with a given cache directory and remote storage.</summary>
    private sealed class CcacheProject
    {
        private readonly string _work;
        private readonly string _source;
        private readonly string _config;

        private CcacheProject(string work)
        {
            _work = work;
            _source = Path.Combine(work, "src");
            _config = Path.Combine(work, "ccache.conf");
        }

        public static async Task<CcacheProject> CreateAsync(string root, string name)
        {
            var project = new CcacheProject(Path.Combine(root, "ccache-" + name + "-" + Guid.NewGuid().ToString("N")[..8]));
            Directory.CreateDirectory(project._source);
            // Content unique to this run, so no earlier entry can answer.
            await File.WriteAllTextAsync(Path.Combine(project._source, "answer.c"),
                $"/* {name} {Guid.NewGuid():N} */\nint answer(void) {{ return 42; }}\nint twice(int x) {{ return 2 * x; }}\n");
            await File.WriteAllTextAsync(project._config, "");
            return project;
        }

        public Task CompileAsync(string cacheDir, string remote, string output) =>
            RunAsync(cacheDir, remote, "gcc", "-c", "answer.c", "-o", output);

        public async Task<Dictionary<string, long>> StatsAsync(string cacheDir, string remote) =>
            Stats((await RunAsync(cacheDir, remote, "--print-stats")).Output);

        public Task<byte[]> ReadAsync(string file) => File.ReadAllBytesAsync(Path.Combine(_source, file));

        private async Task<ToolRun> RunAsync(string cacheDir, string remote, params string[] args)
        {
            var environment = new Dictionary<string, string>
            {
                ["CCACHE_DIR"] = Path.Combine(_work, cacheDir),
                ["CCACHE_CONFIGPATH"] = _config,
                ["CCACHE_REMOTE_STORAGE"] = remote,
                ["LC_ALL"] = "C",
            };
            var run = await ExternalTool.RunAsync("ccache", args, _source, environment, ToolTimeout);
            Assert.True(run.ExitCode == 0, $"ccache {string.Join(' ', args)}: {run}");
            return run;
        }
    }

    private static Dictionary<string, long> Stats(string printStats)
    {
        var stats = new Dictionary<string, long>();
        foreach (Match match in Regex.Matches(printStats, @"^(\w+)\s+(\d+)\s*$", RegexOptions.Multiline))
            stats[match.Groups[1].Value] = long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
        return stats;
    }

    private static string Show(Dictionary<string, long> stats) =>
        string.Join(", ", stats.Where(s => s.Value != 0).Select(s => $"{s.Key}={s.Value}"));
}
