namespace Chain.Consistency;

/// <summary>How an operation ended: definitely applied/observed, definitely not applied, or unknown.</summary>
public enum OpStatus
{
    Ok,
    Fail,
    Info,
}

/// <summary>Operations on a per-key register holding a string value (null = absent).</summary>
public enum OpKind
{
    Read,
    Write,
    Cas,
}

/// <summary>
/// One client operation on one key. Read: <see cref="Output"/> is the value seen (null = not found).
/// Write: sets <see cref="Input"/>. Cas: if the value equals <see cref="ExpectedOld"/> set it to <see cref="Input"/>;
/// <see cref="Output"/> is "ok" or "fail". Times come from one monotonic clock. <see cref="Version"/>, when the store
/// reports one: for an ok write or successful CAS the version it was acknowledged with; for an ok read the version of
/// the value it saw (used by <see cref="DuplicateChecker"/>; null = not recorded).
/// </summary>
public sealed record Operation(
    int Id,
    string Key,
    int Client,
    OpKind Kind,
    string? Input,
    string? ExpectedOld,
    string? Output,
    long CallTicks,
    long ReturnTicks,
    OpStatus Status,
    long? Version = null)
{
    public const string CasOk = "ok";
    public const string CasFail = "fail";
}
