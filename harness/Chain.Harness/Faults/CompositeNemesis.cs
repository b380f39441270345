namespace Chain.Harness.Faults;

/// <summary>
/// Several nemeses as one: each <see cref="FaultKind"/> goes to the first nemesis (in the order given) that supports
/// it; <see cref="HealAllAsync"/> heals every one of them, in reverse order (the last added is the most specific).
/// </summary>
public sealed class CompositeNemesis : INemesis
{
    private readonly IReadOnlyList<INemesis> _nemeses;

    public CompositeNemesis(IEnumerable<INemesis> nemeses)
    {
        ArgumentNullException.ThrowIfNull(nemeses);
        _nemeses = nemeses.ToArray();
    }

    public IReadOnlyList<INemesis> Members => _nemeses;

    public bool Supports(FaultKind kind) => _nemeses.Any(n => n.Supports(kind));

    /// <summary>The nemesis a fault of this kind goes to, or null when none supports it.</summary>
    public INemesis? RouteOf(FaultKind kind) => _nemeses.FirstOrDefault(n => n.Supports(kind));

    public Task<string> InjectAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        return Route(fault.Kind).InjectAsync(fault, cancellationToken);
    }

    public Task HealAsync(Fault fault, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fault);
        return Route(fault.Kind).HealAsync(fault, cancellationToken);
    }

    /// <summary>Heals every member, even when one of them fails; the failures are rethrown together at the end.</summary>
    public async Task HealAllAsync(CancellationToken cancellationToken)
    {
        var errors = new List<Exception>();
        for (int i = _nemeses.Count - 1; i >= 0; i--)
        {
            try
            {
                await _nemeses[i].HealAllAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                errors.Add(e);
            }
        }
        if (errors.Count == 1)
            throw errors[0];
        if (errors.Count > 1)
            throw new AggregateException("healing failed in more than one nemesis", errors);
    }

    public async ValueTask DisposeAsync()
    {
        for (int i = _nemeses.Count - 1; i >= 0; i--)
            await _nemeses[i].DisposeAsync().ConfigureAwait(false);
    }

    private INemesis Route(FaultKind kind) =>
        RouteOf(kind) ?? throw new NotSupportedException($"no nemesis supports {kind}");
}
