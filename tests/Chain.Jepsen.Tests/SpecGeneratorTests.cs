using Chain.Consistency;
using Chain.Harness.Faults;
using FsCheck;
using FsCheck.Fluent;

namespace Chain.Jepsen.Tests;

public sealed class SpecGeneratorTests
{
    private static readonly SpecConstraints Constraints = new()
    {
        FaultKinds = new[] { FaultKind.KillNode, FaultKind.PauseNode, FaultKind.KillMaster },
        TimeLimit = TimeSpan.FromSeconds(30),
    };

    [Fact]
    public void The_same_seed_gives_the_same_spec()
    {
        for (long seed = 1; seed <= 50; seed++)
        {
            RunSpec a = SpecGenerator.FromSeed(seed, Constraints);
            RunSpec b = SpecGenerator.FromSeed(seed, Constraints);
            Assert.Equal(a, b);
            Assert.Equal(a.ToJson(), b.ToJson());
            Assert.Equal(seed, a.Seed);
        }
    }

    [Fact]
    public void Different_seeds_give_different_specs()
    {
        var specs = Enumerable.Range(1, 40).Select(s => SpecGenerator.FromSeed(s, Constraints) with { Seed = 0 }).ToList();
        Assert.True(specs.Distinct().Count() > 30, "40 seeds should give (almost) 40 different specs");
    }

    [Fact]
    public void Seeds_cover_every_workload_and_a_range_of_clients()
    {
        var specs = Enumerable.Range(1, 60).Select(s => SpecGenerator.FromSeed(s, Constraints)).ToList();
        Assert.Equal(3, specs.Select(s => s.Workload).Distinct().Count());
        Assert.True(specs.Select(s => s.Clients).Distinct().Count() >= 4);
        Assert.Contains(specs, s => s.Faults.Count > 1);
        Assert.Contains(specs, s => s.Mix.Cas > 0);
    }

    [Fact]
    public void A_spec_survives_its_json_round_trip()
    {
        RunSpec spec = SpecGenerator.FromSeed(1234, Constraints);
        Assert.Equal(spec, RunSpec.FromJson(spec.ToJson()));
    }

    [Fact]
    public void Constraints_fix_what_they_name()
    {
        var constraints = Constraints with { Workload = Workload.Set, Clients = 5, Ops = 77, FaultKinds = new[] { FaultKind.KillNode } };
        for (long seed = 1; seed <= 30; seed++)
        {
            RunSpec spec = SpecGenerator.FromSeed(seed, constraints);
            Assert.Equal(Workload.Set, spec.Workload);
            Assert.Equal(5, spec.Clients);
            Assert.Equal(77, spec.Ops);
            Assert.All(spec.Faults, f => Assert.Equal(FaultKind.KillNode, f.Fault.Kind));
            Assert.Equal(0, spec.Mix.Read + spec.Mix.Cas);
        }
        Assert.All(Enumerable.Range(1, 20), s => Assert.Empty(SpecGenerator.FromSeed(s, Constraints with { FaultKinds = Array.Empty<FaultKind>() }).Faults));
    }

