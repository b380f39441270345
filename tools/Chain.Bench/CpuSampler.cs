using System.Globalization;

namespace Chain.Bench;

/// <summary>System-wide CPU time from the first line of /proc/stat.</summary>
public readonly record struct CpuSample(ulong Idle, ulong Total)
{
    public static CpuSample? Read()
    {
        try
        {
            string? line = File.ReadLines("/proc/stat").FirstOrDefault(l => l.StartsWith("cpu ", StringComparison.Ordinal));
            return line is null ? null : Parse(line);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>"cpu user nice system idle iowait irq softirq steal guest guest_nice": idle = idle+iowait, total = the first 8 (guest time is already in user).</summary>
    public static CpuSample? Parse(string line)
    {
        string[] fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 5 || fields[0] != "cpu")
            return null;
        var values = new List<ulong>();
        foreach (string field in fields.Skip(1).Take(8))
        {
            if (!ulong.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value))
                return null;
            values.Add(value);
        }
        ulong idle = values[3] + (values.Count > 4 ? values[4] : 0);
        ulong total = 0;
        foreach (ulong value in values)
            total += value;
        return new CpuSample(idle, total);
    }

    /// <summary>Idle percentage between two samples; NaN when unknown.</summary>
    public static double IdlePercent(CpuSample? start, CpuSample? end)
    {
        if (start is not { } a || end is not { } b || b.Total <= a.Total)
            return double.NaN;
        return 100.0 * (b.Idle - a.Idle) / (b.Total - a.Total);
    }
}
