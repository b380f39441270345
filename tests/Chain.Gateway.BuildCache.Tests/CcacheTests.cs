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
        var work = Path.Combine(_fixture.Root, "ccache-" + layout + "-" + Guid.NewGuid().ToString("N")[..8]);
        var source = Path.Combine(work, "src");
        Directory.CreateDirectory(source);
        // Content unique to this run, so no earlier entry can answer.
        await File.WriteAllTextAsync(Path.Combine(source, "answer.c"),
            $"/* {layout} {Guid.NewGuid():N} */\nint answer(void) {{ return 42; }}\nint twice(int x) {{ return 2 * x; }}\n");
        var config = Path.Combine(work, "ccache.conf");
        await File.WriteAllTextAsync(config, "");
        var remote = $"http://127.0.0.1:{_fixture.Host.Address.Port}/cache|layout={layout}|connect-timeout=2000";

        Dictionary<string, string> Environment(string cacheDir) => new()
        {
            ["CCACHE_DIR"] = Path.Combine(work, cacheDir),
            ["CCACHE_CONFIGPATH"] = config,
            ["CCACHE_REMOTE_STORAGE"] = remote,
            ["LC_ALL"] = "C",
        };

        async Task<ToolRun> CcacheAsync(string cacheDir, params string[] args)
        {
            var run = await ExternalTool.RunAsync("ccache", args, source, Environment(cacheDir), ToolTimeout);
            Assert.True(run.ExitCode == 0, $"ccache {string.Join(' ', args)}: {run}");
            return run;
        }

        await CcacheAsync("A", "gcc", "-c", "answer.c", "-o", "answer-a.o");
        var first = Stats((await CcacheAsync("A", "--print-stats")).Output);
        Assert.True(first.GetValueOrDefault("remote_storage_write") >= 1, $"no remote write from cache dir A: {Show(first)}");
        Assert.Equal(0, first.GetValueOrDefault("remote_storage_error"));

        await CcacheAsync("B", "gcc", "-c", "answer.c", "-o", "answer-b.o");
        var second = Stats((await CcacheAsync("B", "--print-stats")).Output);
        Assert.True(second.GetValueOrDefault("remote_storage_hit") == 1, $"no remote hit with the empty cache dir B: {Show(second)}");
        Assert.True(second.GetValueOrDefault("remote_storage_read_hit") >= 2, $"remote reads did not hit: {Show(second)}");
        Assert.Equal(0, second.GetValueOrDefault("cache_miss"));
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(source, "answer-a.o")), await File.ReadAllBytesAsync(Path.Combine(source, "answer-b.o")));
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