    [Fact]
    public void Schedules_are_sequential_inside_the_time_limit_and_pauses_outlast_a_lease()
    {
        Prop.ForAll(SpecGenerator.Arbitrary(Constraints), spec =>
        {
            TimeSpan previousEnd = TimeSpan.Zero;
            foreach (ScheduledFault f in spec.Faults)
            {
                if (f.At < previousEnd || f.End > spec.TimeLimit || f.At < TimeSpan.FromSeconds(1))
                    return false;
                if (f.Fault.Kind == FaultKind.PauseNode && f.Fault.Duration <= spec.Lease)
                    return false;
                previousEnd = f.End;
            }
            return spec.KeyWeights.Count == spec.Keys && spec.Mix.Total > 0;
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Every_shrink_is_smaller_and_still_valid()
    {
        for (long seed = 1; seed <= 60; seed++)
        {
            RunSpec spec = SpecGenerator.FromSeed(seed, Constraints);
            foreach (RunSpec smaller in SpecGenerator.Shrink(spec))
            {
                Assert.True(smaller.Size < spec.Size, $"{smaller.Describe()} is not smaller than {spec.Describe()}");
                smaller.Validate();
                Assert.Equal(spec.Seed, smaller.Seed);
                Assert.All(smaller.Faults, f => Assert.True(f.End <= smaller.TimeLimit));
            }
        }
    }

    [Fact]
    public void Shrinking_repeatedly_reaches_a_minimal_spec()
    {
        RunSpec spec = SpecGenerator.FromSeed(99, Constraints with { Clients = 6 });
        Assert.NotEmpty(spec.Faults);
        var arbitrary = SpecGenerator.Arbitrary(Constraints);
        // "Still failing" = still has a kill fault: shrinking must keep one kill and strip everything else it can.
        static bool Fails(RunSpec s) => s.Faults.Any(f => f.Fault.Kind == FaultKind.KillNode);
        spec = spec with { Faults = spec.Faults.Append(new ScheduledFault(TimeSpan.FromSeconds(25), new Fault(FaultKind.KillNode, 0, TimeSpan.FromSeconds(2)))).ToArray() };
        int steps = 0;
        bool improved = true;
        while (improved && steps < 1000)
        {
            improved = false;
            foreach (RunSpec candidate in arbitrary.Shrinker(spec))
            {
                steps++;
                if (Fails(candidate))
                {
                    spec = candidate;
                    improved = true;
                    break;
                }
            }
        }
        Assert.Single(spec.Faults);
        Assert.Equal(1, spec.Clients);
        Assert.Equal(1, spec.Keys);
        Assert.True(spec.Ops <= 10);
    }

    [Fact]
    public void Op_streams_are_deterministic_per_client_and_follow_the_mix()
    {
        RunSpec spec = SpecGenerator.FromSeed(5, Constraints with { Workload = Workload.Register }) with { Mix = new OpMix(1, 1, 0), Keys = 3, KeyWeights = new[] { 1, 1, 1 } };
        OpPlan[] Draw(int client)
        {
            var stream = new OpStream(spec, client);
            return Enumerable.Range(0, 600).Select(_ => stream.Next()).ToArray();
        }
        Assert.Equal(Draw(0), Draw(0));
        Assert.NotEqual(Draw(0), Draw(1));
        OpPlan[] plans = Draw(2);
        Assert.DoesNotContain(plans, p => p.Kind == OpKind.Cas);
        Assert.Contains(plans, p => p.Kind == OpKind.Read);
        Assert.Contains(plans, p => p.Kind == OpKind.Write);
        Assert.Equal(new[] { 0, 1, 2 }, plans.Select(p => p.Slot).Distinct().Order());
    }
}

public sealed class ShrinkLoopTests
{
    private static RunResult Result(RunSpec spec, Verdict verdict) => new(spec, verdict,
        new CheckReport(verdict, null, null, Array.Empty<string>(), TimeSpan.Zero, Array.Empty<CheckerVerdict>()), Array.Empty<Operation>(), Array.Empty<FaultEvent>(),
        "", "", 1, new RunStats(0, 0, 0, 0, new Dictionary<string, int>(), TimeSpan.Zero, TimeSpan.Zero), Array.Empty<string>(), null, null, null);

    [Fact]
    public async Task The_shrink_loop_keeps_the_smallest_failing_spec_within_its_run_budget()
    {
        var constraints = new SpecConstraints { FaultKinds = new[] { FaultKind.KillNode, FaultKind.PauseNode }, TimeLimit = TimeSpan.FromSeconds(40), Clients = 6 };
        RunSpec spec = SpecGenerator.FromSeed(3, constraints);
        spec = spec with { Faults = spec.Faults.Prepend(new ScheduledFault(TimeSpan.FromSeconds(1), new Fault(FaultKind.PauseNode, 0, TimeSpan.FromSeconds(2)))).ToArray() };
        // The "bug": shows up only with a pause and at least two clients.
        int runs = 0;
        Task<RunResult> Run(RunSpec s, CancellationToken _)
        {
            runs++;
            bool fails = s.Clients >= 2 && s.Faults.Any(f => f.Fault.Kind == FaultKind.PauseNode);
            return Task.FromResult(Result(s, fails ? Verdict.Invalid : Verdict.Valid));
        }

        ShrinkResult shrunk = await Runner.ShrinkAsync(Result(spec, Verdict.Invalid), Run, SpecGenerator.Arbitrary(constraints), 200, null, default);
        Assert.Equal(runs, shrunk.Runs);
        Assert.True(shrunk.Runs <= 200);
        RunSpec smallest = shrunk.Smallest.Spec;
        Assert.Equal(Verdict.Invalid, shrunk.Smallest.Verdict);
        Assert.Equal(FaultKind.PauseNode, Assert.Single(smallest.Faults).Fault.Kind);
        Assert.Equal(2, smallest.Clients);
        Assert.Equal(1, smallest.Keys);
        Assert.True(smallest.Size < spec.Size);

        runs = 0;
        ShrinkResult bounded = await Runner.ShrinkAsync(Result(spec, Verdict.Invalid), Run, SpecGenerator.Arbitrary(constraints), 3, null, default);
        Assert.Equal(3, bounded.Runs);
        Assert.Equal(3, runs);
    }
}
