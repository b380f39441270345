using System.Collections.Concurrent;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Microsoft.Extensions.Logging;

namespace Chain.Master;

/// <summary>
/// The configuration master (embedded mode): registration, heartbeats, the chain table and buckets.
/// Every change is durable in the state store before any caller learns of it, and bumps the config version.
/// Failure handling (ejection, rejoin, spares) comes with issue 3; this master assumes nodes stay up.
/// </summary>
public sealed class MasterService
{
    private readonly IMasterStateStore _store;
    private readonly MasterOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly SemaphoreSlim _mutex = new(1, 1);
    private readonly ConcurrentDictionary<string, long> _lastHeartbeatMs = new(StringComparer.Ordinal);
    private ClusterConfig _state;
    private readonly long _startedMs;
    private readonly long _origin;
    // Per (chain, syncing node): the last applied sequence number it reported and when it last moved.
    private readonly ConcurrentDictionary<(uint Chain, string Node), (ulong Progress, long SinceMs)> _syncProgress = new();
    // The config version each node reported in its last heartbeat (the one it runs).
    private readonly ConcurrentDictionary<string, ulong> _reportedVersion = new(StringComparer.Ordinal);
    // Buckets a DeleteBucket call is working on (guarded by _mutex).
    private readonly HashSet<string> _deleting = new(StringComparer.Ordinal);

    public MasterService(IMasterStateStore store, MasterOptions options, TimeProvider time, ILogger<MasterService> log)
    {
        options.Validate();
        _store = store;
        _options = options;
        _time = time;
        _log = log;
        _state = RecoverDeletingBuckets(store.Load() ?? new ClusterConfig { Version = 0, Replicas = (uint)options.EffectiveReplicas });
        _origin = _time.GetTimestamp();
        _startedMs = NowMs();
        _log.LogInformation("master state loaded: version {Version}, {Nodes} nodes, {Chains} chains, {Buckets} buckets",
            _state.Version, _state.Nodes.Count, _state.Chains.Count, _state.Buckets.Count);
    }

    /// <summary>
    /// A bucket saved as deleting means the master stopped in the middle of DeleteBucket: it goes back to active
    /// (its caller got no answer and may retry). Not written here — the constructor cannot wait for a write — but
    /// the recovered state is a pure function of the saved one, so a crash before the next save recovers the
    /// same state, with the same version, again.
    /// </summary>
    private ClusterConfig RecoverDeletingBuckets(ClusterConfig loaded)
    {
        var stuck = loaded.Buckets.Where(b => b.State == BucketState.BucketDeleting).ToList();
        if (stuck.Count == 0)
            return loaded;
        ClusterConfig next = loaded.Clone();
        foreach (BucketInfo bucket in next.Buckets)
            bucket.State = BucketState.BucketActive;
        next.Version = loaded.Version + 1;
        _log.LogWarning("bucket(s) {Buckets} were being deleted when the master stopped; back to active", string.Join(",", stuck.Select(b => b.Name)));
        return next;
    }

    /// <summary>The current durable config (no liveness).</summary>
    public ClusterConfig Current => _state;

    public void Register(RpcServiceRegistry registry)
    {
        registry.AddUnary(MasterMethods.Register, (r, c) => RegisterAsync(r, c.CancellationToken));
        registry.AddUnary(MasterMethods.Heartbeat, (r, c) => HeartbeatAsync(r, c.CancellationToken));
        registry.AddUnary(MasterMethods.GetConfig, (r, c) => Task.FromResult(GetConfig()));
        registry.AddUnary(MasterMethods.CreateBucket, (r, c) => CreateBucketAsync(r, c.CancellationToken));
        registry.AddUnary(MasterMethods.DeleteBucket, (r, c) => DeleteBucketAsync(r, c.CancellationToken));
    }

