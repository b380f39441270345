using Chain.Client;
using Chain.Harness.Faults;
using FsCheck;
using FsCheck.Fluent;

namespace Chain.Jepsen;

/// <summary>What the command line fixes; everything left null is generated from the seed.</summary>
public sealed record SpecConstraints
{
    public Workload? Workload { get; init; }
    /// <summary>The fault kinds the schedule draws from (empty: no faults).</summary>
    public IReadOnlyList<FaultKind> FaultKinds { get; init; } = new[] { FaultKind.KillNode, FaultKind.PauseNode };
    public int? Clients { get; init; }
    public int? Ops { get; init; }
    public TimeSpan? TimeLimit { get; init; }
    public int Nodes { get; init; } = 3;
    public TimeSpan FailureTimeout { get; init; } = TimeSpan.FromSeconds(3);
    public TimeSpan OpTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Whether the store has conditional puts (compare-and-set in the register workload).</summary>
    public bool CasSupported { get; init; } = true;
    public ReadTarget ReadFrom { get; init; } = ReadTarget.AnyReplica;
    /// <summary>Test-only broken server modes (see <see cref="RunSpec.TestBreaks"/>).</summary>
    public string? TestBreaks { get; init; }
}

/// <summary>
/// FsCheck generators for run specs (operation mix, key choice, concurrency, fault schedule) and the shrinker that
/// makes a failing spec smaller. <see cref="FromSeed"/> is deterministic: the same seed and constraints give the same spec.
/// </summary>
public static class SpecGenerator
{
    /// <summary>FsCheck's size parameter for every sample we draw (the generators set their own ranges).</summary>
    private const int SampleSize = 50;
    private static readonly TimeSpan DefaultTimeLimit = TimeSpan.FromSeconds(20);
    private const int DefaultOps = 10_000;

    public static RunSpec FromSeed(long seed, SpecConstraints constraints)
    {
        ArgumentNullException.ThrowIfNull(constraints);
        RunSpec spec = Sample(SpecGen(constraints), seed) with { Seed = seed };
        spec.Validate();
        return spec;
    }

    /// <summary>A fresh seed for a run that was not given one (printed, so it can be replayed).</summary>
    public static long NewSeed() => System.Random.Shared.NextInt64(1, 1L << 48);

    /// <summary>The spec generator and its shrinker as one FsCheck arbitrary.</summary>
    public static Arbitrary<RunSpec> Arbitrary(SpecConstraints constraints) => Arb.From(SpecGen(constraints), Shrink);

    /// <summary>Draws one value of <paramref name="gen"/> from a seed, deterministically.</summary>
    internal static T Sample<T>(Gen<T> gen, long seed) => Gen.Sample(gen, SampleSize, new Rnd(unchecked((ulong)seed)), 1)[0];

    /// <summary>Draws <paramref name="count"/> values of <paramref name="gen"/> from a seed, deterministically.</summary>
    internal static T[] Sample<T>(Gen<T> gen, long seed, int count) => Gen.Sample(gen, SampleSize, new Rnd(unchecked((ulong)seed)), count);

    public static Gen<RunSpec> SpecGen(SpecConstraints c)
    {
        ArgumentNullException.ThrowIfNull(c);
        TimeSpan time = c.TimeLimit ?? DefaultTimeLimit;
        Gen<Workload> workload = c.Workload is { } w ? Gen.Constant(w) : Gen.Elements(Workload.Register, Workload.Set, Workload.Large);
        Gen<int> clients = c.Clients is { } n ? Gen.Constant(n) : Gen.Choose(2, 6);
        return
            from wl in workload
            from clientCount in clients
            from keys in Gen.Choose(1, 5)
            from weights in Gen.ArrayOf(Gen.Choose(1, 6), keys)
            from opsPerKey in wl == Workload.Large ? Gen.Choose(4, 12) : Gen.Choose(8, 32)
            from mix in MixGen(wl, c.CasSupported)
            from faults in FaultScheduleGen(c.FaultKinds, time, c.FailureTimeout, c.Nodes)
            from mib in Gen.Choose(1, 4)
            select new RunSpec
            {
                Workload = wl,
                Clients = clientCount,
                Keys = keys,
                KeyWeights = weights,
                OpsPerKey = opsPerKey,
                Ops = c.Ops ?? DefaultOps,
                TimeLimit = time,
                Mix = mix,
                Faults = faults,
                Nodes = c.Nodes,
                FailureTimeout = c.FailureTimeout,
                OpTimeout = c.OpTimeout,
                ObjectBytes = mib * 1024 * 1024,
                ReadFrom = c.ReadFrom,
                TestBreaks = c.TestBreaks,
            };
    }

