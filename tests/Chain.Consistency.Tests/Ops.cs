namespace Chain.Consistency.Tests;

/// <summary>Terse constructors for hand-made histories.</summary>
internal static class Ops
{
    public static Operation Read(int id, string key, string? output, long call, long ret, OpStatus status = OpStatus.Ok, int client = 0) =>
        new(id, key, client, OpKind.Read, null, null, output, call, ret, status);

    public static Operation Write(int id, string key, string? value, long call, long ret, OpStatus status = OpStatus.Ok, int client = 0) =>
        new(id, key, client, OpKind.Write, value, null, null, call, ret, status);

    public static Operation Cas(int id, string key, string? expected, string? value, bool ok, long call, long ret, OpStatus status = OpStatus.Ok, int client = 0) =>
        new(id, key, client, OpKind.Cas, value, expected, ok ? Operation.CasOk : Operation.CasFail, call, ret, status);

    public static CheckResult Check(params Operation[] history) =>
        LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(5));
}
