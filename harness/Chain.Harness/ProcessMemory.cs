using System.Globalization;

namespace Chain.Harness;

/// <summary>
/// Peak resident memory (VmHWM) of Linux processes from /proc/PID/status, and the hidden switch of the <c>chain</c>
/// command that reports its own peak at exit (<c>CHAIN_REPORT_PEAK_RSS=1</c> → <c>peak-rss-bytes N</c> on stderr),
/// which <c>tools/Chain.ScaleBench</c> reads in its <c>--big-proof</c> mode.
/// </summary>
public static class ProcessMemory
{
    /// <summary>When this environment variable is "1", <c>chain</c> prints <see cref="PeakLinePrefix"/>N on stderr at exit.</summary>
    public const string ReportPeakEnvironmentVariable = "CHAIN_REPORT_PEAK_RSS";

    /// <summary>The start of the line <c>chain</c> prints; N (bytes) follows.</summary>
    public const string PeakLinePrefix = "peak-rss-bytes ";

    /// <summary>Peak resident set size of process <paramref name="pid"/> in bytes; null when unknown (not Linux, process gone).</summary>
    public static long? PeakResidentBytes(int pid) => ReadField(pid.ToString(CultureInfo.InvariantCulture), "VmHWM");

    /// <summary>Current resident set size of process <paramref name="pid"/> in bytes; null when unknown.</summary>
    public static long? ResidentBytes(int pid) => ReadField(pid.ToString(CultureInfo.InvariantCulture), "VmRSS");

    /// <summary>Peak resident set size of this process in bytes; null when unknown.</summary>
    public static long? OwnPeakResidentBytes() => ReadField("self", "VmHWM");

    /// <summary>
    /// The value of a "Name:   N kB" line of a /proc/PID/status text, in bytes; null when the line is missing or
    /// malformed.
    /// </summary>
    public static long? ParseStatusField(string statusText, string field)
    {
        ArgumentNullException.ThrowIfNull(statusText);
        ArgumentException.ThrowIfNullOrEmpty(field);
        foreach (string line in statusText.Split('\n'))
        {
            if (!line.StartsWith(field + ":", StringComparison.Ordinal))
                continue;
            string[] parts = line[(field.Length + 1)..].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2 || parts[1] != "kB"
                || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kib)
                || kib > long.MaxValue / 1024)
                return null;
            return kib * 1024;
        }
        return null;
    }

    /// <summary>The line <c>chain</c> prints for a peak of <paramref name="bytes"/>.</summary>
    public static string FormatPeakLine(long bytes) => PeakLinePrefix + bytes.ToString(CultureInfo.InvariantCulture);

    /// <summary>The last peak line in a process's stderr output; null when there is none.</summary>
    public static long? FindPeakLine(string stderr)
    {
        ArgumentNullException.ThrowIfNull(stderr);
        long? found = null;
        foreach (string line in stderr.Split('\n'))
        {
            string trimmed = line.TrimEnd('\r');
            if (trimmed.StartsWith(PeakLinePrefix, StringComparison.Ordinal)
                && long.TryParse(trimmed[PeakLinePrefix.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out long bytes))
                found = bytes;
        }
        return found;
    }

    /// <summary>
    /// Writes this process's peak line to <paramref name="error"/> when <paramref name="switchValue"/> (the value of
    /// <see cref="ReportPeakEnvironmentVariable"/>) is "1"; says so when the peak cannot be read. Returns whether it wrote.
    /// </summary>
    public static bool ReportOwnPeakIfRequested(TextWriter error, string? switchValue)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (switchValue != "1")
            return false;
        long? peak = OwnPeakResidentBytes();
        error.WriteLine(peak is { } bytes ? FormatPeakLine(bytes) : "peak-rss-bytes unknown (no /proc/self/status VmHWM)");
        error.Flush();
        return true;
    }

    private static long? ReadField(string pid, string field)
    {
        try
        {
            return ParseStatusField(File.ReadAllText($"/proc/{pid}/status"), field);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
