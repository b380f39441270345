namespace Chain.Consistency.Tests;

/// <summary>
/// Differential test of the info-write pruning: on small random histories full of info writes — valid ones from the
/// simulated store and ones with reads changed to other written values (often invalid) — the verdict with pruning
/// equals the verdict of the plain search.
/// </summary>
public class InfoPruningProperty
{
    [Fact]
    public void PruningNeverChangesAVerdict()
    {
        var budget = TimeSpan.FromSeconds(20);
        int valid = 0, invalid = 0;
        for (var seed = 0; seed < 300; seed++)
        {
            var random = new Random(seed);
            var history = HistoryGenerator.Generate(new GeneratorOptions
            {
                Operations = 24,
                Keys = 1,
                Clients = 4,
                InfoShare = 0.3,
                FailShare = 0.05,
                CasShare = seed % 3 == 0 ? 0 : 0.3,
                MaxGap = 50,
                Seed = seed,
            });
            if (seed % 2 == 1)
            {
                // Mutate a couple of ok reads to another written value (or absent).
                var written = history.Where(o => o.Input is not null).Select(o => o.Input).Distinct().ToList();
                var reads = history.Where(o => o.Kind == OpKind.Read && o.Status == OpStatus.Ok).Select(o => o.Id).ToList();
                for (var m = 0; m < 2 && reads.Count > 0 && written.Count > 0; m++)
                {
                    var victim = reads[random.Next(reads.Count)];
                    var value = random.Next(5) == 0 ? null : written[random.Next(written.Count)];
                    history = history.Select(o => o.Id == victim ? o with { Output = value } : o).ToList();
                }
            }

            if (seed % 4 == 3)
            {
                // Break the unique-values premise: an info write writes a value another write also writes.
                var infos = history.Where(o => o.Status == OpStatus.Info && o.Kind == OpKind.Write).Select(o => o.Id).ToList();
                var others = history.Where(o => o.Kind == OpKind.Write && o.Status != OpStatus.Fail).Select(o => o.Input).ToList();
                if (infos.Count > 0 && others.Count > 1)
                {
                    var victim = infos[random.Next(infos.Count)];
                    var value = others[random.Next(others.Count)];
                    history = history.Select(o => o.Id == victim ? o with { Input = value } : o).ToList();
                }
            }

            var plain = LinearizabilityChecker.Check(history, budget, pruneInfo: false);
            var pruned = LinearizabilityChecker.Check(history, budget, pruneInfo: true);
            Assert.NotEqual(Verdict.Unknown, plain.Verdict);
            Assert.True(plain.Verdict == pruned.Verdict,
                $"seed {seed}: plain {plain.Verdict}, pruned {pruned.Verdict}\n" + string.Join("\n", history.Select(History.Serialize)));
            if (plain.Verdict == Verdict.Valid)
            {
                valid++;
            }
            else
            {
                invalid++;
            }
        }

        // Both outcomes occur often enough for the comparison to mean something.
        Assert.True(valid > 100 && invalid > 50, $"{valid} valid, {invalid} invalid");
    }
}
