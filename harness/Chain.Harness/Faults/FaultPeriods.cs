using Chain.Consistency.Report;

namespace Chain.Harness.Faults;

/// <summary>Maps what the nemesis did to the report's fault periods (same clock as the history).</summary>
public static class FaultPeriods
{
    /// <summary>"Kind(target, duration): description" from start to end; a fault never healed lasts to <paramref name="runEndTicks"/>.</summary>
    public static FaultPeriod ToPeriod(this FaultEvent fault, long runEndTicks)
    {
        ArgumentNullException.ThrowIfNull(fault);
        long end = fault.EndTicks >= fault.StartTicks ? fault.EndTicks : Math.Max(fault.StartTicks, runEndTicks);
        string name = string.IsNullOrWhiteSpace(fault.Description) ? fault.Fault.ToString() : $"{fault.Fault}: {fault.Description}";
        return new FaultPeriod(name, fault.StartTicks, end);
    }

    public static IReadOnlyList<FaultPeriod> From(IEnumerable<FaultEvent> faults, long runEndTicks)
    {
        ArgumentNullException.ThrowIfNull(faults);
        return faults.Select(f => f.ToPeriod(runEndTicks)).OrderBy(p => p.StartTicks).ToList();
    }
}
