namespace Chain.Consistency;

/// <summary>Shape of a simulated run for <see cref="HistoryGenerator"/>.</summary>
public sealed record GeneratorOptions
{
    public int Operations { get; init; } = 10_000;
    public int Keys { get; init; } = 100;
    /// <summary>Clients running at the same time (a client whose op ended info is replaced by a fresh id).</summary>
    public int Clients { get; init; } = 10;
    /// <summary>Share of operations that are reads; the rest are writes and CAS.</summary>
    public double ReadShare { get; init; } = 0.5;
    /// <summary>Share of the non-read operations that are compare-and-set.</summary>
    public double CasShare { get; init; } = 0.2;
    /// <summary>Share of operations whose outcome is unknown to the client (timeouts).</summary>
    public double InfoShare { get; init; } = 0.01;
    /// <summary>Share of operations that fail definitely (not applied).</summary>
    public double FailShare { get; init; } = 0.01;
    /// <summary>Latency of one operation: uniform in [1, MaxLatency] ticks.</summary>
    public int MaxLatency { get; init; } = 1_000;
    /// <summary>Think time between a client's operations: uniform in [0, MaxGap] ticks.</summary>
    public int MaxGap { get; init; } = 200;
    public int Seed { get; init; } = 1;
}

/// <summary>
/// Simulates a linearizable per-key register store under concurrent clients and records its history: every
/// operation takes effect atomically at a random point inside its interval, so the result is linearizable by
/// construction. Info operations took effect at a point after their call — possibly after the client gave up
/// on them — or never; failed operations never took effect. Written values are unique.
/// </summary>
public static class HistoryGenerator
{
    private sealed class Pending
    {
        public required int Id;
        public required string Key;
        public required int Client;
        public required OpKind Kind;
        public string? Input;
        public string? ExpectedOld;
        public required long Call;
        public required long Return;
        public required OpStatus Status;
        /// <summary>When the op takes effect; long.MaxValue = never.</summary>
        public required long Effect;
        public string? Output;
    }

    public static List<Operation> Generate(GeneratorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Operations < 0 || options.Keys < 1 || options.Clients < 1 || options.MaxLatency < 1 || options.MaxGap < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "operations ≥ 0, keys ≥ 1, clients ≥ 1, latency ≥ 1, gap ≥ 0");
        }

        var random = new Random(options.Seed);
        var clientFree = new long[options.Clients]; // when each client slot may issue its next op
        var clientId = Enumerable.Range(0, options.Clients).ToArray();
        var nextClientId = options.Clients;
        var pending = new List<Pending>(options.Operations);
        var values = new Dictionary<string, string?>(StringComparer.Ordinal);
        var written = new List<string>();

        // Issue the operations slot by slot in call-time order, so the clients interleave realistically.
        for (var id = 0; id < options.Operations; id++)
        {
            var slot = 0;
            for (var s = 1; s < options.Clients; s++)
            {
                if (clientFree[s] < clientFree[slot])
                {
                    slot = s;
                }
            }

            var call = clientFree[slot] + random.Next(0, options.MaxGap + 1);
            var ret = call + random.Next(1, options.MaxLatency + 1);
            var key = $"k{random.Next(options.Keys)}";
            var roll = random.NextDouble();
            var kind = roll < options.ReadShare ? OpKind.Read
                : random.NextDouble() < options.CasShare ? OpKind.Cas : OpKind.Write;
            var statusRoll = random.NextDouble();
            var status = statusRoll < options.InfoShare ? OpStatus.Info
                : statusRoll < options.InfoShare + options.FailShare ? OpStatus.Fail : OpStatus.Ok;
            long effect = status switch
            {
                OpStatus.Ok => call + random.NextInt64(0, ret - call + 1),
                OpStatus.Fail => long.MaxValue,
                // Unknown outcome: never, within the interval, or late (after the client stopped waiting).
                _ => random.Next(3) switch
                {
                    0 => long.MaxValue,
                    1 => call + random.NextInt64(0, ret - call + 1),
                    _ => ret + random.NextInt64(1, 10L * options.MaxLatency),
                },
            };
            var op = new Pending
            {
                Id = id,
                Key = key,
                Client = clientId[slot],
                Kind = kind,
                Call = call,
                Return = ret,
                Status = status,
                Effect = effect,
            };
            if (kind != OpKind.Read)
            {
                op.Input = $"v{id}";
            }

            pending.Add(op);
            clientFree[slot] = ret;
            if (status == OpStatus.Info)
            {
                clientId[slot] = nextClientId++;
            }
        }

        // Apply the effects in effect-time order to compute outputs (CAS expectations are chosen at effect time
        // so that both outcomes occur: the current value, or an older written value).
        foreach (var op in pending.Where(p => p.Effect != long.MaxValue).OrderBy(p => p.Effect).ThenBy(p => p.Id))
        {
            values.TryGetValue(op.Key, out var current);
            switch (op.Kind)
            {
                case OpKind.Read:
                    op.Output = current;
                    break;
                case OpKind.Write:
                    values[op.Key] = op.Input;
                    written.Add(op.Input!);
                    break;
                case OpKind.Cas:
                    op.ExpectedOld = random.Next(3) == 0 && written.Count > 0 ? written[random.Next(written.Count)] : current;
                    var ok = string.Equals(current, op.ExpectedOld, StringComparison.Ordinal);
                    op.Output = ok ? Operation.CasOk : Operation.CasFail;
                    if (ok)
                    {
                        values[op.Key] = op.Input;
                        written.Add(op.Input!);
                    }

                    break;
            }
        }

        var history = new List<Operation>(pending.Count);
        foreach (var op in pending)
        {
            var output = op.Output;
            var expected = op.ExpectedOld;
            if (op.Effect == long.MaxValue)
            {
                // Never took effect: a failed op, or an info op whose result the client never saw.
                output = op.Kind == OpKind.Cas ? Operation.CasFail : null;
                if (op.Kind == OpKind.Cas && expected is null)
                {
                    expected = "never-matches-" + op.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }
            }

            if (op.Status == OpStatus.Info)
            {
                output = null; // the client does not know the outcome
            }

            history.Add(new Operation(op.Id, op.Key, op.Client, op.Kind, op.Input, expected, output, op.Call, op.Return, op.Status));
        }

        return history;
    }
}
