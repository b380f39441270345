using System.Globalization;

namespace Chain.Harness;

/// <summary>
/// Size-limited tmpfs mounts for node data directories (root only). Each mount's source is named
/// <c>chntmp-PID</c> after the harness process that made it, so mounts left by a crashed run are found in
/// /proc/mounts and lazily unmounted by the next run.
/// </summary>
internal static class TmpfsMounts
{
    public const long BytesMin = 16L * 1024 * 1024;
    private const string SourcePrefix = NamespaceNetwork.Prefix + "tmp-";

    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux())
            return "tmpfs data directories need Linux";
        if (!Shell.IsRoot)
            return $"mounting a tmpfs needs root (running as '{Environment.UserName}'); leave LocalClusterOptions.NodeDataTmpfsBytes null";
        return null;
    }

    public static async Task MountAsync(string directory, long bytes, CancellationToken ct)
    {
        if (Unavailable() is { } reason)
            throw new InvalidOperationException("LocalClusterOptions.NodeDataTmpfsBytes: " + reason);
        Directory.CreateDirectory(directory);
        if (Directory.EnumerateFileSystemEntries(directory).Any())
            throw new InvalidOperationException($"{directory} is not empty: a tmpfs mounted over it would hide its data");
        string source = SourcePrefix + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        await Shell.RunAsync("mount", new[] { "-t", "tmpfs", "-o", "size=" + bytes.ToString(CultureInfo.InvariantCulture) + ",mode=0755", source, directory }, ct).ConfigureAwait(false);
    }

    public static async Task UnmountAsync(string directory)
    {
        var (code, _, stderr, _) = await Shell.RunUncheckedAsync("umount", new[] { directory }).ConfigureAwait(false);
        if (code != 0)
        {
            // Busy (a process still holds a file): detach it now, the kernel frees it when the last user goes.
            (code, _, stderr, _) = await Shell.RunUncheckedAsync("umount", new[] { "-l", directory }).ConfigureAwait(false);
            if (code != 0)
                throw new InvalidOperationException($"cannot unmount the tmpfs at {directory}: {stderr.Trim()}");
        }
    }

    /// <summary>Lazily unmounts our tmpfs mounts whose creating process is gone.</summary>
    public static async Task RemoveLeftoversAsync()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/proc/mounts"))
            return;
        foreach (string line in await File.ReadAllLinesAsync("/proc/mounts").ConfigureAwait(false))
        {
            string[] fields = line.Split(' ');
            if (fields.Length < 3 || fields[2] != "tmpfs" || !fields[0].StartsWith(SourcePrefix, StringComparison.Ordinal))
                continue;
            if (int.TryParse(fields[0][SourcePrefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && Directory.Exists($"/proc/{pid}"))
                continue;
            string mountPoint = fields[1].Replace("\\040", " ", StringComparison.Ordinal);
            await Shell.RunUncheckedAsync("umount", new[] { "-l", mountPoint }).ConfigureAwait(false);
        }
    }
}
