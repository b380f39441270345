using System.Diagnostics;
using System.Globalization;
using Chain.Consistency;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;

namespace Chain.Harness;

/// <summary>What one member reported for its replica of a chain (or why it did not answer).</summary>
public sealed record ReplicaDigest(
    string NodeId,
    ulong Epoch,
    int Position,
    ulong AppliedSeq,
    ulong AckedSeq,
    ulong ObjectCount,
    string ObjectsSha256,
    string? Error)
{
    public override string ToString() => Error is not null
        ? $"{NodeId}: {Error}"
        : $"{NodeId}: position {Position} epoch {Epoch} applied {AppliedSeq} acked {AckedSeq} objects {ObjectCount} sha256 {ObjectsSha256[..Math.Min(16, ObjectsSha256.Length)]}";
}

/// <summary>Agreement of one chain's members.</summary>
/// <param name="Converged">Every member answered with the same applied sequence number, object count and object digest.</param>
/// <param name="Differing">Members whose state differs from the majority's (all of them when there is no majority), or that did not answer.</param>
public sealed record ChainConvergence(
    uint ChainId,
    ulong Epoch,
    IReadOnlyList<string> Members,
    IReadOnlyList<string> Syncing,
    bool Converged,
    IReadOnlyList<string> Differing,
    IReadOnlyList<ReplicaDigest> Replicas)
{
    public string Describe() =>
        $"chain {ChainId} epoch {Epoch} [{string.Join(",", Members)}]" + (Syncing.Count > 0 ? $" syncing [{string.Join(",", Syncing)}]" : "") +
        (Converged ? ": converged" : $": DIFFER ({string.Join(", ", Differing)})") + "; " + string.Join("; ", Replicas);
}

/// <summary>Outcome of a convergence check.</summary>
/// <param name="Quiet">The cluster was quiet when judged: no syncing nodes, every member on the chain's epoch with nothing in flight, and two polls in a row saw the same state.</param>
/// <param name="Unreachable">Some member did not answer at the last poll: its state is unknown.</param>
public sealed record ConvergenceResult(bool Quiet, bool Unreachable, TimeSpan Waited, ulong ConfigVersion, IReadOnlyList<ChainConvergence> Chains)
{
    public bool Converged => Quiet && Chains.All(c => c.Converged);

    /// <summary>Valid: quiet and every chain agrees. Unknown: a member could not be asked. Invalid: members disagree (after the wait).</summary>
    public Verdict Verdict => Converged ? Verdict.Valid : Unreachable ? Verdict.Unknown : Verdict.Invalid;

    public CheckerVerdict ToVerdict()
    {
        var waited = Waited.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
        var summary = Verdict switch
        {
            Verdict.Valid => $"{Chains.Count} chains: every member holds identical object records (quiet after {waited} s)",
            Verdict.Unknown => $"some members did not answer within {waited} s",
            _ => $"{Chains.Count(c => !c.Converged)} of {Chains.Count} chains did not converge" + (Quiet ? "" : $" (not quiet after {waited} s)"),
        };
        var firstBad = Chains.FirstOrDefault(c => !c.Converged);
        return new CheckerVerdict("convergence", Verdict, summary, Chains.Select(c => c.Describe()).ToList(),
            firstBad is null ? null : $"chain {firstBad.ChainId.ToString(CultureInfo.InvariantCulture)}");
    }
}

public sealed record ConvergenceOptions
{
    /// <summary>How long to wait for the cluster to become quiet before judging what it has.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(200);
    /// <summary>Deadline of each RPC to the master or a node.</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(3);
}

/// <summary>
/// Replica convergence: once the cluster is quiet (no writes, no faults), every member of every chain must hold
/// identical object records. Asks the master for the chain table and every member's Admin/ReplicaState for its
/// applied sequence number, object count and object-record digest; polls (bounded) until the cluster is quiet —
/// no syncing nodes, every member on its chain's epoch with applied = acked, and the same state on two polls in a
/// row — then reports per-chain agreement or the differing members.
/// </summary>
public static class ConvergenceChecker
{
    public static Task<ConvergenceResult> CheckAsync(LocalCluster cluster, ConvergenceOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return CheckAsync(cluster.MasterAddress, options, cancellationToken);
    }

    public static async Task<ConvergenceResult> CheckAsync(Uri master, ConvergenceOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(master);
        options ??= new ConvergenceOptions();
        if (options.Timeout < TimeSpan.Zero || options.PollInterval <= TimeSpan.Zero || options.CallTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "timeout must not be negative; poll interval and call timeout must be positive");
        }

