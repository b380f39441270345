namespace Chain.Harness.BellJar.Scenarios;

/// <summary>A scenario registered by name whose body is not built yet: its run ends as <see cref="DrillStatus.NotAvailable"/>.</summary>
public sealed class NotYetAvailableScenario : IDrillScenario
{
    public NotYetAvailableScenario(string name, string description)
    {
        Name = name;
        Description = description;
    }

    public string Name { get; }

    public string Description { get; }

    public IReadOnlyList<string> Sets => Array.Empty<string>();

    public TimeSpan Budget => TimeSpan.FromSeconds(1);

    public Task RunAsync(DrillContext context, CancellationToken ct) =>
        throw new DrillNotAvailableException($"scenario '{Name}' is not available yet");
}