    public async Task<RegisterResponse> RegisterAsync(RegisterRequest request, CancellationToken cancellationToken)
    {
        NodeInfo? node = request.Node;
        if (node is null || string.IsNullOrWhiteSpace(node.NodeId) || node.NodeId.Length > 128)
            throw Errors.InvalidArgument("register: node id must be 1-128 characters");
        if (!Uri.TryCreate(node.Address, UriKind.Absolute, out Uri? address) || address.Scheme != "http")
            throw Errors.InvalidArgument($"register: address '{node.Address}' is not an http:// URL");
        if (Validation.CheckZone(node.Zone) is { } zoneProblem)
            throw Errors.InvalidArgument("register: " + zoneProblem);

        await EnterAsync(cancellationToken);
        try
        {
            ClusterConfig next = _state.Clone();
            NodeStatus? existing = next.Nodes.FirstOrDefault(n => n.Node.NodeId == node.NodeId);
            bool changed = false;
            if (existing is null)
            {
                next.Nodes.Add(new NodeStatus { Node = node.Clone() });
                changed = true;
                _log.LogInformation("node {Node} registered at {Address} (zone '{Zone}')", node.NodeId, node.Address, node.Zone);
            }
            else if (existing.Node.Address != node.Address || existing.Node.Zone != node.Zone)
            {
                existing.Node = node.Clone();
                changed = true;
                _log.LogInformation("node {Node} moved to {Address} (zone '{Zone}')", node.NodeId, node.Address, node.Zone);
            }

            if (next.Chains.Count == 0 && next.Nodes.Count >= _options.ExpectNodes)
            {
                ChainPlacement placement = ChainTable.Plan(next.Nodes.Select(n => n.Node).ToArray(), _options.EffectiveChains, _options.EffectiveReplicas);
                next.Chains.AddRange(placement.Chains);
                next.Replicas = (uint)_options.EffectiveReplicas;
                changed = true;
                _log.LogInformation("chain table built: {Chains} chains of {Replicas} over {Nodes} nodes in {Zones} zones",
                    next.Chains.Count, next.Replicas, next.Nodes.Count, placement.Zones);
                foreach (string warning in placement.Warnings)
                    _log.LogWarning("chain table: {Warning}", warning);
            }

            if (changed)
                await CommitAsync(next, cancellationToken);
            _lastHeartbeatMs[node.NodeId] = NowMs();
            return new RegisterResponse { ConfigVersion = _state.Version };
        }
        finally
        {
            _mutex.Release();
        }
    }

    public HeartbeatResponse Heartbeat(HeartbeatRequest request)
    {
        ClusterConfig state = _state;
        if (!state.Nodes.Any(n => n.Node.NodeId == request.NodeId))
            throw new RpcException(StatusCode.FailedPrecondition, $"node '{request.NodeId}' is not registered",
                new Dictionary<string, string> { [ErrorTrailers.Kind] = ErrorKinds.NotReady });
        _lastHeartbeatMs[request.NodeId] = NowMs();
        _reportedVersion[request.NodeId] = request.ConfigVersion;
        return new HeartbeatResponse { ConfigVersion = state.Version, LeaseMs = LeaseMs };
    }

    /// <summary>A heartbeat, plus promotion of a syncing node that reports it has caught up with its chain's tail.</summary>
    public async Task<HeartbeatResponse> HeartbeatAsync(HeartbeatRequest request, CancellationToken cancellationToken)
    {
        HeartbeatResponse response = Heartbeat(request);
        long now = NowMs();
        foreach (ChainProgress progress in request.Chains)
        {
            if (!_state.Chains.Any(c => c.ChainId == progress.ChainId && c.Syncing.Contains(request.NodeId)))
                continue;
            ulong moved = progress.AppliedSeq + progress.SyncBytes;
            _syncProgress.AddOrUpdate((progress.ChainId, request.NodeId), (moved, now),
                (_, old) => moved > old.Progress ? (moved, now) : old);
        }
        var ready = request.Chains.Where(p => p.CaughtUp && _state.Chains.Any(c =>
            c.ChainId == p.ChainId && c.Epoch == p.Epoch && c.Syncing.Contains(request.NodeId))).ToList();
        if (ready.Count == 0)
            return response;
        await EnterAsync(cancellationToken);
        try
        {
            ClusterConfig next = _state.Clone();
            bool changed = false;
            foreach (ChainProgress progress in ready)
            {
                ChainInfo? chain = next.Chains.FirstOrDefault(c => c.ChainId == progress.ChainId);
                if (chain is null || chain.Epoch != progress.Epoch || !chain.Syncing.Contains(request.NodeId))
                    continue;
                chain.Syncing.Remove(request.NodeId);
                chain.Former.Remove(request.NodeId);
                chain.Nodes.Add(request.NodeId);
                chain.Epoch++;
                changed = true;
                _log.LogInformation("chain {Chain}: {Node} synced (applied {Applied}) and joins as tail; now [{Nodes}] at epoch {Epoch}",
                    chain.ChainId, request.NodeId, progress.AppliedSeq, string.Join(",", chain.Nodes), chain.Epoch);
            }
            if (changed)
                await CommitAsync(next, cancellationToken);
            return new HeartbeatResponse { ConfigVersion = _state.Version, LeaseMs = LeaseMs };
        }
        finally
        {
            _mutex.Release();
        }
    }

