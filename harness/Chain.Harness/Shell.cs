using System.Diagnostics;
using System.Text;

namespace Chain.Harness;

/// <summary>A failed system command (ip, iptables, mount): the message carries the command line and its stderr.</summary>
public sealed class ShellCommandException : Exception
{
    public ShellCommandException(string message, int exitCode) : base(message) => ExitCode = exitCode;

    public int ExitCode { get; }
}

/// <summary>Runs system tools (no shell: arguments are passed as a list) with a bound on their run time.</summary>
public static class Shell
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);

    /// <summary>Runs the command; returns stdout. Throws <see cref="ShellCommandException"/> on a non-zero exit.</summary>
    public static async Task<string> RunAsync(string file, IEnumerable<string> arguments, CancellationToken ct = default, TimeSpan? timeout = null)
    {
        (int code, string stdout, string stderr, string commandLine) = await RunUncheckedAsync(file, arguments, ct, timeout).ConfigureAwait(false);
        if (code != 0)
            throw new ShellCommandException($"'{commandLine}' exited with code {code}: {stderr.Trim()}", code);
        return stdout;
    }

    public static Task<string> RunAsync(string file, params string[] arguments) => RunAsync(file, arguments, CancellationToken.None);

    /// <summary>Runs the command; returns the exit code and both outputs without throwing on failure.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr, string CommandLine)> RunUncheckedAsync(
        string file, IEnumerable<string> arguments, CancellationToken ct = default, TimeSpan? timeout = null)
    {
        var startInfo = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (string argument in arguments)
            startInfo.ArgumentList.Add(argument);
        string commandLine = file + " " + string.Join(' ', startInfo.ArgumentList);
        using var process = new Process { StartInfo = startInfo };
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            throw new ShellCommandException($"cannot run '{commandLine}': {e.Message}", -1);
        }
        process.StandardInput.Close();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        Task<string> stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout ?? DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
            ct.ThrowIfCancellationRequested();
            throw new ShellCommandException($"'{commandLine}' did not finish within {(timeout ?? DefaultTimeout).TotalSeconds:0.#}s", -1);
        }
        return (process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false), commandLine);
    }

    /// <summary>True when this process runs with effective user id 0 (network namespaces, iptables and mounts need it).</summary>
    public static bool IsRoot => OperatingSystem.IsLinux() && Native.GetEffectiveUserId() == 0;

    /// <summary>The full path of a system tool found in the usual sbin/bin directories or PATH; null when absent.</summary>
    public static string? Find(string tool)
    {
        var directories = new List<string> { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };
        directories.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries));
        return directories.Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);
    }
}
