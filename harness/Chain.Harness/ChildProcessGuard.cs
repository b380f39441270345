namespace Chain.Harness;

/// <summary>
/// Keeps server processes from outliving this process: on exit (normal, SIGTERM, unhandled exception) the
/// children still running get SIGTERM and, if they linger, SIGKILL; on Ctrl-C they get SIGTERM.
/// A SIGKILL of this process cannot be caught; its children then notice only that the master or their
/// peers went away.
/// </summary>
internal static class ChildProcessGuard
{
    private static readonly TimeSpan GraceOnExit = TimeSpan.FromSeconds(3);
    private static readonly HashSet<ServerProcess> Live = new();
    private static bool _hooked;

    public static void Register(ServerProcess process)
    {
        lock (Live)
        {
            Live.Add(process);
            if (_hooked)
                return;
            _hooked = true;
        }
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TerminateAll(GraceOnExit);
        AppDomain.CurrentDomain.UnhandledException += (_, _) => TerminateAll(GraceOnExit);
        Console.CancelKeyPress += (_, _) => SignalAll(Native.SIGTERM);
    }

    public static void Unregister(ServerProcess process)
    {
        lock (Live)
            Live.Remove(process);
    }

    private static ServerProcess[] Snapshot()
    {
        lock (Live)
            return Live.ToArray();
    }

    private static void SignalAll(int signal)
    {
        foreach (ServerProcess process in Snapshot())
        {
            try
            {
                process.Signal(signal);
            }
            catch
            {
                // Best effort: this runs while the process is going down.
            }
        }
    }

    private static void TerminateAll(TimeSpan grace)
    {
        ServerProcess[] live = Snapshot();
        if (live.Length == 0)
            return;
        SignalAll(Native.SIGTERM);
        DateTime deadline = DateTime.UtcNow + grace;
        foreach (ServerProcess process in live)
        {
            TimeSpan left = deadline - DateTime.UtcNow;
            if (left < TimeSpan.Zero)
                left = TimeSpan.Zero;
            if (!process.WaitForExit(left))
            {
                try
                {
                    process.Signal(Native.SIGKILL);
                }
                catch
                {
                }
            }
        }
    }
}
