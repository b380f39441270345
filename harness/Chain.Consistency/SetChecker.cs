namespace Chain.Consistency;

/// <summary>Result of a set-full check.</summary>
/// <param name="Lost">Acknowledged inserts absent from the final read.</param>
/// <param name="Invented">Elements in the final read that no insert ever attempted.</param>
/// <param name="RecoveredIndeterminate">Indeterminate inserts that turned out to be present.</param>
public sealed record SetCheckResult(
    IReadOnlyList<string> Lost,
    IReadOnlyList<string> Invented,
    IReadOnlyList<string> RecoveredIndeterminate)
{
    public bool Valid => Lost.Count == 0 && Invented.Count == 0;
}

/// <summary>Set-full: every acknowledged insert must be present after healing and nothing may appear from nowhere.</summary>
public static class SetChecker
{
    public static SetCheckResult Check(
        IEnumerable<string> acknowledged,
        IEnumerable<string> indeterminate,
        IEnumerable<string> finalRead)
    {
        ArgumentNullException.ThrowIfNull(acknowledged);
        ArgumentNullException.ThrowIfNull(indeterminate);
        ArgumentNullException.ThrowIfNull(finalRead);

        var acked = new HashSet<string>(acknowledged, StringComparer.Ordinal);
        var unknown = new HashSet<string>(indeterminate, StringComparer.Ordinal);
        var present = new HashSet<string>(finalRead, StringComparer.Ordinal);

        var lost = acked.Where(e => !present.Contains(e)).Order(StringComparer.Ordinal).ToList();
        var invented = present.Where(e => !acked.Contains(e) && !unknown.Contains(e)).Order(StringComparer.Ordinal).ToList();
        var recovered = unknown.Where(e => present.Contains(e) && !acked.Contains(e)).Order(StringComparer.Ordinal).ToList();
        return new SetCheckResult(lost, invented, recovered);
    }
}
