namespace Chain.Harness;

/// <summary>Finds Chain.Server.dll: explicit path, else $CHAIN_SERVER_DLL, else the newest build in the repository.</summary>
public static class ServerLocator
{
    public const string EnvironmentVariable = "CHAIN_SERVER_DLL";
    public const string DllName = "Chain.Server.dll";

    /// <summary>Solution file names that mark the repository root.</summary>
    public static readonly IReadOnlyList<string> SolutionFileNames = new[] { "Chain.sln", "Chain.slnx" };

    /// <summary>Build configurations searched under artifacts/bin/Chain.Server/, the newest file wins.</summary>
    public static readonly IReadOnlyList<string> Configurations = new[] { "release", "debug" };

    public static string Locate(string? explicitPath = null) =>
        Locate(explicitPath, Environment.GetEnvironmentVariable(EnvironmentVariable), AppContext.BaseDirectory);

    /// <summary>The search itself, with its inputs passed in (for tests).</summary>
    public static string Locate(string? explicitPath, string? environmentValue, string startDirectory)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath))
            return RequireFile(explicitPath, "LocalClusterOptions.ServerDllPath");
        if (!string.IsNullOrWhiteSpace(environmentValue))
            return RequireFile(environmentValue, $"${EnvironmentVariable}");

        string? root = FindRepositoryRoot(startDirectory);
        if (root is null)
        {
            throw new FileNotFoundException(
                $"cannot locate {DllName}: no {string.Join(" or ", SolutionFileNames)} found in '{startDirectory}' or any parent; " +
                $"set {EnvironmentVariable} to the path of {DllName}", DllName);
        }

        string[] candidates = CandidatePaths(root).ToArray();
        string? newest = candidates
            .Where(File.Exists)
            .OrderByDescending(File.GetLastWriteTimeUtc)
            .FirstOrDefault();
        if (newest is null)
        {
            throw new FileNotFoundException(
                $"cannot locate {DllName}: none of {string.Join(", ", candidates.Select(c => $"'{c}'"))} exists; " +
                $"build the server first (dotnet build {Path.Combine(root, SolutionFileNames[0])} -c Release) or set {EnvironmentVariable}",
                DllName);
        }
        return newest;
    }

    /// <summary>The nearest directory at or above <paramref name="startDirectory"/> that holds the solution file.</summary>
    public static string? FindRepositoryRoot(string startDirectory)
    {
        DirectoryInfo? dir = new(Path.GetFullPath(startDirectory));
        while (dir is not null)
        {
            foreach (string name in SolutionFileNames)
            {
                if (File.Exists(Path.Combine(dir.FullName, name)))
                    return dir.FullName;
            }
            dir = dir.Parent;
        }
        return null;
    }

    public static IEnumerable<string> CandidatePaths(string repositoryRoot) =>
        Configurations.Select(c => Path.Combine(repositoryRoot, "artifacts", "bin", "Chain.Server", c, DllName));

    private static string RequireFile(string path, string source)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new FileNotFoundException($"{DllName} not found at '{full}' (from {source})", full);
        return full;
    }
}
