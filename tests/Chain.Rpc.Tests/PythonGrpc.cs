using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace Chain.Rpc.Tests;

/// <summary>
/// Runs Debian's Python gRPC (python3-grpcio, python3-grpc-tools under /usr/bin/python3) for wire-compatibility
/// tests: checks it is there, generates stubs from a .proto, runs scripts with a timeout and captures their
/// output, and runs long-lived scripts (servers) whose output lines can be awaited.
/// Self-contained (no test-framework dependency) so that other test projects can copy this file.
/// </summary>
public static class PythonGrpc
{
    /// <summary>Debian's interpreter; the one first on PATH (pyenv) lacks the Debian packages.</summary>
    public const string PythonPath = "/usr/bin/python3";

    public const string AptPackages = "python3-grpcio python3-grpc-tools";

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    public sealed record Result(int ExitCode, string StdOut, string StdErr)
    {
        public string[] Lines => StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

        public override string ToString() => $"exit code {ExitCode}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}";
    }

    /// <summary>Throws, naming the apt packages to install, when /usr/bin/python3 or its grpc modules are missing.</summary>
    public static async Task EnsureAvailableAsync()
    {
        var install = $"install them with: apt-get install -y python3 {AptPackages}";
        if (!File.Exists(PythonPath))
        {
            throw new InvalidOperationException($"{PythonPath} does not exist; the wire-compatibility tests need Debian's {AptPackages}: {install}");
        }
        var probe = await RunAsync(["-c", "import grpc, grpc_tools.protoc; print(grpc.__version__)"], timeout: DefaultTimeout);
        if (probe.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{PythonPath} cannot import grpc / grpc_tools; the wire-compatibility tests need the Debian packages {AptPackages}: {install}\n{probe}");
        }
    }

    /// <summary>
    /// Generates NAME_pb2.py and NAME_pb2_grpc.py for <paramref name="protoFile"/> into <paramref name="outputDirectory"/>
    /// (protoc's include path is the proto's own directory).
    /// </summary>
    public static async Task GenerateStubsAsync(string protoFile, string outputDirectory)
    {
        Directory.CreateDirectory(outputDirectory);
        var protoDirectory = Path.GetDirectoryName(Path.GetFullPath(protoFile))!;
        var result = await RunAsync(
        [
            "-m", "grpc_tools.protoc",
            "-I" + protoDirectory,
            "--python_out=" + outputDirectory,
            "--grpc_python_out=" + outputDirectory,
            Path.GetFullPath(protoFile),
        ], timeout: DefaultTimeout);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"grpc_tools.protoc failed for {protoFile}:\n{result}");
        }
    }

    /// <summary>Runs a script file to completion (killed after <paramref name="timeout"/>, which throws).</summary>
    public static Task<Result> RunScriptAsync(string scriptPath, IEnumerable<string> arguments, string? pythonPath = null, TimeSpan? timeout = null) =>
        RunAsync([scriptPath, .. arguments], pythonPath, timeout);

    /// <summary>Runs /usr/bin/python3 with the arguments to completion; the process tree is killed on timeout.</summary>
    public static async Task<Result> RunAsync(IEnumerable<string> arguments, string? pythonPath = null, TimeSpan? timeout = null)
    {
        using var process = new Process { StartInfo = CreateStartInfo(arguments, pythonPath) };
        process.Start();
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"python timed out after {timeout ?? DefaultTimeout}: {string.Join(' ', arguments)}\n" +
                                       new Result(-1, await stdout, await stderr));
        }
        return new Result(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Starts a long-running script (e.g. a server); see <see cref="PythonProcess.WaitForLineAsync"/>.</summary>
    public static PythonProcess StartScript(string scriptPath, IEnumerable<string> arguments, string? pythonPath = null) =>
        new(CreateStartInfo([scriptPath, .. arguments], pythonPath));

    private static ProcessStartInfo CreateStartInfo(IEnumerable<string> arguments, string? pythonPath)
    {
        var info = new ProcessStartInfo(PythonPath)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        // A clean interpreter: nothing of pyenv or a virtualenv, no proxies (gRPC honours them), UTF-8 output.
        foreach (var name in new[] { "PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "VIRTUAL_ENV", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "grpc_proxy", "all_proxy", "ALL_PROXY" })
        {
            info.Environment.Remove(name);
        }
        if (pythonPath is not null)
        {
            info.Environment["PYTHONPATH"] = pythonPath;
        }
        info.Environment["PYTHONIOENCODING"] = "utf-8";
        info.Environment["PYTHONUNBUFFERED"] = "1";
        info.Environment["PYTHONDONTWRITEBYTECODE"] = "1";
        info.Environment["no_proxy"] = "*";
        return info;
    }
}

/// <summary>A running python script; output lines can be awaited. Dispose closes its stdin and kills it if still running.</summary>
public sealed class PythonProcess : IDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    internal PythonProcess(ProcessStartInfo info)
    {
        _process = new Process { StartInfo = info, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _lines.Writer.TryComplete();
                return;
            }
            lock (_stdout)
            {
                _stdout.AppendLine(e.Data);
            }
            _lines.Writer.TryWrite(e.Data);
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(e.Data);
                }
            }
        };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string StdOut
    {
        get
        {
            lock (_stdout)
            {
                return _stdout.ToString();
            }
        }
    }

    public string StdErr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>Waits for the first (not yet consumed) stdout line that matches; throws if the script exits or the time is up first.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> predicate, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? PythonGrpc.DefaultTimeout);
        try
        {
            while (await _lines.Reader.WaitToReadAsync(cts.Token))
            {
                while (_lines.Reader.TryRead(out var line))
                {
                    if (predicate(line))
                    {
                        return line;
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"no matching line from python within {timeout ?? PythonGrpc.DefaultTimeout}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}");
        }
        await _process.WaitForExitAsync();
        throw new InvalidOperationException($"python exited (code {_process.ExitCode}) before printing the expected line\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}");
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.StandardInput.Close(); // scripts that serve until stdin closes stop by themselves
                if (!_process.WaitForExit(TimeSpan.FromSeconds(5)))
                {
                    _process.Kill(entireProcessTree: true);
                    _process.WaitForExit();
                }
            }
        }
        catch (InvalidOperationException)
        {
            // not started or already gone
        }
        _process.Dispose();
    }
}
