using System.Diagnostics;
using System.Text;

namespace Chain.Harness;

/// <summary>A failed start or stop of a server process; the message carries the tail of its stderr.</summary>
public sealed class LocalClusterException : Exception
{
    public LocalClusterException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>One server process (master or storage node) of a <see cref="LocalCluster"/>; it can be stopped and started again.</summary>
public class ServerProcess
{
    private const int TailLines = 200;
    private static readonly TimeSpan PumpDrainTimeout = TimeSpan.FromSeconds(5);

    private readonly object _gate = new();
    private readonly string _dotnet;
    private readonly string _serverDll;
    private readonly IReadOnlyList<string> _arguments;
    private readonly IReadOnlyList<string> _launcher;
    private IReadOnlyList<string> _extraArguments = Array.Empty<string>();
    private readonly Queue<string> _stderrTail = new();
    private Process? _process;
    private Task<int>? _exit;
    private int _pid;
    private bool _stopRequested;

    internal ServerProcess(string role, string? nodeId, int port, string dataDirectory, string logPath,
        string dotnet, string serverDll, IReadOnlyList<string> arguments, string host = "127.0.0.1", IReadOnlyList<string>? launcher = null)
    {
        Role = role;
        NodeId = nodeId;
        Port = port;
        DataDirectory = dataDirectory;
        LogPath = logPath;
        Address = new Uri($"http://{host}:{port}");
        _dotnet = dotnet;
        _serverDll = serverDll;
        _arguments = arguments;
        _launcher = launcher ?? Array.Empty<string>();
    }

    /// <summary>"master" or "node".</summary>
    public string Role { get; }

    /// <summary>The node id; null for the master.</summary>
    internal string? NodeId { get; }

    /// <summary>"master" or the node id: the name used for the log file.</summary>
    public string Name => NodeId ?? Role;

    public int Port { get; }

    /// <summary>The address from the process's READY line (before the first start: the address it was given).</summary>
    public Uri Address { get; private set; }

    public string DataDirectory { get; }

    /// <summary>The file stderr (and stdout, marked) is appended to, across restarts.</summary>
    public string LogPath { get; }

    /// <summary>Process id of the current (or last) run; 0 before the first start.</summary>
    public int Pid => Volatile.Read(ref _pid);

    public bool IsRunning
    {
        get { lock (_gate) return _exit is { IsCompleted: false }; }
    }

    /// <summary>Exit code of the last run, once it has exited.</summary>
    public int? LastExitCode
    {
        get
        {
            lock (_gate)
                return _exit is { IsCompletedSuccessfully: true } ? _exit.Result : null;
        }
    }

