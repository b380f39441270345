using Chain.Harness.BellJar;

namespace Chain.BellJar.Tests;

/// <summary>The dependency manifests: the repository's load, malformed ones are refused with a message naming the problem.</summary>
public sealed class ManifestTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "chain-belljar-manifests-" + Guid.NewGuid().ToString("N"));

    public ManifestTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void The_repository_manifests_declare_exactly_what_master_node_gateway_tracker_and_peer_reach()
    {
        ManifestSet set = ManifestSet.Load();
        Assert.Equal(new[] { "node:rpc" }, set.For("master").Reaches.Select(d => d.ToString()));
        Assert.Equal(new[] { "master:rpc", "node:rpc" }, set.For("node").Reaches.Select(d => d.ToString()));
        Assert.Equal(new[] { "master:rpc", "node:rpc" }, set.For("gateway").Reaches.Select(d => d.ToString()));
        Assert.Empty(set.For("tracker").Reaches);
        Assert.Equal(new[] { "tracker:rpc", "master:rpc", "node:rpc", "peer:rpc" }, set.For("peer").Reaches.Select(d => d.ToString()));
        Assert.All(set.All.SelectMany(m => m.Reaches), d => Assert.False(string.IsNullOrWhiteSpace(d.Why)));
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "must be a JSON object")]
    [InlineData("""{"role": "scheduler", "reaches": []}""", "unknown role 'scheduler'")]
    [InlineData("""{"reaches": []}""", "'role' is required")]
    [InlineData("""{"role": "node"}""", "'reaches' must be an array")]
    [InlineData("""{"role": "node", "reaches": [{"role": "dns", "port": "rpc", "why": "x"}]}""", "unknown role 'dns'")]
    [InlineData("""{"role": "node", "reaches": [{"role": "master", "port": "53", "why": "x"}]}""", "role 'master' has no port '53'")]
    [InlineData("""{"role": "node", "reaches": [{"role": "master", "port": "rpc"}]}""", "'why' is required")]
    [InlineData("""{"role": "node", "reaches": [{"role": "master", "port": "rpc", "why": "x", "host": "ntp.example"}]}""", "unknown field 'host'")]
    [InlineData("""{"role": "node", "reaches": [], "allow_dns": true}""", "unknown field 'allow_dns'")]
    [InlineData("""{"role": "node", "reaches": [{"role": "master", "port": "rpc", "why": "a"}, {"role": "master", "port": "rpc", "why": "b"}]}""", "declared twice")]
    [InlineData("""{"role": 7, "reaches": []}""", "'role' must be a string")]
    public void A_malformed_manifest_is_refused_with_a_clear_error(string json, string expected)
    {
        var e = Assert.Throws<ManifestException>(() => DependencyManifest.Parse(json, "test.json"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("test.json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_manifest_file_must_be_named_after_its_role_and_a_directory_must_hold_one()
    {
        var empty = Assert.Throws<ManifestException>(() => ManifestSet.Load(_directory));
        Assert.Contains("holds no *.json manifest", empty.Message, StringComparison.Ordinal);

        File.WriteAllText(Path.Combine(_directory, "master.json"), """{"role": "node", "reaches": []}""");
        var misnamed = Assert.Throws<ManifestException>(() => ManifestSet.Load(_directory));
        Assert.Contains("must be named node.json", misnamed.Message, StringComparison.Ordinal);

        var missing = Assert.Throws<ManifestException>(() => ManifestSet.Load(Path.Combine(_directory, "nope")));
        Assert.Contains("does not exist", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_set_without_a_role_says_which_is_missing()
    {
        File.WriteAllText(Path.Combine(_directory, "node.json"), """{"role": "node", "reaches": [{"role": "master", "port": "rpc", "why": "heartbeats"}]}""");
        ManifestSet set = ManifestSet.Load(_directory);
        Assert.Equal("master:rpc", set.For("node").Describe());
        var e = Assert.Throws<ManifestException>(() => set.For("master"));
        Assert.Contains("no dependency manifest for role 'master'", e.Message, StringComparison.Ordinal);
    }
}
