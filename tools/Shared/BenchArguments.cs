namespace Chain.Tools;

/// <summary>A bad command line of a benchmark program (exit code 2).</summary>
internal sealed class UsageException : Exception
{
    public UsageException(string message) : base(message) { }
}

/// <summary>The start of a benchmark program: parse the options, or print the usage and say which exit code to use.</summary>
internal static class BenchArguments
{
    /// <summary>
    /// Parses with <paramref name="parse"/>. False with <paramref name="exitCode"/> 2 after printing the error and
    /// <paramref name="usage"/> on stderr for a <see cref="UsageException"/>; false with exit code 0 after printing the
    /// usage on stdout when <paramref name="wantsHelp"/> says so; otherwise true.
    /// </summary>
    public static bool TryParse<TOptions>(Func<TOptions> parse, string usage, Func<TOptions, bool> wantsHelp, out TOptions? options, out int exitCode)
        where TOptions : class
    {
        exitCode = 0;
        try
        {
            options = parse();
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine(usage);
            options = null;
            exitCode = 2;
            return false;
        }
        if (!wantsHelp(options))
            return true;
        Console.WriteLine(usage);
        return false;
    }
}
