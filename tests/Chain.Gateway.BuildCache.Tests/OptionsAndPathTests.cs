using Xunit;

namespace Chain.Gateway.BuildCache.Tests;

/// <summary>Option checks at mapping time and the entry-path rules, without a cluster.</summary>
public sealed class OptionsAndPathTests
{
    [Theory]
    [InlineData("Bucket")]
    [InlineData("KeyPrefix")]
    [InlineData("Basic")]
    [InlineData("Bearer")]
    [InlineData("Concurrency")]
    public void Bad_options_are_refused(string which)
    {
        var options = which switch
        {
            "Bucket" => new BuildCacheOptions { Bucket = "No_Such Bucket" },
            "KeyPrefix" => new BuildCacheOptions { KeyPrefix = new string('p', 600) },
            "Basic" => new BuildCacheOptions { BasicUser = "u" },
            "Bearer" => new BuildCacheOptions { BearerToken = "" },
            _ => new BuildCacheOptions { MaxConcurrentRequests = 0 },
        };
        Assert.ThrowsAny<ArgumentException>(() => options.Validate());
        new BuildCacheOptions { KeyPrefix = new string('p', 500), BasicUser = "u", BasicPassword = "p", BearerToken = "t" }.Validate();
    }

    [Theory]
    [InlineData("70/814jabcdefghijklmnopqrstuv01234", "Plain", false)]
    [InlineData("ac/814jabcdefghijklmnopqrstuv01234", "Plain", false)] // a ccache subdirs key starting "ac"
    [InlineData("ac/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "ActionCache", false)]
    [InlineData("cas/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "ContentAddressed", true)]
    [InlineData("team/cas/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "ContentAddressed", true)]
    [InlineData("0123456789abcdef0123456789abcdef", "Plain", false)]
    public void Entry_paths_map_to_kinds_and_keys(string path, string kind, bool digest)
    {
        var entry = EntryPath.Parse(path, "p/", out var problem);
        Assert.NotNull(entry);
        Assert.Null(problem);
        Assert.Equal(kind, entry.Kind.ToString());
        Assert.Equal("p/" + path, entry.ObjectKey);
        Assert.Equal(digest, entry.ExpectedSha256 is not null);
    }

    [Fact]
    public void Prefixes_are_normalized()
    {
        Assert.Equal("/cache", BuildCacheEndpoints.NormalizePrefix("cache/").Value);
        Assert.Equal("/a/b", BuildCacheEndpoints.NormalizePrefix("/a/b/").Value);
        Assert.Throws<ArgumentException>(() => BuildCacheEndpoints.NormalizePrefix("/"));
    }
}
