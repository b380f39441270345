namespace Chain.DistBench;

/// <summary>
/// Chain's distribution tier (tracker + peer agents, issue 8). Not built yet: this way says so and the benchmark goes
/// on with the others; the tier plugs in here through <see cref="IDistributionWay"/>.
/// </summary>
public sealed class ChainP2PWay : IDistributionWay
{
    public string Name => DistBenchOptions.ChainP2P;

    public string? Unavailable() => "not available yet (the tier, server/Chain.Tracker + Chain.Agent, is not built)";

    public Task PrepareAsync(WayContext context, CancellationToken ct) => throw new NotSupportedException(Unavailable());

    public Task<WayRun> RunAsync(WayContext context, CancellationToken ct) => throw new NotSupportedException(Unavailable());

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