    /// <summary>Read lease granted with each heartbeat: half the failure timeout (margin for clock-rate drift and delays).</summary>
    private uint LeaseMs => (uint)(_options.FailureTimeout.TotalMilliseconds / 2);

    public ClusterConfig GetConfig()
    {
        ClusterConfig view = _state.Clone();
        long now = NowMs();
        foreach (NodeStatus n in view.Nodes)
        {
            if (_lastHeartbeatMs.TryGetValue(n.Node.NodeId, out long last))
            {
                n.LastHeartbeatUnixMs = ToUnixMs(last);
                n.Alive = now - last <= (long)_options.AliveWindow.TotalMilliseconds;
            }
        }
        return view;
    }

    public async Task<BucketResponse> CreateBucketAsync(BucketRequest request, CancellationToken cancellationToken)
    {
        string? problem = Validation.CheckBucket(request.Name);
        if (problem is not null)
            throw Errors.Kind(StatusCode.InvalidArgument, ErrorKinds.InvalidBucket, problem);
        await EnterAsync(cancellationToken);
        try
        {
            if (_state.Buckets.FirstOrDefault(b => b.Name == request.Name) is { } existing)
            {
                // Refused rather than waited for: the delete ends within two failure timeouts, and the caller
                // learns which way it went (the bucket is back, or gone and can be created) by trying again.
                if (existing.State == BucketState.BucketDeleting)
                    throw Errors.Kind(StatusCode.FailedPrecondition, ErrorKinds.BucketDeleting, $"bucket '{request.Name}' is being deleted; try again");
                return new BucketResponse { Config = _state, Existed = true };
            }
            ClusterConfig next = _state.Clone();
            next.Buckets.Add(new BucketInfo { Name = request.Name, CreatedUnixMs = _time.GetUtcNow().ToUnixTimeMilliseconds() });
            await CommitAsync(next, cancellationToken);
            _log.LogInformation("bucket {Bucket} created", request.Name);
            return new BucketResponse { Config = _state, Existed = false };
        }
        finally
        {
            _mutex.Release();
        }
    }

