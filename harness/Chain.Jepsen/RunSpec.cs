using System.Text.Json;
using System.Text.Json.Serialization;
using Chain.Client;
using Chain.Harness.Faults;

namespace Chain.Jepsen;

/// <summary>What the clients do: per-key registers, a grow-only set, or large objects checked by digest.</summary>
public enum Workload
{
    /// <summary>Per-key read / write / compare-and-set of unique values; checked for linearizability per key.</summary>
    Register,
    /// <summary>Unique inserts (one object per element), a final listing; checked with set-full.</summary>
    Set,
    /// <summary>Multi-MiB puts of generated content and gets that verify the digest; linearizability over digests.</summary>
    Large,
}

/// <summary>Relative weights of the operation kinds (0 = never).</summary>
public sealed record OpMix(int Read, int Write, int Cas)
{
    public int Total => Read + Write + Cas;
}

/// <summary>A fault and when it starts, measured from the start of the workload.</summary>
public sealed record ScheduledFault(TimeSpan At, Fault Fault)
{
    public TimeSpan End => At + Fault.Duration;

    public override string ToString() => $"{At.TotalSeconds:0.0}s {Fault}";
}

/// <summary>
/// Everything one run does, generated from <see cref="Seed"/> by <see cref="SpecGenerator"/> (or shrunk from such a
/// spec). The same seed regenerates the same spec and the same per-client operation streams; the real cluster's
/// timing (interleavings, which operation meets which fault) is not deterministic.
/// </summary>
public sealed record RunSpec
{
    public long Seed { get; init; }
    public Workload Workload { get; init; } = Workload.Register;
    /// <summary>Concurrent client tasks, each with its own <c>ChainClient</c>.</summary>
    public int Clients { get; init; } = 4;
    /// <summary>Key slots in use at once; each slot moves to a fresh key after <see cref="OpsPerKey"/> operations.</summary>
    public int Keys { get; init; } = 4;
    public int OpsPerKey { get; init; } = 24;
    /// <summary>Relative weight of each key slot when a client picks one (length <see cref="Keys"/>).</summary>
    public IReadOnlyList<int> KeyWeights { get; init; } = new[] { 1, 1, 1, 1 };
    /// <summary>Upper bound on the operations issued (all clients together).</summary>
    public int Ops { get; init; } = 2000;
    /// <summary>Upper bound on the workload's duration; faults are scheduled inside it.</summary>
    public TimeSpan TimeLimit { get; init; } = TimeSpan.FromSeconds(20);
    public OpMix Mix { get; init; } = new(2, 2, 0);
    public IReadOnlyList<ScheduledFault> Faults { get; init; } = Array.Empty<ScheduledFault>();
    public int Nodes { get; init; } = 3;
    public int? Chains { get; init; }
    /// <summary>The master's failure timeout; read leases last half of it.</summary>
    public TimeSpan FailureTimeout { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>Deadline of one client operation including the client's retries; past it the op ends <c>info</c>.</summary>
    public TimeSpan OpTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Object size of the large-object workload.</summary>
    public int ObjectBytes { get; init; } = 2 * 1024 * 1024;

    /// <summary>Where the clients send reads: any member (CRAQ, the client library's default) or the tail only.</summary>
    public ReadTarget ReadFrom { get; init; } = ReadTarget.AnyReplica;

    /// <summary>
    /// Test-only broken server modes for every node (<c>--unsafe-test-break</c>, e.g. "dirty-reads",
    /// "ack-before-tail"): to show the checkers catch a broken store. Null for a correct cluster.
    /// </summary>
    public string? TestBreaks { get; init; }

    public TimeSpan Lease => FailureTimeout / 2;

    /// <summary>A rough measure of how big a case is; every shrink is strictly smaller.</summary>
    [JsonIgnore]
    public long Size => Faults.Count * 100_000L + Clients * 10_000L + Ops + Keys * 10L + (long)TimeLimit.TotalSeconds;

    public string Describe() =>
        $"seed {Seed}: {Workload.ToString().ToLowerInvariant()}, {Clients} clients, {Keys} keys x {OpsPerKey} ops, " +
        $"<= {Ops} ops in <= {TimeLimit.TotalSeconds:0.#}s, mix r{Mix.Read}/w{Mix.Write}/c{Mix.Cas}, {Nodes} nodes, " +
        $"{Faults.Count} fault(s){(Faults.Count == 0 ? "" : ": " + string.Join(", ", Faults))}" +
        (ReadFrom == ReadTarget.AnyReplica ? "" : $", reads from {ReadFrom}") + (TestBreaks is null ? "" : $", UNSAFE TEST BREAKS: {TestBreaks}");

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static RunSpec FromJson(string json) =>
        JsonSerializer.Deserialize<RunSpec>(json, JsonOptions) ?? throw new JsonException("the spec is null");

    public bool Equals(RunSpec? other) =>
        other is not null
        && Seed == other.Seed && Workload == other.Workload && Clients == other.Clients && Keys == other.Keys
        && OpsPerKey == other.OpsPerKey && KeyWeights.SequenceEqual(other.KeyWeights) && Ops == other.Ops
        && TimeLimit == other.TimeLimit && Mix == other.Mix && Faults.SequenceEqual(other.Faults) && Nodes == other.Nodes
        && Chains == other.Chains && FailureTimeout == other.FailureTimeout && OpTimeout == other.OpTimeout
        && ObjectBytes == other.ObjectBytes && ReadFrom == other.ReadFrom && TestBreaks == other.TestBreaks;

    public override int GetHashCode() => HashCode.Combine(Seed, Workload, Clients, Keys, Ops, TimeLimit, Faults.Count, Mix);

    /// <summary>Throws when the spec cannot be run.</summary>
    public void Validate()
    {
        static void Require(bool condition, string message)
        {
            if (!condition)
                throw new ArgumentException(message);
        }
        Require(Clients is >= 1 and <= 64, $"clients must be in 1..64, not {Clients}");
        Require(Keys is >= 1 and <= 64, $"keys must be in 1..64, not {Keys}");
        Require(KeyWeights.Count == Keys && KeyWeights.All(w => w > 0), "key weights: one positive weight per key");
        Require(OpsPerKey is >= 1 and <= 1000, $"ops per key must be in 1..1000, not {OpsPerKey}");
        Require(Ops is >= 1 and <= 10_000_000, $"ops must be in 1..10000000, not {Ops}");
        Require(TimeLimit > TimeSpan.Zero && TimeLimit <= TimeSpan.FromHours(24), "the time limit must be in (0, 24h]");
        Require(Mix.Read >= 0 && Mix.Write >= 0 && Mix.Cas >= 0 && Mix.Total > 0, "the op mix needs a positive weight");
        Require(Nodes is >= 1 and <= 32, $"nodes must be in 1..32, not {Nodes}");
        Require(FailureTimeout >= TimeSpan.FromMilliseconds(500), "the failure timeout must be at least 500 ms");
        Require(OpTimeout > TimeSpan.Zero, "the op timeout must be positive");
        Require(ObjectBytes is >= 1 and <= 64 * 1024 * 1024, "object bytes must be in 1..64 MiB");
        Require(Faults.All(f => f.At >= TimeSpan.Zero && f.Fault.Duration > TimeSpan.Zero), "faults need a start >= 0 and a positive duration");
        Require(Faults.Where(f => f.Fault.Kind == FaultKind.PauseNode).All(f => f.Fault.Duration > Lease),
            $"a pause must outlast a read lease ({Lease.TotalMilliseconds:0} ms, half the failure timeout)");
    }
}
