using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace Chain.DistBench;

/// <summary>
/// A child process the benchmark runs, usually inside a network namespace (<c>ip netns exec NAME</c> execs the command,
/// so the pid is the command's own). Its stdout lines arrive with the time they were read; its stderr goes to a log
/// file. Every live child is killed when the benchmark exits or is interrupted (<see cref="KillAll"/>), and on dispose.
/// </summary>
internal sealed class NetnsProcess : IAsyncDisposable
{
    private static readonly HashSet<NetnsProcess> Live = new();
    private static int _hooked;

    private readonly Process _process;
    private readonly Channel<(long Timestamp, string Line)> _lines = Channel.CreateUnbounded<(long, string)>();
    private readonly Task _stdout;
    private readonly Task _stderr;

    private NetnsProcess(string name, Process process, string? logPath)
    {
        Name = name;
        _process = process;
        _stdout = PumpStdoutAsync();
        _stderr = PumpStderrAsync(logPath);
    }

    public string Name { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <paramref name="command"/> behind <paramref name="launcher"/> (empty: directly).</summary>
    public static NetnsProcess Start(string name, IReadOnlyList<string> launcher, IReadOnlyList<string> command, string? logPath = null)
    {
        HookExit();
        IReadOnlyList<string> all = launcher.Concat(command).ToArray();
        var startInfo = new ProcessStartInfo(all[0])
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (string argument in all.Skip(1))
            startInfo.ArgumentList.Add(argument);
        // Peers reach only the benchmark's subnet: a proxy from the environment would be unreachable there.
        foreach (string variable in new[] { "http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY" })
            startInfo.Environment.Remove(variable);
        var process = new Process { StartInfo = startInfo };
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            process.Dispose();
            throw new InvalidOperationException($"cannot start {name} ('{string.Join(' ', all)}'): {e.Message}", e);
        }
        var child = new NetnsProcess(name, process, logPath);
        lock (Live)
            Live.Add(child);
        return child;
    }

    /// <summary>The next stdout line and the <see cref="Stopwatch"/> timestamp it was read at; null at end of output or after <paramref name="timeout"/>.</summary>
    public async Task<(long Timestamp, string Line)?> ReadLineAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            if (await _lines.Reader.WaitToReadAsync(limit.Token).ConfigureAwait(false) && _lines.Reader.TryRead(out var line))
                return line;
            return null;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Reads stdout lines until one starts with <paramref name="prefix"/>; throws when the output ends or time runs out first.</summary>
    public async Task<(long Timestamp, string Line)> ExpectAsync(string prefix, TimeSpan timeout, CancellationToken ct)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        var seen = new List<string>();
        while (true)
        {
            TimeSpan left = deadline - DateTime.UtcNow;
            var line = left > TimeSpan.Zero ? await ReadLineAsync(left, ct).ConfigureAwait(false) : null;
            if (line is null)
                throw new TimeoutException($"{Name}: no '{prefix}' line within {timeout.TotalSeconds:0.#}s (exited: {HasExited}); output: {string.Join(" | ", seen.TakeLast(5))}");
            if (line.Value.Line.StartsWith(prefix, StringComparison.Ordinal))
                return line.Value;
            if (line.Value.Line.StartsWith("FAILED", StringComparison.Ordinal))
                throw new InvalidOperationException($"{Name}: {line.Value.Line}");
            seen.Add(line.Value.Line);
        }
    }

    public async Task WriteLineAsync(string line)
    {
        await _process.StandardInput.WriteLineAsync(line).ConfigureAwait(false);
        await _process.StandardInput.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Waits for the process to exit within <paramref name="timeout"/>; its exit code, or null when it is still running.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        using var limit = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>SIGKILL (by pid, this process only) unless it has exited.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await WaitForExitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        await Task.WhenAny(Task.WhenAll(_stdout, _stderr), Task.Delay(TimeSpan.FromSeconds(2))).ConfigureAwait(false);
        lock (Live)
            Live.Remove(this);
        _process.Dispose();
    }

    /// <summary>Kills every live child (exit, Ctrl-C): nothing the benchmark started outlives it.</summary>
    public static void KillAll()
    {
        NetnsProcess[] live;
        lock (Live)
            live = Live.ToArray();
        foreach (NetnsProcess child in live)
            child.Kill();
    }

    private static void HookExit()
    {
        if (Interlocked.Exchange(ref _hooked, 1) != 0)
            return;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        Console.CancelKeyPress += (_, _) => KillAll();
    }

    private async Task PumpStdoutAsync()
    {
        try
        {
            while (await _process.StandardOutput.ReadLineAsync().ConfigureAwait(false) is { } line)
                _lines.Writer.TryWrite((Stopwatch.GetTimestamp(), line));
        }
        catch (IOException)
        {
        }
        finally
        {
            _lines.Writer.TryComplete();
        }
    }

    private async Task PumpStderrAsync(string? logPath)
    {
        try
        {
            await using Stream sink = logPath is null ? Stream.Null : new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            await _process.StandardError.BaseStream.CopyToAsync(sink).ConfigureAwait(false);
        }
        catch (IOException)
        {
        }
    }
}