        var stopwatch = Stopwatch.StartNew();
        var channels = new Dictionary<string, RpcChannel>(StringComparer.Ordinal);
        using var masterChannel = new RpcChannel(master);
        try
        {
            string? previous = null;
            Snapshot? last = null;
            var maxPolls = (int)Math.Min(100_000, options.Timeout / options.PollInterval + 2);
            for (var poll = 0; poll < maxPolls; poll++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                last = await SnapshotAsync(masterChannel, channels, options, cancellationToken).ConfigureAwait(false);
                var fingerprint = last.Fingerprint();
                if (last.LooksQuiet && fingerprint == previous)
                {
                    return last.Judge(quiet: true, stopwatch.Elapsed);
                }

                previous = last.LooksQuiet ? fingerprint : null;
                if (stopwatch.Elapsed >= options.Timeout)
                {
                    break;
                }

                await Task.Delay(options.PollInterval, cancellationToken).ConfigureAwait(false);
            }

            return last!.Judge(quiet: false, stopwatch.Elapsed);
        }
        finally
        {
            foreach (var channel in channels.Values)
            {
                channel.Dispose();
            }
        }
    }

    private sealed record ChainSnapshot(ChainInfo Chain, IReadOnlyList<ReplicaDigest> Replicas);

    private sealed record Snapshot(ulong ConfigVersion, string? MasterError, IReadOnlyList<ChainSnapshot> Chains)
    {
        public bool LooksQuiet => MasterError is null && Chains.All(c =>
            c.Chain.Syncing.Count == 0 &&
            c.Replicas.All(r => r.Error is null && r.Epoch == c.Chain.Epoch && r.AppliedSeq == r.AckedSeq) &&
            c.Replicas.Select(r => r.AppliedSeq).Distinct().Count() <= 1);

        public string Fingerprint() =>
            ConfigVersion.ToString(CultureInfo.InvariantCulture) + "|" + string.Join("|", Chains.Select(c =>
                c.Chain.ChainId + ":" + c.Chain.Epoch + ":" + string.Join(",", c.Replicas.Select(r => $"{r.NodeId}/{r.AppliedSeq}/{r.ObjectsSha256}/{r.Error}"))));

        public ConvergenceResult Judge(bool quiet, TimeSpan waited)
        {
            if (MasterError is not null)
            {
                return new ConvergenceResult(false, true, waited, ConfigVersion, []);
            }

            var chains = Chains.Select(c => Compare(c.Chain, c.Replicas)).ToList();
            var unreachable = Chains.Any(c => c.Replicas.Any(r => r.Error is not null));
            return new ConvergenceResult(quiet, unreachable, waited, ConfigVersion, chains);
        }
    }

    /// <summary>
    /// Compares one chain's members: converged when every member answered with the same applied sequence number,
    /// object count and object digest. Differing: the members outside the majority state (all members when no state
    /// has a strict majority) and those that did not answer.
    /// </summary>
    public static ChainConvergence Compare(ChainInfo chain, IReadOnlyList<ReplicaDigest> replicas)
    {
        ArgumentNullException.ThrowIfNull(chain);
        ArgumentNullException.ThrowIfNull(replicas);
        var groups = replicas.Where(r => r.Error is null)
            .GroupBy(r => (r.AppliedSeq, r.ObjectCount, r.ObjectsSha256))
            .OrderByDescending(g => g.Count()).ToList();
        (ulong, ulong, string)? majority = groups.Count > 0 && groups[0].Count() * 2 > replicas.Count ? groups[0].Key : null;
        var differing = replicas
            .Where(r => r.Error is not null || majority is null || (r.AppliedSeq, r.ObjectCount, r.ObjectsSha256) != majority.Value)
            .Select(r => r.NodeId).ToList();
        return new ChainConvergence(chain.ChainId, chain.Epoch, chain.Nodes.ToList(), chain.Syncing.ToList(),
            replicas.Count > 0 && differing.Count == 0, differing, replicas);
    }

    private static async Task<Snapshot> SnapshotAsync(RpcChannel master, Dictionary<string, RpcChannel> channels, ConvergenceOptions options, CancellationToken ct)
    {
        ClusterConfig config;
        try
        {
            config = await master.UnaryAsync(MasterMethods.GetConfig, new GetConfigRequest(), Call(options, ct)).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            return new Snapshot(0, $"master: {e.Status}: {e.Detail}", []);
        }

        var addresses = config.Nodes.ToDictionary(n => n.Node.NodeId, n => n.Node.Address, StringComparer.Ordinal);
        var chains = new List<ChainSnapshot>();
        foreach (var chain in config.Chains.OrderBy(c => c.ChainId))
        {
            var replicas = await Task.WhenAll(chain.Nodes.Select(id => ReplicaAsync(id, chain.ChainId, addresses, channels, options, ct))).ConfigureAwait(false);
            chains.Add(new ChainSnapshot(chain, replicas));
        }

        return new Snapshot(config.Version, null, chains);
    }

    private static async Task<ReplicaDigest> ReplicaAsync(string nodeId, uint chainId, Dictionary<string, string> addresses,
        Dictionary<string, RpcChannel> channels, ConvergenceOptions options, CancellationToken ct)
    {
        if (!addresses.TryGetValue(nodeId, out var address))
        {
            return new ReplicaDigest(nodeId, 0, -1, 0, 0, 0, "", "the master lists no address for it");
        }

        RpcChannel channel;
        lock (channels)
        {
            var key = nodeId + " " + address;
            if (!channels.TryGetValue(key, out channel!))
            {
                channel = new RpcChannel(new Uri(address));
                channels.Add(key, channel);
            }
        }

        try
        {
            var state = await channel.UnaryAsync(AdminMethods.ReplicaState, new ReplicaStateRequest { ChainId = chainId }, Call(options, ct)).ConfigureAwait(false);
            return new ReplicaDigest(nodeId, state.Epoch, state.Position, state.AppliedSeq, state.AckedSeq, state.ObjectCount,
                Convert.ToHexString(state.ObjectsSha256.Span), null);
        }
        catch (RpcException e)
        {
            return new ReplicaDigest(nodeId, 0, -1, 0, 0, 0, "", $"{e.Status}: {e.Detail}");
        }
    }

    private static CallOptions Call(ConvergenceOptions options, CancellationToken ct) => new() { Timeout = options.CallTimeout, CancellationToken = ct };
}
