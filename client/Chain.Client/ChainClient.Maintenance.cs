using System.Diagnostics;
using Chain.Client.Internal;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Client;

/// <summary>What one garbage collection pass did.</summary>
public sealed record GcReport(int Chains, long ReferencedChunks, long StoredChunks, long Candidates, long Deleted, TimeSpan Elapsed);

/// <summary>One node's integrity counters, and what a scrub of it found (when one ran).</summary>
public sealed record NodeIntegrity(string NodeId, long CorruptDetected, long Repaired, long RepairFailures, IReadOnlyList<string> RecentCorruptions,
    long ScrubbedChunks = 0, long ScrubbedBytes = 0, long ScrubCorrupt = 0, long ScrubRepaired = 0,
    long ResidentBytes = 0, long ManagedHeapBytes = 0, long ManagedCommittedBytes = 0);

public sealed partial class ChainClient
{
    private const int GcPage = 5000;

    /// <summary>
    /// Removes chunks no object references: marks every chunk id referenced by committed object records (each chain's
    /// tail), then asks each chain's head to drop its unreferenced chunks. A head drops only chunks last touched longer
    /// ago than its GC grace plus the time since this mark began, so chunks of uploads in flight (touched when
    /// uploaded, and a manifest commit refuses chunks older than half the grace) are never taken.
    /// </summary>
    public async Task<GcReport> CollectGarbageAsync(CancellationToken cancellationToken = default)
    {
        CheckNotDisposed();
        var started = Stopwatch.StartNew();
        var snapshot = await FreshConfigAsync(cancellationToken).ConfigureAwait(false);
        var referenced = new HashSet<string>(StringComparer.Ordinal);
        foreach (var chain in snapshot.Config.Chains)
        {
            ByteString after = ByteString.Empty;
            while (true)
            {
                var request = new ChunkRefsRequest { ChainId = chain.ChainId, After = after, Limit = GcPage };
                var page = await _retry.RunAsync("gc mark", async (state, ct) =>
                {
                    var current = await _config.GetAsync(fresh: false, ct).ConfigureAwait(false);
                    state.ConfigVersion = current.Version;
                    var tail = MemberRoute(current, chain.ChainId, tail: true);
                    request.Epoch = tail.Epoch;
                    return await _transport.For(tail.Address).UnaryAsync(AdminMethods.ChunkRefs, request, UnaryOptions(ct)).ConfigureAwait(false);
                }, cancellationToken).ConfigureAwait(false);
                foreach (var id in page.Sha256)
                    referenced.Add(Convert.ToBase64String(id.Span));
                if (page.NextAfter.IsEmpty)
                    break;
                after = page.NextAfter;
            }
        }

        long stored = 0, candidates = 0, deleted = 0;
        foreach (var chain in snapshot.Config.Chains)
        {
            ByteString after = ByteString.Empty;
            while (true)
            {
                var request = new ListChunksRequest { ChainId = chain.ChainId, After = after, Limit = GcPage };
                var page = await _retry.RunAsync("gc list", async (state, ct) =>
                {
                    var current = await _config.GetAsync(fresh: false, ct).ConfigureAwait(false);
                    state.ConfigVersion = current.Version;
                    var head = MemberRoute(current, chain.ChainId, tail: false);
                    request.Epoch = head.Epoch;
                    return await _transport.For(head.Address).UnaryAsync(AdminMethods.ListChunks, request, UnaryOptions(ct)).ConfigureAwait(false);
                }, cancellationToken).ConfigureAwait(false);
                stored += page.Chunks.Count;
                var unreferenced = page.Chunks.Where(c => !referenced.Contains(Convert.ToBase64String(c.Sha256.Span))).Select(c => c.Sha256).ToList();
                candidates += unreferenced.Count;
                if (unreferenced.Count > 0)
                {
                    var sweep = new SweepChunksRequest { ChainId = chain.ChainId };
                    sweep.Sha256.AddRange(unreferenced);
                    var result = await _retry.RunAsync("gc sweep", async (state, ct) =>
                    {
                        var current = await _config.GetAsync(fresh: false, ct).ConfigureAwait(false);
                        state.ConfigVersion = current.Version;
                        var head = MemberRoute(current, chain.ChainId, tail: false);
                        sweep.Epoch = head.Epoch;
                        sweep.MarkAgeMs = (ulong)started.ElapsedMilliseconds;
                        return await _transport.For(head.Address).UnaryAsync(AdminMethods.SweepChunks, sweep, UnaryOptions(ct)).ConfigureAwait(false);
                    }, cancellationToken).ConfigureAwait(false);
                    deleted += result.Deleted;
                }
                if (!page.Truncated || page.Chunks.Count == 0)
                    break;
                after = page.Chunks[^1].Sha256;
            }
        }
        return new GcReport(snapshot.Config.Chains.Count, referenced.Count, stored, candidates, deleted, started.Elapsed);
    }

