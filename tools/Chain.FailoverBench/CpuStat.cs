using System.Globalization;

namespace Chain.FailoverBench;

/// <summary>System-wide CPU counters from the "cpu" line of /proc/stat (Linux); null elsewhere.</summary>
public readonly record struct CpuStat(ulong Idle, ulong Total)
{
    public static CpuStat? Read()
    {
        try
        {
            using var reader = new StreamReader("/proc/stat");
            string? line;
            while ((line = reader.ReadLine()) is not null)
            {
                if (line.StartsWith("cpu ", StringComparison.Ordinal))
                    return Parse(line);
            }
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>"cpu user nice system idle iowait irq softirq steal ...": idle = idle + iowait; total = the first eight.</summary>
    public static CpuStat? Parse(string line)
    {
        string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 5 || fields[0] != "cpu")
            return null;
        ulong idle = 0, total = 0;
        for (int i = 1; i < fields.Length && i <= 8; i++)
        {
            if (!ulong.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out ulong value))
                return null;
            total += value;
            if (i is 4 or 5)
                idle += value;
        }
        return new CpuStat(idle, total);
    }

    /// <summary>Idle share in percent between two readings; NaN when unknown.</summary>
    public static double IdlePercent(CpuStat? start, CpuStat? end) =>
        start is { } a && end is { } b && b.Total > a.Total ? 100.0 * (b.Idle - a.Idle) / (b.Total - a.Total) : double.NaN;
}
