using System.Diagnostics;
using System.Text;
using Chain.Client;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;

namespace Chain.Harness.BellJar;

/// <summary>Checks the scenarios share: "every chain serves", the master's full table, waiting for a condition (bounded).</summary>
public static class DrillProbes
{
    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(200);

    /// <summary>A fresh ledger key that <see cref="Placement.ChainFor"/> maps to <paramref name="chain"/>.</summary>
    public static string KeyOnChain(WriteLedger ledger, uint chain, int chains)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        for (int attempt = 0; attempt < 100_000; attempt++)
        {
            string key = ledger.NextKey($"probe-c{chain}");
            if (Placement.ChainFor(WriteLedger.Bucket, Encoding.UTF8.GetBytes(key), chains) == chain)
                return key;
        }
        throw new InvalidOperationException($"no key found for chain {chain} of {chains}");
    }

    /// <summary>The chains (of <paramref name="chains"/>) on which a write of a fresh key and its read-back both succeed now.</summary>
    public static async Task<IReadOnlySet<uint>> ServingChainsAsync(DrillContext context, ChainClient client, IEnumerable<uint> chains, int chainCount, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(context);
        var serving = new HashSet<uint>();
        await Parallel.ForEachAsync(chains, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (chain, token) =>
        {
            string key = KeyOnChain(context.Ledger, chain, chainCount);
            if (await context.Ledger.WriteAsync(client, key, chunked: false, token).ConfigureAwait(false)
                && await context.Ledger.ReadBackAsync(client, key, token).ConfigureAwait(false))
            {
                lock (serving)
                    serving.Add(chain);
            }
        }).ConfigureAwait(false);
        return serving;
    }

    /// <summary>Waits until every chain serves (write and read of a key on it); returns the time taken. Bounded by <paramref name="ct"/>.</summary>
    public static async Task<TimeSpan> WaitUntilEveryChainServesAsync(DrillContext context, int chainCount, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(context);
        var stopwatch = Stopwatch.StartNew();
        var pending = Enumerable.Range(0, chainCount).Select(c => (uint)c).ToHashSet();
        await using ChainClient client = context.Client(TimeSpan.FromSeconds(3));
        while (pending.Count > 0)
        {
            ct.ThrowIfCancellationRequested();
            IReadOnlySet<uint> served = await ServingChainsAsync(context, client, pending.ToArray(), chainCount, ct).ConfigureAwait(false);
            pending.ExceptWith(served);
            if (pending.Count > 0)
                await Task.Delay(Pause, ct).ConfigureAwait(false);
        }
        return stopwatch.Elapsed;
    }

    /// <summary>The master's full table (with syncing nodes), or null when it does not answer within 2 s.</summary>
    public static async Task<ClusterConfig?> ConfigAsync(LocalCluster cluster, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        using var channel = new RpcChannel(cluster.MasterAddress);
        try
        {
            return await channel.UnaryAsync(MasterMethods.GetConfig, new GetConfigRequest(),
                new CallOptions { Timeout = TimeSpan.FromSeconds(2), CancellationToken = ct }).ConfigureAwait(false);
        }
        catch (RpcException)
        {
            return null;
        }
    }

    /// <summary>Polls <paramref name="condition"/> every 200 ms until true; returns the time taken. Bounded by <paramref name="ct"/>.</summary>
    public static async Task<TimeSpan> WaitForAsync(Func<CancellationToken, Task<bool>> condition, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var stopwatch = Stopwatch.StartNew();
        while (!await condition(ct).ConfigureAwait(false))
            await Task.Delay(Pause, ct).ConfigureAwait(false);
        return stopwatch.Elapsed;
    }
}