    /// <summary>
    /// Deletes a bucket only if it is empty: (1) marks it deleting, durably — heads running that config sequence no
    /// new put into it; (2) waits (bounded: two failure timeouts) until the head of every chain reports that config
    /// in its heartbeat; (3) asks every head whether its chain holds an object of the bucket, counting puts it has
    /// sequenced but not yet applied; (4) removes the bucket if all are empty, else puts it back to active and
    /// fails: <c>bucket-not-empty</c> (FailedPrecondition), or Unavailable when a head could not be asked.
    /// Whatever happens in (2)–(3), including the caller going away, the bucket leaves the deleting state.
    /// </summary>
    public async Task<BucketResponse> DeleteBucketAsync(BucketRequest request, CancellationToken cancellationToken)
    {
        string name = request.Name;
        await EnterAsync(cancellationToken);
        try
        {
            BucketInfo? bucket = _state.Buckets.FirstOrDefault(b => b.Name == name);
            if (bucket is null)
                throw Errors.Kind(StatusCode.NotFound, ErrorKinds.NoSuchBucket, $"bucket '{name}' does not exist");
            // A bucket left deleting by a failed write of the outcome (no delete running) is simply checked again.
            if (!_deleting.Add(name))
                throw Errors.Kind(StatusCode.FailedPrecondition, ErrorKinds.BucketDeleting, $"bucket '{name}' is already being deleted");
            try
            {
                ClusterConfig marked = _state.Clone();
                marked.Buckets.First(b => b.Name == name).State = BucketState.BucketDeleting;
                await CommitAsync(marked, cancellationToken);
            }
            catch
            {
                _deleting.Remove(name);
                throw;
            }
        }
        finally
        {
            _mutex.Release();
        }

        ulong markedVersion = _state.Version;
        string? notEmpty = null, unavailable = null;
        try
        {
            (notEmpty, unavailable) = await CheckBucketEmptyAsync(name, markedVersion, cancellationToken);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or TimeoutException)
        {
            unavailable = e.Message;
        }

        bool remove = notEmpty is null && unavailable is null;
        await EnterAsync(CancellationToken.None);
        try
        {
            ClusterConfig next = _state.Clone();
            BucketInfo info = next.Buckets.First(b => b.Name == name);
            if (remove)
                next.Buckets.Remove(info);
            else
                info.State = BucketState.BucketActive;
            await CommitAsync(next, CancellationToken.None);
        }
        finally
        {
            _deleting.Remove(name);
            _mutex.Release();
        }
        if (notEmpty is not null)
        {
            _log.LogInformation("bucket {Bucket} not deleted: {Reason}", name, notEmpty);
            throw Errors.Kind(StatusCode.FailedPrecondition, ErrorKinds.BucketNotEmpty, notEmpty);
        }
        if (unavailable is not null)
        {
            _log.LogWarning("bucket {Bucket} not deleted: {Reason}", name, unavailable);
            throw Errors.Kind(StatusCode.Unavailable, ErrorKinds.NotReady, $"bucket '{name}' not deleted, its emptiness could not be checked: {unavailable}");
        }
        _log.LogInformation("bucket {Bucket} deleted", name);
        return new BucketResponse { Config = _state, Existed = true };
    }

    /// <summary>
    /// Steps (2) and (3) of <see cref="DeleteBucketAsync"/>: (reason not empty, null) or (null, reason unavailable),
    /// or (null, null) when every chain is empty.
    /// </summary>
    private async Task<(string? NotEmpty, string? Unavailable)> CheckBucketEmptyAsync(string name, ulong markedVersion, CancellationToken cancellationToken)
    {
        TimeSpan timeout = _options.FailureTimeout * 2;
        long deadline = NowMs() + (long)timeout.TotalMilliseconds;
        while (true)
        {
            // Heads are read afresh each time: a head replaced meanwhile got the role in a newer config.
            var lagging = _state.Chains.Where(c => c.Nodes.Count > 0).Select(c => c.Nodes[0]).Distinct()
                .Where(id => !_reportedVersion.TryGetValue(id, out ulong v) || v < markedVersion).ToList();
            if (lagging.Count == 0)
                break;
            if (NowMs() > deadline)
                return (null, $"head(s) {string.Join(",", lagging)} did not confirm config {markedVersion} within {timeout.TotalMilliseconds:0} ms");
            await Task.Delay(TimeSpan.FromMilliseconds(20), _time, cancellationToken);
        }

        ClusterConfig state = _state;
        var addresses = state.Nodes.ToDictionary(n => n.Node.NodeId, n => n.Node.Address, StringComparer.Ordinal);
        var channels = new Dictionary<string, IRpcInvoker>(StringComparer.Ordinal);
        try
        {
            var asks = new List<Task<(uint Chain, bool HasObjects)>>();
            foreach (ChainInfo chain in state.Chains.Where(c => c.Nodes.Count > 0))
            {
                string head = chain.Nodes[0];
                if (!channels.TryGetValue(head, out IRpcInvoker? channel))
                    channels[head] = channel = _options.Connect(new Uri(addresses[head]));
                var ask = new BucketHasObjectsRequest { ChainId = chain.ChainId, Epoch = chain.Epoch, Bucket = name, MinConfigVersion = markedVersion };
                asks.Add(AskAsync(channel, ask));
            }
            (uint Chain, bool HasObjects)[] answers = await Task.WhenAll(asks);
            uint[] full = answers.Where(a => a.HasObjects).Select(a => a.Chain).ToArray();
            return full.Length > 0
                ? ($"bucket '{name}' is not empty (chain(s) {string.Join(",", full)} hold objects); delete its objects first", null)
                : (null, null);
        }
        finally
        {
            foreach (IRpcInvoker channel in channels.Values)
                channel.Dispose();
        }

        async Task<(uint, bool)> AskAsync(IRpcInvoker channel, BucketHasObjectsRequest ask)
        {
            BucketHasObjectsResponse answer = await channel.UnaryAsync(AdminMethods.BucketHasObjects, ask,
                new CallOptions { Timeout = _options.FailureTimeout, CancellationToken = cancellationToken });
            return (ask.ChainId, answer.HasObjects);
        }
    }

