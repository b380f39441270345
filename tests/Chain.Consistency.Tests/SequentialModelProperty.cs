using FsCheck;
using FsCheck.Fluent;

namespace Chain.Consistency.Tests;

/// <summary>
/// Histories produced by running a sequential register model with random, non-overlapping timings are always
/// linearizable; replacing one read's output with a never-written value makes them not linearizable.
/// </summary>
public class SequentialModelProperty
{
    public sealed record Step(int Kind, int Key, int Choice, int Gap, int Duration);

    public sealed record Scenario(Step[] Steps, int Victim)
    {
        public override string ToString() =>
            $"victim {Victim}: " + string.Join(", ", Steps.Select(s => $"({s.Kind},{s.Key},{s.Choice},{s.Gap},{s.Duration})"));
    }

    private static Gen<Step> StepGen() =>
        Gen.Choose(0, 2).Zip(Gen.Choose(0, 2), (kind, key) => (kind, key))
            .Zip(Gen.Choose(0, 2), (p, choice) => (p.kind, p.key, choice))
            .Zip(Gen.Choose(0, 5), (p, gap) => (p.kind, p.key, p.choice, gap))
            .Zip(Gen.Choose(0, 5), (p, duration) => new Step(p.kind, p.key, p.choice, p.gap, duration));

    private static Gen<Scenario> ScenarioGen() =>
        Gen.Choose(0, 40).SelectMany(n => Gen.ArrayOf(StepGen(), n))
            .Zip(Gen.Choose(0, 1000), (steps, victim) => new Scenario(steps, victim));

    /// <summary>Runs the sequential model; returns the history.</summary>
    internal static List<Operation> Run(Step[] steps)
    {
        var values = new Dictionary<string, string?>();
        var written = new List<string>();
        var history = new List<Operation>();
        long time = 0;
        for (var id = 0; id < steps.Length; id++)
        {
            var step = steps[id];
            var key = $"k{step.Key}";
            values.TryGetValue(key, out var current);
            var call = time + step.Gap;
            var ret = call + step.Duration;
            time = ret;
            switch (step.Kind)
            {
                case 0:
                    history.Add(Ops.Read(id, key, current, call, ret));
                    break;
                case 1:
                    var value = $"w{id}";
                    written.Add(value);
                    values[key] = value;
                    history.Add(Ops.Write(id, key, value, call, ret));
                    break;
                default:
                    var expected = step.Choice switch
                    {
                        0 => current,
                        1 => written.Count > 0 ? written[id % written.Count] : null,
                        _ => null,
                    };
                    var input = $"c{id}";
                    var ok = string.Equals(current, expected, StringComparison.Ordinal);
                    if (ok)
                    {
                        written.Add(input);
                        values[key] = input;
                    }

                    history.Add(Ops.Cas(id, key, expected, input, ok, call, ret));
                    break;
            }
        }

        return history;
    }

    [Fact]
    public void SequentialModelHistoriesAreValidAndCorruptedReadsInvalid()
    {
        var property = Prop.ForAll(Arb.From(ScenarioGen()), (Scenario scenario) =>
        {
            var history = Run(scenario.Steps);
            if (LinearizabilityChecker.Check(history, TimeSpan.FromSeconds(5)).Verdict != Verdict.Valid)
            {
                return false;
            }

            var reads = history.Where(o => o.Kind == OpKind.Read).ToList();
            if (reads.Count == 0)
            {
                return true;
            }

            var victim = reads[scenario.Victim % reads.Count];
            var corrupted = history.Select(o => o.Id == victim.Id ? o with { Output = "never-written" } : o).ToList();
            var result = LinearizabilityChecker.Check(corrupted, TimeSpan.FromSeconds(5));
            return result.Verdict == Verdict.Invalid && result.InvalidKey == victim.Key;
        });
        FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(300), property);
    }
}
