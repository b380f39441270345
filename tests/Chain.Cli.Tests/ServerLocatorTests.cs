using Chain.Harness;
using Xunit;

namespace Chain.Cli.Tests;

public sealed class ServerLocatorTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "chain-locator-" + Guid.NewGuid().ToString("N"));

    public ServerLocatorTests() => Directory.CreateDirectory(_root);

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Touch(string relative, DateTime? writeTimeUtc = null)
    {
        string path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "x");
        if (writeTimeUtc is { } time)
            File.SetLastWriteTimeUtc(path, time);
        return path;
    }

    private string Dll(string configuration) => Path.Combine(_root, "artifacts", "bin", "Chain.Server", configuration, "Chain.Server.dll");

    private string DeepStart()
    {
        string start = Path.Combine(_root, "artifacts", "bin", "Chain.Cli.Tests", "release");
        Directory.CreateDirectory(start);
        return start;
    }

    [Fact]
    public void Explicit_path_wins_over_everything()
    {
        string explicitDll = Touch("elsewhere/Chain.Server.dll");
        string envDll = Touch("env/Chain.Server.dll");
        Touch("Chain.sln");
        Touch("artifacts/bin/Chain.Server/release/Chain.Server.dll");
        Assert.Equal(explicitDll, ServerLocator.Locate(explicitDll, envDll, DeepStart()));
    }

    [Fact]
    public void Environment_variable_comes_next()
    {
        string envDll = Touch("env/Chain.Server.dll");
        Touch("Chain.sln");
        Touch("artifacts/bin/Chain.Server/release/Chain.Server.dll");
        Assert.Equal(envDll, ServerLocator.Locate(null, envDll, DeepStart()));
        Assert.Equal(envDll, ServerLocator.Locate("", envDll, DeepStart()));
    }

    [Fact]
    public void A_missing_explicit_or_environment_path_is_a_clear_error()
    {
        string missing = Path.Combine(_root, "missing", "Chain.Server.dll");
        var fromOption = Assert.Throws<FileNotFoundException>(() => ServerLocator.Locate(missing, null, _root));
        Assert.Contains(missing, fromOption.Message);
        Assert.Contains("ServerDllPath", fromOption.Message);
        var fromEnv = Assert.Throws<FileNotFoundException>(() => ServerLocator.Locate(null, missing, _root));
        Assert.Contains(ServerLocator.EnvironmentVariable, fromEnv.Message);
    }

    [Fact]
    public void Walks_up_to_the_solution_and_takes_the_newest_build()
    {
        Touch("Chain.sln");
        Touch("artifacts/bin/Chain.Server/release/Chain.Server.dll", DateTime.UtcNow.AddHours(-1));
        Touch("artifacts/bin/Chain.Server/debug/Chain.Server.dll", DateTime.UtcNow);
        Assert.Equal(Dll("debug"), ServerLocator.Locate(null, null, DeepStart()));

        File.SetLastWriteTimeUtc(Dll("release"), DateTime.UtcNow.AddMinutes(1));
        Assert.Equal(Dll("release"), ServerLocator.Locate(null, null, DeepStart()));
    }

    [Fact]
    public void Takes_whichever_configuration_exists()
    {
        Touch("Chain.sln");
        Touch("artifacts/bin/Chain.Server/debug/Chain.Server.dll");
        Assert.Equal(Dll("debug"), ServerLocator.Locate(null, null, DeepStart()));
    }

    [Fact]
    public void No_build_is_a_clear_error_naming_the_paths_searched()
    {
        Touch("Chain.sln");
        var error = Assert.Throws<FileNotFoundException>(() => ServerLocator.Locate(null, null, DeepStart()));
        Assert.Contains(Dll("release"), error.Message);
        Assert.Contains(Dll("debug"), error.Message);
        Assert.Contains(ServerLocator.EnvironmentVariable, error.Message);
    }

    [Fact]
    public void No_solution_above_is_a_clear_error()
    {
        // The temp directory's ancestors hold no Chain.sln (the check below guards that assumption).
        Assert.Null(ServerLocator.FindRepositoryRoot(Path.GetTempPath()));
        var error = Assert.Throws<FileNotFoundException>(() => ServerLocator.Locate(null, null, DeepStart()));
        Assert.Contains("Chain.sln", error.Message);
        Assert.Contains(ServerLocator.EnvironmentVariable, error.Message);
    }

    [Fact]
    public void Repository_root_is_the_nearest_directory_with_the_solution()
    {
        Touch("Chain.sln");
        Touch("nested/Chain.sln");
        string start = Path.Combine(_root, "nested", "a", "b");
        Directory.CreateDirectory(start);
        Assert.Equal(Path.Combine(_root, "nested"), ServerLocator.FindRepositoryRoot(start));
        Assert.Equal(_root, ServerLocator.FindRepositoryRoot(DeepStart()));
    }
}