    /// <summary>Runs failure detection until cancelled: a sweep every quarter of the failure timeout.</summary>
    public async Task RunFailureDetectorAsync(CancellationToken cancellationToken)
    {
        TimeSpan period = _options.FailureTimeout / 4;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(period, _time, cancellationToken);
                await SweepAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                _log.LogError("failure detection sweep failed: {Error}", e.Message);
            }
        }
    }

    /// <summary>
    /// Removes nodes whose heartbeats stopped from every chain they are in, bumping each changed chain's epoch,
    /// durably, in one config change. A chain never loses its last node: when every node of a chain is down, the
    /// chain keeps only its head — by the prefix property it holds every update any other member holds — and
    /// stays unavailable until that node returns; no other replica is promoted. Returns whether anything changed.
    /// </summary>
    public async Task<bool> SweepAsync(CancellationToken cancellationToken)
    {
        long now = NowMs();
        long timeoutMs = (long)_options.FailureTimeout.TotalMilliseconds;
        if (now - _startedMs < timeoutMs)
            return false; // grace period: nodes have not had the chance to reach a restarted master yet
        string Age(string id) => _lastHeartbeatMs.TryGetValue(id, out long last) ? (now - last).ToString(System.Globalization.CultureInfo.InvariantCulture) : "never";
        // Silent for two thirds of the timeout: probably gone, not yet declared dead.
        bool Suspect(string id) => !_lastHeartbeatMs.TryGetValue(id, out long last) || now - last > timeoutMs * 2 / 3;
        bool Stalled(uint chainId, string id) =>
            _syncProgress.GetOrAdd((chainId, id), (0UL, now)) is var p && now - p.SinceMs > (long)_options.SyncStallTimeout.TotalMilliseconds;
        bool Dead(string id) => !_lastHeartbeatMs.TryGetValue(id, out long last) ? true : now - last > timeoutMs;

        await EnterAsync(cancellationToken);
        try
        {
            ClusterConfig next = _state.Clone();
            bool changed = false;
            foreach (ChainInfo chain in next.Chains)
            {
                // A syncing node that went silent, or whose sync stopped moving, is abandoned: the joiner, never
                // the tail (3FS #229), so no chain stays in a transitional state.
                foreach (string joiner in chain.Syncing.Where(id => Dead(id) || Stalled(chain.ChainId, id)).ToList())
                {
                    _syncProgress.TryRemove((chain.ChainId, joiner), out _);
                    chain.Syncing.Remove(joiner);
                    chain.Epoch++;
                    changed = true;
                    _log.LogWarning("chain {Chain}: abandoned the sync of {Node} (no heartbeat for {Timeout}); epoch {Epoch}",
                        chain.ChainId, joiner, _options.FailureTimeout, chain.Epoch);
                }
                var members = chain.Nodes.ToList();
                var alive = members.Where(id => !Dead(id)).ToList();
                if (alive.Count == members.Count)
                    continue;
                // Nodes that die together stop heartbeating up to one interval apart. If every member left is
                // itself close to the timeout, wait one more sweep rather than hand the chain to a node that is
                // probably dead too: when all are gone the chain must keep its head, the last node that served.
                if (alive.Count > 0 && alive.All(Suspect))
                    continue;
                List<string> kept = alive.Count > 0 ? alive : new List<string> { members[0] };
                if (kept.SequenceEqual(members))
                    continue;
                chain.Nodes.Clear();
                chain.Nodes.AddRange(kept);
                foreach (string removed in members.Except(kept))
                    if (!chain.Former.Contains(removed))
                        chain.Former.Add(removed);
                chain.Epoch++;
                changed = true;
                _log.LogWarning("chain {Chain}: removed {Removed} (no heartbeat for {Timeout}); now [{Nodes}] at epoch {Epoch}",
                    chain.ChainId, string.Join(",", members.Except(kept).Select(id => $"{id} (last heartbeat {Age(id)} ms ago)")),
                    _options.FailureTimeout, string.Join(",", kept), chain.Epoch);
            }
            changed |= ExtendShortChains(next, Dead);
            if (changed)
                await CommitAsync(next, cancellationToken);
            return changed;
        }
        finally
        {
            _mutex.Release();
        }
    }

    /// <summary>
    /// Gives every chain that is short of replicas (and has a live tail to copy from) one syncing node: first a
    /// node whose zone holds the fewest of the chain's members (a zone the chain does not use yet, when one has a live
    /// node); among those a former member that is alive again (it has most of the data), else the live node in the
    /// fewest chains. The node becomes a member only once it reports it has caught up (see HeartbeatAsync).
    /// </summary>
    private bool ExtendShortChains(ClusterConfig next, Func<string, bool> dead)
    {
        bool changed = false;
        int replicas = (int)Math.Max(1, next.Replicas);
        var zone = next.Nodes.ToDictionary(n => n.Node.NodeId, n => ChainTable.ZoneKey(n.Node), StringComparer.Ordinal);
        var load = next.Nodes.ToDictionary(n => n.Node.NodeId, n => next.Chains.Count(c => c.Nodes.Contains(n.Node.NodeId) || c.Syncing.Contains(n.Node.NodeId)));
        foreach (ChainInfo chain in next.Chains)
        {
            if (chain.Nodes.Count >= replicas || chain.Syncing.Count > 0 || chain.Nodes.Count == 0 || dead(chain.Nodes[^1]))
                continue;
            var candidates = next.Nodes.Select(n => n.Node.NodeId)
                .Where(id => !dead(id) && !chain.Nodes.Contains(id))
                .OrderBy(id => chain.Nodes.Count(member => zone.GetValueOrDefault(member) == zone[id]))
                .ThenByDescending(id => chain.Former.Contains(id))
                .ThenBy(id => load[id])
                .ThenBy(id => id, StringComparer.Ordinal)
                .ToList();
            if (candidates.Count == 0)
                continue;
            string joiner = candidates[0];
            chain.Syncing.Add(joiner);
            chain.Epoch++;
            load[joiner]++;
            changed = true;
            _log.LogInformation("chain {Chain}: {Node} starts syncing from tail {Tail} to restore {Replicas} replicas; epoch {Epoch}",
                chain.ChainId, joiner, chain.Nodes[^1], replicas, chain.Epoch);
        }
        return changed;
    }

    /// <summary>
    /// Takes the mutex. The wait itself is not cancellable — it is short (at most one durable write) — and a caller
    /// cancelled meanwhile hands the mutex back at once. An uncancellable SemaphoreSlim wait also resumes on the
    /// caller's context, where a cancellable one completes on the thread pool, which the deterministic
    /// simulation (harness/Chain.Simulation) cannot schedule.
    /// </summary>
    private async Task EnterAsync(CancellationToken cancellationToken)
    {
        await _mutex.WaitAsync();
        if (cancellationToken.IsCancellationRequested)
        {
            _mutex.Release();
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    private async Task CommitAsync(ClusterConfig next, CancellationToken cancellationToken)
    {
        next.Version = _state.Version + 1;
        // Durable before anyone is told: the new state becomes visible only after the synced write.
        await _store.SaveAsync(next, cancellationToken);
        _state = next;
    }

    /// <summary>
    /// Milliseconds on the monotonic clock since the master started. Failure detection and stall timeouts use this,
    /// never wall time: the read-lease argument needs the master to measure the failure timeout on a clock that
    /// cannot jump (a wall-clock step would otherwise eject nodes early while their leases are still valid).
    /// </summary>
    private long NowMs() => (long)_time.GetElapsedTime(_origin).TotalMilliseconds;

    /// <summary>Wall time of a moment on <see cref="NowMs"/>'s clock, for display only.</summary>
    private long ToUnixMs(long monotonicMs) => _time.GetUtcNow().ToUnixTimeMilliseconds() - (NowMs() - monotonicMs);
}

internal static class Errors
{
    public static RpcException InvalidArgument(string detail) => new(StatusCode.InvalidArgument, detail);

    public static RpcException Kind(StatusCode status, string kind, string detail) =>
        new(status, detail, new Dictionary<string, string> { [ErrorTrailers.Kind] = kind });
}