    /// <summary>Extra environment variables for the process (on top of the harness's own environment).</summary>
    public IReadOnlyDictionary<string, string> ExtraEnvironment { get; internal init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The command line used to run this server (with the launcher, e.g. <c>ip netns exec NAME</c>, in front).</summary>
    public string CommandLine => string.Join(' ', _launcher.Append(_dotnet).Append(_serverDll).Concat(_arguments).Concat(ExtraArguments));

    /// <summary>
    /// Arguments appended to the command line from the next start on (fault injection, e.g. <c>--clock-offset-ms</c>);
    /// empty by default. A running process is not affected until it is restarted.
    /// </summary>
    public IReadOnlyList<string> ExtraArguments
    {
        get => Volatile.Read(ref _extraArguments);
        set => Volatile.Write(ref _extraArguments, value?.ToArray() ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>The last lines the process wrote to stderr.</summary>
    public IReadOnlyList<string> StderrTail()
    {
        lock (_stderrTail)
            return _stderrTail.ToArray();
    }

    /// <summary>Raised once per run when the process exits without a stop having been requested.</summary>
    internal event Action<ServerProcess, int>? UnexpectedExit;

    /// <summary>Starts the process and waits for its READY line.</summary>
    internal async Task StartAsync(TimeSpan timeout, CancellationToken ct)
    {
        TaskCompletionSource<Uri> ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
        // A run that dies after a timed-out start faults this task with nobody waiting: observe it.
        _ = ready.Task.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        lock (_gate)
        {
            if (_exit is { IsCompleted: false })
                throw new InvalidOperationException($"{Name} is already running (pid {_pid})");
            _stopRequested = false;
        }
        lock (_stderrTail)
            _stderrTail.Clear();

        Directory.CreateDirectory(DataDirectory);
        var log = new StreamWriter(new FileStream(LogPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite), new UTF8Encoding(false))
        {
            AutoFlush = true,
        };
        // With a launcher (ip netns exec NAME) the launcher execs dotnet: the pid we signal is the server's own.
        var startInfo = new ProcessStartInfo(_launcher.Count > 0 ? _launcher[0] : _dotnet)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            WorkingDirectory = DataDirectory,
        };
        foreach ((string name, string value) in ExtraEnvironment)
            startInfo.Environment[name] = value;
        foreach (string argument in _launcher.Skip(1))
            startInfo.ArgumentList.Add(argument);
        if (_launcher.Count > 0)
            startInfo.ArgumentList.Add(_dotnet);
        startInfo.ArgumentList.Add(_serverDll);
        foreach (string argument in _arguments.Concat(ExtraArguments))
            startInfo.ArgumentList.Add(argument);

        var process = new Process { StartInfo = startInfo };
        lock (log)
            log.WriteLine($"=== {DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss.fff zzz} starting: {CommandLine}");
        try
        {
            process.Start();
        }
        catch (Exception e)
        {
            log.Dispose();
            process.Dispose();
            throw new LocalClusterException($"cannot start {Name} ({CommandLine}): {e.Message}", e);
        }

        lock (_gate)
        {
            _process = process;
            Volatile.Write(ref _pid, process.Id);
            ChildProcessGuard.Register(this);
            Task stdout = PumpAsync(process.StandardOutput, log, "[stdout] ", line => OnStdoutLine(line, ready));
            Task stderr = PumpAsync(process.StandardError, log, "", OnStderrLine);
            _exit = WatchExitAsync(process, stdout, stderr, log, ready);
        }

        try
        {
            Uri address = await ready.Task.WaitAsync(timeout, ct).ConfigureAwait(false);
            Address = address;
        }
        catch (TimeoutException)
        {
            await KillAsync().ConfigureAwait(false);
            throw new LocalClusterException($"{Name} did not print READY within {timeout.TotalSeconds:0.#}s{FormatTail()}");
        }
        catch (OperationCanceledException)
        {
            await KillAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>SIGTERM, then SIGKILL if the process has not exited within <paramref name="timeout"/>. Returns the exit code.</summary>
    internal async Task<int?> StopAsync(TimeSpan timeout)
    {
        Task<int>? exit = MarkStopping();
        if (exit is null)
            return LastExitCode;
        if (!exit.IsCompleted)
            Native.SendSignal(_pid, Native.SIGTERM);
        try
        {
            return await exit.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return await KillAsync().ConfigureAwait(false);
        }
    }

    /// <summary>SIGKILL and wait for the exit.</summary>
    internal async Task<int?> KillAsync()
    {
        Task<int>? exit = MarkStopping();
        if (exit is null)
            return LastExitCode;
        if (!exit.IsCompleted)
            Native.SendSignal(_pid, Native.SIGKILL);
        return await exit.ConfigureAwait(false);
    }

    /// <summary>Sends a signal that does not end the process (SIGSTOP, SIGCONT); false when not running.</summary>
    internal bool SignalRunning(int signal)
    {
        Task<int>? exit;
        lock (_gate)
            exit = _exit;
        if (exit is null || exit.IsCompleted)
            return false;
        return Native.SendSignal(_pid, signal);
    }

    /// <summary>Sends a signal without waiting (for exit handlers); false when not running.</summary>
    internal bool Signal(int signal)
    {
        Task<int>? exit = MarkStopping();
        if (exit is null || exit.IsCompleted)
            return false;
        return Native.SendSignal(_pid, signal);
    }

    /// <summary>Waits until the current run has exited (true) or the timeout passed (false).</summary>
    internal bool WaitForExit(TimeSpan timeout)
    {
        Task<int>? exit;
        lock (_gate)
            exit = _exit;
        return exit is null || exit.Wait(timeout);
    }

    /// <summary>Completes when the current run exits (with its exit code); null when never started.</summary>
    internal Task<int>? ExitTask
    {
        get { lock (_gate) return _exit; }
    }

    internal string FormatTail(int lines = 30)
    {
        IReadOnlyList<string> tail = StderrTail();
        if (tail.Count == 0)
            return $" (no stderr output; log: {LogPath})";
        IEnumerable<string> last = tail.Skip(Math.Max(0, tail.Count - lines));
        return $"; last stderr lines (full log: {LogPath}):{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", last);
    }

    private Task<int>? MarkStopping()
    {
        lock (_gate)
        {
            _stopRequested = true;
            return _exit;
        }
    }

    private void OnStdoutLine(string line, TaskCompletionSource<Uri> ready)
    {
        if (ready.Task.IsCompleted || !line.StartsWith("READY ", StringComparison.Ordinal))
            return;
        // "READY master http://127.0.0.1:PORT" or "READY node ID http://127.0.0.1:PORT"
        string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        bool roleMatches = parts.Length >= 3 && parts[1] == Role && (NodeId is null || (parts.Length >= 4 && parts[2] == NodeId));
        if (roleMatches && Uri.TryCreate(parts[^1], UriKind.Absolute, out Uri? address))
            ready.TrySetResult(address);
        else
            ready.TrySetException(new LocalClusterException($"{Name} printed an unexpected READY line: '{line}'"));
    }

    private void OnStderrLine(string line)
    {
        lock (_stderrTail)
        {
            _stderrTail.Enqueue(line);
            while (_stderrTail.Count > TailLines)
                _stderrTail.Dequeue();
        }
    }

    private static async Task PumpAsync(StreamReader reader, StreamWriter log, string prefix, Action<string> onLine)
    {
        try
        {
            while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                onLine(line);
                try
                {
                    lock (log)
                        log.WriteLine(prefix + line);
                }
                catch (IOException)
                {
                    // A full disk must not stop the pump: the child would block on a full pipe.
                }
            }
        }
        catch (ObjectDisposedException)
        {
        }
        catch (IOException)
        {
        }
    }

    private async Task<int> WatchExitAsync(Process process, Task stdout, Task stderr, StreamWriter log, TaskCompletionSource<Uri> ready)
    {
        await process.WaitForExitAsync().ConfigureAwait(false);
        // Output still in the pipes belongs to this run; a grandchild holding the pipes must not block us forever.
        await Task.WhenAny(Task.WhenAll(stdout, stderr), Task.Delay(PumpDrainTimeout)).ConfigureAwait(false);
        int code = process.ExitCode;
        bool expected;
        lock (_gate)
            expected = _stopRequested;
        try
        {
            lock (log)
                log.WriteLine($"=== {DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss.fff zzz} exited with code {code}{(expected ? "" : " (unexpected)")}");
        }
        catch (IOException)
        {
        }
        lock (log)
            log.Dispose();
        try
        {
            process.StandardInput.Dispose();
        }
        catch (IOException)
        {
        }
        process.Dispose();
        ChildProcessGuard.Unregister(this);
        ready.TrySetException(new LocalClusterException($"{Name} exited with code {code} before it was ready{FormatTail()}"));
        if (!expected)
        {
            try
            {
                UnexpectedExit?.Invoke(this, code);
            }
            catch
            {
                // An observer's failure must not fault the exit task.
            }
        }
        return code;
    }
}

/// <summary>A storage-node process; <see cref="Id"/> is its --node-id.</summary>
public sealed class NodeProcess : ServerProcess
{
    internal NodeProcess(string id, int port, string dataDirectory, string logPath, string dotnet, string serverDll, IReadOnlyList<string> arguments,
        string host = "127.0.0.1", IReadOnlyList<string>? launcher = null)
        : base("node", id, port, dataDirectory, logPath, dotnet, serverDll, arguments, host, launcher)
    {
        Id = id;
    }

    public string Id { get; }
}