    /// <summary>Integrity counters of every node; with <paramref name="scrub"/>, each node first verifies (and repairs) every chunk it holds.</summary>
    public async Task<IReadOnlyList<NodeIntegrity>> CheckIntegrityAsync(bool scrub, CancellationToken cancellationToken = default)
    {
        CheckNotDisposed();
        var snapshot = await FreshConfigAsync(cancellationToken).ConfigureAwait(false);
        var result = new List<NodeIntegrity>();
        foreach (var status in snapshot.Config.Nodes.OrderBy(n => n.Node.NodeId, StringComparer.Ordinal))
        {
            if (!Uri.TryCreate(status.Node.Address, UriKind.Absolute, out var address))
                continue;
            ScrubResponse? scrubbed = null;
            if (scrub)
            {
                scrubbed = await _retry.RunAsync("scrub", (_, ct) =>
                    _transport.For(address).UnaryAsync(AdminMethods.Scrub, new ScrubRequest(), new CallOptions { CancellationToken = ct }),
                    cancellationToken, budget: TimeSpan.FromHours(1)).ConfigureAwait(false);
            }
            var health = await _retry.RunAsync("health", (_, ct) =>
                _transport.For(address).UnaryAsync(AdminMethods.Health, new HealthRequest(), UnaryOptions(ct)), cancellationToken).ConfigureAwait(false);
            result.Add(new NodeIntegrity(health.NodeId, (long)health.CorruptChunksDetected, (long)health.ChunksRepaired, (long)health.RepairFailures,
                health.RecentCorruptions.ToList(), (long)(scrubbed?.ChunksChecked ?? 0), (long)(scrubbed?.BytesChecked ?? 0),
                (long)(scrubbed?.Corrupt ?? 0), (long)(scrubbed?.Repaired ?? 0),
                (long)health.ResidentBytes, (long)health.ManagedHeapBytes, (long)health.ManagedCommittedBytes));
        }
        return result;
    }

    /// <summary>The head (or tail) of a chain in this snapshot, computed here (not through read routing, which may spread reads).</summary>
    private static Route MemberRoute(ClusterSnapshot snapshot, uint chainId, bool tail)
    {
        var chain = snapshot.Config.Chains.FirstOrDefault(c => c.ChainId == chainId)
            ?? throw new ClusterNotReadyException($"chain {chainId} is missing from config version {snapshot.Version}");
        if (chain.Nodes.Count == 0)
            throw new ClusterNotReadyException($"chain {chainId} has no nodes in config version {snapshot.Version}");
        string nodeId = tail ? chain.Nodes[^1] : chain.Nodes[0];
        var address = snapshot.Config.Nodes.FirstOrDefault(n => n.Node?.NodeId == nodeId)?.Node.Address;
        if (address is null || !Uri.TryCreate(address, UriKind.Absolute, out var uri))
            throw new ClusterNotReadyException($"node '{nodeId}' of chain {chainId} has no address in config version {snapshot.Version}");
        return new Route(chainId, chain.Epoch, nodeId, uri);
    }
}