    public static Gen<OpMix> MixGen(Workload workload, bool casSupported) => workload switch
    {
        Workload.Set => Gen.Constant(new OpMix(0, 1, 0)),
        Workload.Large => from r in Gen.Choose(1, 3) from wr in Gen.Choose(1, 3) select new OpMix(r, wr, 0),
        _ => from r in Gen.Choose(1, 4)
             from wr in Gen.Choose(1, 4)
             from cas in casSupported ? Gen.Choose(0, 3) : Gen.Constant(0)
             select new OpMix(r, wr, cas),
    };

    /// <summary>
    /// One fault at a time: a gap, then a fault of one of <paramref name="kinds"/> on a generated target for a
    /// generated duration (a pause always outlasts a read lease), healed before the next starts; nothing starts in
    /// the first second, and every fault is healed before <paramref name="time"/> is up.
    /// </summary>
    public static Gen<IReadOnlyList<ScheduledFault>> FaultScheduleGen(IReadOnlyList<FaultKind> kinds, TimeSpan time, TimeSpan failureTimeout, int nodes)
    {
        ArgumentNullException.ThrowIfNull(kinds);
        if (kinds.Count == 0)
            return Gen.Constant<IReadOnlyList<ScheduledFault>>(Array.Empty<ScheduledFault>());
        int maxFaults = Math.Max(1, (int)(time.TotalSeconds / 4));
        Gen<(int GapMs, FaultKind Kind, int Target, int DurationMs)> one =
            from gap in Gen.Choose(500, 3000)
            from kind in Gen.Elements(kinds.ToArray())
            from target in Gen.Choose(0, Math.Max(0, nodes - 1))
            from duration in DurationGen(kind, failureTimeout)
            select (gap, kind, target, duration);
        return
            from count in Gen.Choose(1, maxFaults)
            from steps in Gen.ListOf(one, count)
            select Layout(steps, time);
    }

    private static Gen<int> DurationGen(FaultKind kind, TimeSpan failureTimeout)
    {
        int ft = (int)failureTimeout.TotalMilliseconds;
        int lease = ft / 2;
        return kind switch
        {
            // Longer than a lease, so a paused tail must have stopped serving before it is resumed; sometimes
            // longer than the failure timeout, so it is also removed from its chains.
            FaultKind.PauseNode => Gen.Choose(lease + lease / 2, ft * 2),
            FaultKind.KillNode => Gen.Choose(1000, ft * 5 / 2),
            FaultKind.KillMaster => Gen.Choose(1000, ft * 3 / 2),
            _ => Gen.Choose(1000, ft * 2),
        };
    }

    private static IReadOnlyList<ScheduledFault> Layout(IEnumerable<(int GapMs, FaultKind Kind, int Target, int DurationMs)> steps, TimeSpan time)
    {
        var schedule = new List<ScheduledFault>();
        TimeSpan at = TimeSpan.FromSeconds(1);
        foreach (var (gapMs, kind, target, durationMs) in steps)
        {
            TimeSpan start = at + TimeSpan.FromMilliseconds(gapMs);
            TimeSpan duration = TimeSpan.FromMilliseconds(durationMs);
            if (start + duration > time)
                break;
            schedule.Add(new ScheduledFault(start, new Fault(kind, target, duration)));
            at = start + duration;
        }
        return schedule;
    }

    /// <summary>
    /// Smaller specs, most promising first: fewer faults (half, then one at a time), fewer clients, fewer operations,
    /// fewer keys, a shorter time (dropping the faults that no longer fit). The seed stays, so the per-client
    /// operation streams stay prefixes of the original ones.
    /// </summary>
    public static IEnumerable<RunSpec> Shrink(RunSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var faults = spec.Faults;
        if (faults.Count > 1)
        {
            yield return spec with { Faults = faults.Take(faults.Count / 2).ToArray() };
            yield return spec with { Faults = faults.Skip(faults.Count / 2).ToArray() };
        }
        for (int i = 0; i < faults.Count; i++)
            yield return spec with { Faults = faults.Where((_, j) => j != i).ToArray() };
        if (spec.Clients > 1)
        {
            if (spec.Clients > 2)
                yield return spec with { Clients = spec.Clients / 2 };
            yield return spec with { Clients = spec.Clients - 1 };
        }
        if (spec.Ops > 10)
            yield return spec with { Ops = spec.Ops / 2 };
        if (spec.Keys > 1)
            yield return spec with { Keys = spec.Keys - 1, KeyWeights = spec.KeyWeights.Take(spec.Keys - 1).ToArray() };
        if (spec.TimeLimit > TimeSpan.FromSeconds(4))
        {
            TimeSpan half = spec.TimeLimit / 2;
            yield return spec with { TimeLimit = half, Faults = faults.Where(f => f.End <= half).ToArray() };
        }
    }
}
