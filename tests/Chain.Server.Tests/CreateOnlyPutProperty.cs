using System.Text;
using Chain.Client;
using FsCheck;
using FsCheck.Fluent;

namespace Chain.Server.Tests;

/// <summary>
/// FsCheck property: of concurrent create-only puts of one key, exactly one succeeds, and afterwards every reader —
/// concurrent reads through the writing client and a read through a second client — sees exactly the winner's value
/// and version. One cluster serves every generated case; each case uses fresh keys.
/// </summary>
public class CreateOnlyPutProperty
{
    private sealed record Case(int Keys, int WritersPerKey);

    private static Gen<Case> CaseGen() =>
        Gen.Choose(1, 8).Zip(Gen.Choose(2, 16), (keys, writers) => new Case(keys, writers));

    private static async Task<bool> RunCaseAsync(ChainClient writer, ChainClient other, string bucket, int caseNo, Case spec)
    {
        var keys = Enumerable.Range(0, spec.Keys).Select(k => $"case{caseNo}/key{k}").ToArray();
        string Value(int k, int w) => $"{keys[k]} from writer {w}";
        var attempts = keys.SelectMany((_, k) => Enumerable.Range(0, spec.WritersPerKey).Select(async w =>
        {
            try
            {
                PutResult result = await writer.PutAsync(bucket, keys[k], Encoding.UTF8.GetBytes(Value(k, w)), new PutOptions { IfAbsent = true });
                return (Key: k, Writer: w, Version: (ulong?)result.Version);
            }
            catch (PreconditionFailedException)
            {
                return (Key: k, Writer: w, Version: (ulong?)null);
            }
        })).ToList();
        var outcomes = await Task.WhenAll(attempts);

        for (int k = 0; k < keys.Length; k++)
        {
            var winners = outcomes.Where(o => o.Key == k && o.Version is not null).ToList();
            Assert.True(winners.Count == 1, $"{keys[k]}: {winners.Count} create-only puts succeeded, expected exactly one");
            (_, int winner, ulong? version) = winners[0];
            byte[] expected = Encoding.UTF8.GetBytes(Value(k, winner));
            var reads = Enumerable.Range(0, 4).Select(_ => writer.GetBytesAsync(bucket, keys[k])).ToList();
            foreach (byte[] read in await Task.WhenAll(reads))
                Assert.Equal(expected, read);
            Assert.Equal(expected, await other.GetBytesAsync(bucket, keys[k]));
            Assert.Equal(version, (await other.StatAsync(bucket, keys[k])).Version);
            Assert.Equal(version, (await writer.StatAsync(bucket, keys[k])).Version);
        }
        return true;
    }

    [Fact]
    public async Task Exactly_one_of_concurrent_create_only_puts_wins_and_every_reader_sees_it()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 4);
        using ChainClient writer = c.CreateClient();
        using ChainClient other = c.CreateClient();
        await writer.CreateBucketAsync("create-only");
        int caseNo = 0;
        var property = Prop.ForAll(Arb.From(CaseGen()), (Case spec) =>
            RunCaseAsync(writer, other, "create-only", Interlocked.Increment(ref caseNo), spec).GetAwaiter().GetResult());
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(20), property);
        Assert.Equal(20, caseNo);
    }
}
