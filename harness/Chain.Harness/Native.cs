using System.Runtime.InteropServices;

namespace Chain.Harness;

/// <summary>kill(2): Process.Kill only sends SIGKILL, but a graceful stop needs SIGTERM.</summary>
internal static partial class Native
{
    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;
    public const int SIGCONT = 18;
    public const int SIGSTOP = 19;
    private const int ESRCH = 3;

    [LibraryImport("libc", EntryPoint = "geteuid")]
    public static partial uint GetEffectiveUserId();

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);

    /// <summary>Sends <paramref name="signal"/>; false when the process no longer exists.</summary>
    public static bool SendSignal(int pid, int signal)
    {
        if (pid <= 0)
            throw new ArgumentOutOfRangeException(nameof(pid), pid, "refusing to signal a process group");
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
            throw new PlatformNotSupportedException("signals need a Unix system");
        if (SysKill(pid, signal) == 0)
            return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == ESRCH)
            return false;
        throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {errno}");
    }
}
