using System.Collections.Concurrent;
using System.Threading.Channels;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Storage;
using Chain.Storage.Memory;
using Chain.Storage.RocksDb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Chain.Node;

/// <summary>An update on its way through this node, with the head's waiter when this node is the head.</summary>
/// <summary>A conditional write's condition, decided at the head against the state as of the last sequenced update.</summary>
internal sealed record WriteCondition(string Bucket, ByteString Key, ulong? IfVersion, bool IfAbsent);

internal sealed class PendingUpdate
{
    public PendingUpdate(Update update, bool countsAgainstInFlight, TaskCreationOptions continuations = TaskCreationOptions.RunContinuationsAsynchronously)
    {
        Update = update;
        CountsAgainstInFlight = countsAgainstInFlight;
        Acked = new TaskCompletionSource(continuations);
    }

    public Update Update { get; }
    public ulong Seq => Update.Seq;
    public bool CountsAgainstInFlight { get; }
    /// <summary>Chunk bytes this update holds of the head's in-flight budgets (released when acknowledged).</summary>
    public long BudgetBytes { get; set; }
    public int DataBytes => Update.OpCase switch
    {
        Update.OpOneofCase.Chunk => Update.Chunk.Data.Length,
        Update.OpOneofCase.Object => Update.Object.LastChunk?.Data.Length ?? 0,
        _ => 0,
    };
    /// <summary>Completes when the whole chain has the update durably (the tail committed it).</summary>
    public TaskCompletionSource Acked { get; }
    /// <summary>For deletes: whether the object existed when the delete was applied.</summary>
    public bool Existed { get; set; }
}

/// <summary>This node's place in one chain under one epoch.</summary>
internal sealed record ChainRole(uint ChainId, ulong Epoch, int Position, int Length, NodeInfo? Predecessor, NodeInfo? Successor,
    bool Syncing = false, bool SuccessorSyncing = false)
{
    /// <summary>Head of the chain (a syncing node is not a member: neither head nor tail).</summary>
    public bool IsHead => Position == 0 && !Syncing;
    /// <summary>The chain's last member: the end of the line, or the node a syncing (not yet member) node copies from.</summary>
    public bool IsTail => !Syncing && (Position == Length - 1 || SuccessorSyncing);
}

/// <summary>
/// One chain's replica on this node. Updates are applied strictly in sequence order, durably (one synced engine
/// write per group of consecutive updates), and only then forwarded to the successor; a node acknowledges
/// sequence number s upstream once s is durable here and acknowledged by the successor (the tail: once durable
/// here). So an acknowledgement at the head means the update is durable on every node of the chain, and every
/// successor's history is a prefix of its predecessor's.
/// </summary>
internal sealed class ChainReplica : IAsyncDisposable
{
    private const int ForwardBatchUpdatesMax = 1024;
    // A batch holds at least one update; more only while it stays well inside the message limit.
    private const long ForwardBatchBytesMax = Limits.MessageBytesMax - 256 * 1024;

    private readonly NodeStore _store;
    private readonly NodeOptions _options;
    private readonly ILogger _log;
    private readonly Func<Uri, IRpcInvoker> _channels;
    private readonly Channel<PendingUpdate> _applyQueue;
    private readonly object _gate = new();
    // Durable, forwarded or not, not yet acknowledged by the rest of the chain; ascending sequence numbers.
    private readonly LinkedList<PendingUpdate> _sent = new();
    private readonly SemaphoreSlim _inFlightUpdates = new(Limits.InFlightUpdatesMax, Limits.InFlightUpdatesMax);
    // Chunk bytes in flight from this head: per chain, and over all chains of the node (shared).
    private readonly ByteBudget _inFlightBytes;
    private readonly ByteBudget? _nodeInFlightBytes;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _applyLoop;
    private ChainRole _role;
    private CancellationTokenSource? _forwarderStop;
    private Task _forwarder = Task.CompletedTask;
    private ulong _lastEnqueuedSeq;
    private ulong _durableSeq;
    private ulong _downstreamAckedSeq;
    private ulong _ackedSeq;
    private ulong _prunedSeq;
    private CancellationTokenSource? _upstream;
    // Writes with a request id that are queued or durable here but not yet acknowledged by the whole chain:
    // a retry that reaches this node (as head, maybe after the old head failed) waits for them instead of
    // applying them again.
    private readonly ConcurrentDictionary<string, PendingUpdate> _pendingByRequest = new(StringComparer.Ordinal);
    // Object writes and deletes queued here but not yet durable, by object: the newest one per object. With the
    // store (which has everything durable), this is the object's state as of the last sequenced update, the
    // state conditional writes are decided against at the head. Guarded by _gate.
    private readonly Dictionary<string, (ulong Seq, bool Exists)> _unapplied = new(StringComparer.Ordinal);
    // CRAQ: per object, how many of its writes and deletes are queued or durable here but not yet acknowledged by
    // the rest of the chain (added when sequenced or accepted, removed when acknowledged). An object with none is
    // clean: this node's durable record of it is committed. Bounded like the Sent list and the apply queue.
    // Guarded by _gate.
    private readonly Dictionary<string, int> _dirty = new(StringComparer.Ordinal);
    // Durable updates this replica found in its store when it started (or got in a bulk copy) carry no dirty
    // marks: until the chain's acknowledgement reaches this sequence number every object counts as dirty.
    private ulong _dirtyFloor;
    // Syncing (joining) node: whether the bulk copy or catch-up from the predecessor completed, and the
    // predecessor's durable sequence number as last reported. Both belong to the current epoch only: they are
    // reset when the epoch changes and set only by a stream of the current epoch whose hello was received under
    // it (checked under _gate, so a stream of an earlier epoch cannot set them after the reset). The master
    // promotes on a caught-up report labelled with its current epoch; a completion carried over from an earlier
    // epoch's stream (another predecessor, whose successor stream under the new epoch starts with a snapshot
    // that wipes this copy) once got a joiner promoted while it re-synced from 0, and the chain wedged.
    private bool _syncComplete;
    private ulong _senderDurableSeq;
    private bool _senderReported;
    private long _snapshotBytesSent;
    private long _syncBytesReceived;
    private long _snapshotBytesSkipped;
    // A newly promoted tail serves reads under its new epoch only after the predecessor's hello for that epoch
    // and after applying everything the predecessor held durably when it sent it.
    private ulong _readsBlockedForEpoch;
    private ulong _helloEpoch;
    private ulong _helloCommittedSeq;
    private bool _sentUnvouchedHello;
    // The sync point (SyncDone) last sent to the current syncing successor; null before any.
    private ulong? _successorSyncPoint;
    private readonly object _forwarderLock = new();
    // Syncing: the chunk records this node held when the bulk copy began; chunks among them that the copy does not
    // bring a record for are dropped at its end.
    private List<byte[]> _chunksBeforeSync = new();

    public ChainReplica(NodeStore store, NodeOptions options, ChainRole role, Func<Uri, IRpcInvoker> channels, ILogger log, ByteBudget? nodeInFlightBytes = null)
    {
        _inFlightBytes = new ByteBudget(Limits.InFlightBytesMax, options.SignalContinuations);
        _nodeInFlightBytes = nodeInFlightBytes;
        _store = store;
        _options = options;
        _role = role;
        _channels = channels;
        _log = log;
        _durableSeq = store.LoadApplied(role.ChainId);
        _lastEnqueuedSeq = _durableSeq;
        _dirtyFloor = _durableSeq;
        DurableAdvanced = new AsyncSignal(options.SignalContinuations);
        AckAdvanced = new AsyncSignal(options.SignalContinuations);
        _ackedSeq = role.Successor is null ? _durableSeq : 0;
        _prunedSeq = 0;
        _applyQueue = Channel.CreateBounded<PendingUpdate>(new BoundedChannelOptions(Limits.InFlightUpdatesMax)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _applyLoop = options.Spawn(ApplyLoopAsync);
        RestartForwarder();
    }

    public uint ChainId => _role.ChainId;
    public ChainRole Role => Volatile.Read(ref _role);
    public ulong DurableSeq => Interlocked.Read(ref _durableSeq);
    public ulong AckedSeq => Interlocked.Read(ref _ackedSeq);
    public ulong LastEnqueuedSeq { get { lock (_gate) return _lastEnqueuedSeq; } }

    /// <summary>Pulsed when the durable sequence number advances.</summary>
    public AsyncSignal DurableAdvanced { get; }

    /// <summary>Pulsed when the acknowledged sequence number advances.</summary>
    public AsyncSignal AckAdvanced { get; }

    /// <summary>Applies a new role from a newer config (same chain).</summary>
    public void UpdateRole(ChainRole role)
    {
        ChainRole old;
        lock (_gate)
        {
            old = _role;
            if (role == old)
                return;
            _role = role;
            if (role.Successor?.NodeId != old.Successor?.NodeId)
                _downstreamAckedSeq = 0;
            if (role.Successor?.NodeId != old.Successor?.NodeId || !role.SuccessorSyncing)
                _successorSyncPoint = null;
            if (old.Syncing && !role.Syncing)
                _readsBlockedForEpoch = role.Epoch;
            if (role.Epoch != old.Epoch)
            {
                _syncComplete = false;
                _senderReported = false;
                _senderDurableSeq = 0;
            }
        }
        _log.LogInformation("chain {Chain}: role changed from position {Old}/{OldLen} epoch {OldEpoch} to {New}/{NewLen} epoch {NewEpoch}",
            role.ChainId, old.Position, old.Length, old.Epoch, role.Position, role.Length, role.Epoch);
        if (old.Successor?.NodeId != role.Successor?.NodeId || old.Successor?.Address != role.Successor?.Address || old.Epoch != role.Epoch
            || old.SuccessorSyncing != role.SuccessorSyncing)
            RestartForwarder();
        RecomputeAck();
    }

    // ---------------- head: proposing ----------------

    /// <summary>
    /// Head only: assigns the next sequence number and queues the update for durable application and
    /// forwarding. Waits while too much is in flight (backpressure). The returned update's
    /// <see cref="PendingUpdate.Acked"/> completes when the whole chain has it.
    /// </summary>
    /// <remarks><paramref name="checkLocked"/> runs under the sequencing lock just before the update is sequenced
    /// (puts: the bucket must still accept objects), so check and sequencing are one atomic step.</remarks>
    public async Task<PendingUpdate> ProposeAsync(ulong expectedEpoch, Func<ulong, ulong, Update> build, long dataBytes, CancellationToken cancellationToken,
        WriteCondition? condition = null, Action? checkLocked = null)
    {
        await _inFlightUpdates.WaitAsync(cancellationToken);
        long budget = 0;
        bool chainTaken = false, nodeTaken = false;
        try
        {
            if (dataBytes > 0)
            {
                budget = _inFlightBytes.Clamp(dataBytes);
                await _inFlightBytes.AcquireAsync(budget, cancellationToken);
                chainTaken = true;
                if (_nodeInFlightBytes is not null)
                {
                    await _nodeInFlightBytes.AcquireAsync(budget, cancellationToken);
                    nodeTaken = true;
                }
            }
            lock (_gate)
            {
                ChainRole role = _role;
                if (!role.IsHead)
                    throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.NotHead, $"node is not the head of chain {role.ChainId}", role.Epoch);
                if (role.Epoch != expectedEpoch)
                    throw NodeErrors.StaleEpoch(role.ChainId, expectedEpoch, role.Epoch);
                checkLocked?.Invoke();
                if (condition is not null)
                    CheckConditionLocked(condition);
                ulong seq = _lastEnqueuedSeq + 1;
                Update update = build(seq, role.Epoch);
                var pending = new PendingUpdate(update, countsAgainstInFlight: true, _options.SignalContinuations) { BudgetBytes = budget };
                if (!_applyQueue.Writer.TryWrite(pending))
                    throw NodeErrors.NotReady($"chain {role.ChainId} is shutting down or its queue is full");
                _lastEnqueuedSeq = seq;
                TrackRequest(pending);
                TrackUnappliedLocked(update);
                return pending;
            }
        }
        catch
        {
            _inFlightUpdates.Release();
            if (chainTaken)
                _inFlightBytes.Release(budget);
            if (nodeTaken)
                _nodeInFlightBytes!.Release(budget);
            throw;
        }
    }

    // ---------------- successors: accepting ----------------

    /// <summary>
    /// Registers a new upstream stream, cancelling the previous one: one predecessor stream at a time.
    /// </summary>
    public CancellationToken AttachUpstream(CancellationToken callToken)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(callToken, _stopping.Token);
        CancellationTokenSource? previous;
        lock (_gate)
        {
            previous = _upstream;
            _upstream = cts;
        }
        previous?.Cancel();
        return cts.Token;
    }

    /// <summary>Non-head: accepts the next update from the predecessor. Duplicates (after a reconnect) are skipped.</summary>
    public async ValueTask AcceptAsync(Update update, CancellationToken cancellationToken)
    {
        PendingUpdate pending;
        lock (_gate)
        {
            if (update.Seq <= _lastEnqueuedSeq)
                return;
            if (update.Seq != _lastEnqueuedSeq + 1)
                throw new RpcException(StatusCode.FailedPrecondition,
                    $"chain {ChainId}: gap in updates: expected {_lastEnqueuedSeq + 1}, got {update.Seq}");
            pending = new PendingUpdate(update, countsAgainstInFlight: false, _options.SignalContinuations);
            _lastEnqueuedSeq = update.Seq;
            TrackRequest(pending);
            TrackUnappliedLocked(update);
        }
        // Single upstream stream: writes happen in order; waiting here pushes back on the predecessor.
        await _applyQueue.Writer.WriteAsync(pending, cancellationToken);
    }

    private static string ObjectSlot(string bucket, ReadOnlySpan<byte> key) => bucket + "\0" + Convert.ToHexString(key);

    private static string? ObjectSlotOf(Update update) => update.OpCase switch
    {
        Update.OpOneofCase.Object => ObjectSlot(update.Object.Meta.Bucket, update.Object.Meta.Key.Span),
        Update.OpOneofCase.Delete => ObjectSlot(update.Delete.Bucket, update.Delete.Key.Span),
        _ => null,
    };

    /// <summary>Records a newly sequenced or accepted update: newest unapplied state of its object, and one more dirty mark.</summary>
    private void TrackUnappliedLocked(Update update)
    {
        if (ObjectSlotOf(update) is not { } slot)
            return;
        _unapplied[slot] = (update.Seq, update.OpCase == Update.OpOneofCase.Object);
        _dirty[slot] = _dirty.GetValueOrDefault(slot) + 1;
    }

    /// <summary>The rest of the chain acknowledged the update: one dirty mark of its object fewer.</summary>
    private void ForgetDirtyLocked(Update update)
    {
        if (ObjectSlotOf(update) is not { } slot || !_dirty.TryGetValue(slot, out int marks))
            return;
        if (marks <= 1)
            _dirty.Remove(slot);
        else
            _dirty[slot] = marks - 1;
    }

    /// <summary>
    /// CRAQ: whether this replica's durable record of the object is committed, so a read may be served from it here.
    /// Always at the tail (what it holds durably is what the chain committed); elsewhere when no write or delete of
    /// the object is queued or durable here without the chain's acknowledgement. Check it after reading the
    /// record: a record read before a clean check is committed by the time of the check.
    /// </summary>
    public bool IsClean(string bucket, ReadOnlySpan<byte> key)
    {
        lock (_gate)
            return _role.IsTail || (_ackedSeq >= _dirtyFloor && !_dirty.ContainsKey(ObjectSlot(bucket, key)));
    }

    /// <summary>CRAQ, for listings: whether everything queued or durable here is acknowledged by the chain (always at the tail).</summary>
    public bool IsAllClean
    {
        get
        {
            lock (_gate)
                return _role.IsTail || (_ackedSeq >= _lastEnqueuedSeq && _ackedSeq >= _dirtyFloor);
        }
    }

    /// <summary>Number of objects with unacknowledged updates here (diagnostics and tests).</summary>
    public int DirtyObjects
    {
        get
        {
            lock (_gate)
                return _dirty.Count;
        }
    }

    private void ForgetAppliedLocked(List<PendingUpdate> group)
    {
        if (_unapplied.Count == 0)
            return;
        foreach (PendingUpdate p in group)
        {
            string? slot = ObjectSlotOf(p.Update);
            // Only when no newer update of the same object is still queued.
            if (slot is not null && _unapplied.TryGetValue(slot, out var entry) && entry.Seq == p.Seq)
                _unapplied.Remove(slot);
        }
    }

    /// <summary>
    /// The object's version as of the last sequenced update (null when absent): the newest queued write or
    /// delete of it, else the durable record. Caller holds _gate.
    /// </summary>
    private ulong? CurrentVersionLocked(string bucket, ReadOnlySpan<byte> key)
    {
        if (_unapplied.TryGetValue(ObjectSlot(bucket, key), out var entry))
            return entry.Exists ? entry.Seq : null;
        return _store.GetObject(ChainId, bucket, key)?.Version;
    }

    /// <summary>
    /// Head only: whether the chain holds an object of <paramref name="bucket"/> as of the last sequenced update —
    /// durable here, or queued and not yet applied (a sequenced put counts, an object with a queued delete does
    /// not). Taken under the sequencing lock, so a put sequenced before the bucket was marked deleting is seen.
    /// </summary>
    public bool BucketHasObjects(string bucket)
    {
        string slotPrefix = bucket + "\0";
        byte[] prefix = NodeStore.ObjectKey(ChainId, bucket, ReadOnlySpan<byte>.Empty);
        int keyStart = NodeStore.ObjectKeyPrefixLength(bucket);
        lock (_gate)
        {
            foreach (var (slot, entry) in _unapplied)
                if (entry.Exists && slot.StartsWith(slotPrefix, StringComparison.Ordinal))
                    return true;
            using IKvIterator it = _store.Engine.Iterate(NodeStore.Objects, prefix, KvKeys.PrefixUpperBound(prefix));
            for (it.SeekToFirst(); it.Valid; it.Next())
            {
                // Stored objects with a queued delete are on their way out; any other one means not empty.
                if (!_unapplied.ContainsKey(ObjectSlot(bucket, it.Key[keyStart..])))
                    return true;
            }
            return false;
        }
    }

    /// <summary>Checks a condition against the current state (an early, advisory check: the deciding one is made when sequencing).</summary>
    public void CheckCondition(WriteCondition condition)
    {
        lock (_gate)
            CheckConditionLocked(condition);
    }

    private void CheckConditionLocked(WriteCondition condition)
    {
        ulong? current = CurrentVersionLocked(condition.Bucket, condition.Key.Span);
        if (condition.IfAbsent && current is not null)
            throw NodeErrors.PreconditionFailed($"object exists (version {current}); the write required it to be absent");
        if (condition.IfVersion is { } wanted && current != wanted)
            throw NodeErrors.PreconditionFailed(current is null
                ? $"object does not exist; the write required version {wanted}"
                : $"object is at version {current}; the write required version {wanted}");
    }

    private void TrackRequest(PendingUpdate pending)
    {
        if (RequestKey(pending.Update) is { } key)
            _pendingByRequest[key] = pending;
    }

    private static string? RequestKey(Update update) => update.OpCase switch
    {
        Update.OpOneofCase.Object => Convert.ToHexString(update.Object.RequestId.Span),
        Update.OpOneofCase.Delete => Convert.ToHexString(update.Delete.RequestId.Span),
        _ => null,
    };

    /// <summary>The queued or durable but unacknowledged write with this request id, if any.</summary>
    public PendingUpdate? FindPending(ReadOnlySpan<byte> requestId) =>
        _pendingByRequest.TryGetValue(Convert.ToHexString(requestId), out PendingUpdate? p) ? p : null;

    /// <summary>Waits until the whole chain has acknowledged <paramref name="seq"/>.</summary>
    public async Task WaitAckedAsync(ulong seq, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wake = AckAdvanced.Next;
            if (AckedSeq >= seq)
                return;
            await wake.WaitAsync(cancellationToken);
        }
    }

    /// <summary>Waits until <paramref name="seq"/> is durable on this node (not necessarily on the rest of the chain).</summary>
    public async Task WaitDurableAsync(ulong seq, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wake = DurableAdvanced.Next;
            if (DurableSeq >= seq)
                return;
            await wake.WaitAsync(cancellationToken);
        }
    }

    // ---------------- applying ----------------

    private async Task ApplyLoopAsync()
    {
        ChannelReader<PendingUpdate> reader = _applyQueue.Reader;
        var group = new List<PendingUpdate>();
        try
        {
            while (await reader.WaitToReadAsync(_stopping.Token))
            {
                group.Clear();
                long bytes = 0;
                while (group.Count < _options.ApplyGroupUpdatesMax && bytes < _options.ApplyGroupBytesMax && reader.TryRead(out PendingUpdate? p))
                {
                    group.Add(p);
                    bytes += p.DataBytes + 256;
                }
                await ApplyDurablyAsync(group);
                lock (_gate)
                {
                    foreach (PendingUpdate p in group)
                        _sent.AddLast(p);
                    ForgetAppliedLocked(group);
                    Interlocked.Exchange(ref _durableSeq, group[^1].Seq);
                }
                DurableAdvanced.Set();
                RecomputeAck();
                CheckVouching();
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _log.LogCritical(e, "chain {Chain}: apply loop failed", ChainId);
            throw;
        }
    }

    /// <summary>
    /// Writes the group with one synced write. On a storage error (disk full, I/O error) nothing is
    /// acknowledged and the same group is retried until it succeeds or the node stops: order is never broken.
    /// </summary>
    private async Task ApplyDurablyAsync(List<PendingUpdate> group)
    {
        TimeSpan delay = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            try
            {
                KvBatch batch = _store.BuildApply(ChainId, group);
                await _store.Engine.WriteAsync(batch, _stopping.Token);
                return;
            }
            catch (StorageException e)
            {
                _log.LogError("chain {Chain}: durable write of updates {First}..{Last} failed, retrying in {Delay}: {Error}",
                    ChainId, group[0].Seq, group[^1].Seq, delay, e.Message);
                await Task.Delay(delay, _options.Time, _stopping.Token);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    // ---------------- acknowledgements ----------------

    private void OnDownstreamAck(ulong seq)
    {
        lock (_gate)
        {
            if (seq <= _downstreamAckedSeq)
                return;
            _downstreamAckedSeq = seq;
        }
        RecomputeAck();
    }

    private void RecomputeAck()
    {
        List<PendingUpdate>? done = null;
        ulong acked;
        bool prune = false;
        ulong pruneTo = 0;
        lock (_gate)
        {
            ulong durable = _durableSeq;
            // A syncing successor is not a member yet: writes never wait for it.
            bool alone = _role.Successor is null || _role.SuccessorSyncing;
            ulong candidate = alone ? durable : Math.Min(durable, _downstreamAckedSeq);
            // Once a syncing successor got its snapshot (SyncDone at S) it may report caught up and the master may
            // promote it at any moment, before this node learns of it: from then on, an update after S is
            // acknowledged only when the joiner has it too, or the promoted joiner could lack an acknowledged write.
            if (_role.SuccessorSyncing && _successorSyncPoint is { } syncPoint)
                candidate = Math.Min(durable, Math.Max(syncPoint, _downstreamAckedSeq));
            if (candidate <= _ackedSeq)
                return;
            Interlocked.Exchange(ref _ackedSeq, candidate);
            while (_sent.First is { } first && first.Value.Seq <= candidate)
            {
                (done ??= new()).Add(first.Value);
                ForgetDirtyLocked(first.Value.Update);
                _sent.RemoveFirst();
            }
            acked = candidate;
            // Keep the log for whatever successor still needs it (a syncing one included).
            ulong floor = _role.Successor is null ? acked : Math.Min(acked, _downstreamAckedSeq);
            if (floor > _prunedSeq && floor - _prunedSeq >= 256)
            {
                _prunedSeq = floor;
                pruneTo = floor;
                prune = true;
            }
        }
        if (done is not null)
        {
            foreach (PendingUpdate p in done)
            {
                if (p.CountsAgainstInFlight)
                {
                    _inFlightUpdates.Release();
                    if (p.BudgetBytes > 0)
                    {
                        _inFlightBytes.Release(p.BudgetBytes);
                        _nodeInFlightBytes?.Release(p.BudgetBytes);
                    }
                }
                if (RequestKey(p.Update) is { } key)
                    _pendingByRequest.TryRemove(new KeyValuePair<string, PendingUpdate>(key, p));
                ReleaseChunkData(p.Update);
                p.Acked.TrySetResult();
            }
        }
        AckAdvanced.Set();
        if (prune)
            _ = PruneAsync(pruneTo);
    }

    /// <summary>
    /// Drops an acknowledged update's chunk data. The whole chain has it durably, so it is never sent again from
    /// memory (a re-send reads the log and the chunk store); but the update object stays reachable from the last
    /// message of its replication stream (the stream's current item, the forwarder's last batch) until the next one,
    /// and with many chains those idle references held one chunk per stream — hundreds of MiB on a node.
    /// </summary>
    private static void ReleaseChunkData(Update update)
    {
        switch (update.OpCase)
        {
            case Update.OpOneofCase.Chunk when !update.Chunk.Data.IsEmpty:
                update.Chunk.Data = ByteString.Empty;
                break;
            case Update.OpOneofCase.Object when update.Object.LastChunk is { Data.IsEmpty: false } last:
                last.Data = ByteString.Empty;
                break;
        }
    }

    private async Task PruneAsync(ulong seq)
    {
        try
        {
            await _store.PruneLogAsync(ChainId, seq);
        }
        catch (Exception e) when (e is StorageException or ObjectDisposedException)
        {
            _log.LogWarning("chain {Chain}: pruning the log up to {Seq} failed: {Error}", ChainId, seq, e.Message);
        }
    }

    // ---------------- forwarding to the successor ----------------

    private void RestartForwarder()
    {
        lock (_forwarderLock)
            RestartForwarderLocked();
    }

    private void RestartForwarderLocked()
    {
        _forwarderStop?.Cancel();
        ChainRole role = Role;
        if (role.Successor is null)
            return;
        var stop = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        _forwarderStop = stop;
        Task previous = _forwarder;
        _forwarder = _options.Spawn(async () =>
        {
            try
            {
                await previous;
            }
            catch
            {
                // the previous forwarder's failure was logged by it
            }
            await ForwardLoopAsync(role, stop.Token);
        });
    }

    private async Task ForwardLoopAsync(ChainRole role, CancellationToken stop)
    {
        TimeSpan delay = TimeSpan.FromMilliseconds(20);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await ForwardOnceAsync(role, stop);
                delay = TimeSpan.FromMilliseconds(20);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                _log.LogDebug("chain {Chain}: stream to successor {Successor} ended: {Error}", role.ChainId, role.Successor!.NodeId, e.Message);
            }
            try
            {
                await Task.Delay(delay, _options.Time, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
        }
    }

    /// <summary>What a hello vouches for: the durable sequence number, or nothing (ulong.MaxValue: the successor
    /// waits) while this replica does not vouch for its own history; it says more on a new stream once it does.</summary>
    private ulong HelloCommittedSeq()
    {
        lock (_gate)
        {
            if (VouchesLocked)
                return _durableSeq;
            _sentUnvouchedHello = true;
            return ulong.MaxValue;
        }
    }

    private async Task ForwardOnceAsync(ChainRole role, CancellationToken stop)
    {
        NodeInfo successor = role.Successor!;
        IRpcInvoker channel = _channels(new Uri(successor.Address));
        using var streamStop = CancellationTokenSource.CreateLinkedTokenSource(stop);
        using DuplexCall<ReplicateMessage, ReplicateAck> call = channel.Duplex(ReplicationMethods.Replicate,
            new CallOptions { CancellationToken = streamStop.Token });
        await call.RequestStream.WriteAsync(new ReplicateMessage
        {
            Hello = new ReplicateHello
            {
                Routing = new Routing { ChainId = role.ChainId, Epoch = role.Epoch },
                FromNode = _options.NodeId,
                CommittedSeq = HelloCommittedSeq(),
            },
        }, streamStop.Token);

        await using IAsyncEnumerator<ReplicateAck> acks = call.ResponseStream.GetAsyncEnumerator(streamStop.Token);
        if (!await acks.MoveNextAsync() || acks.Current.PartCase != ReplicateAck.PartOneofCase.Welcome)
            throw new InvalidOperationException("successor did not answer the hello with a welcome");
        ulong next = acks.Current.Welcome.AppliedSeq + 1;
        // Acks on this stream can only cover what the successor got from this node (or held when it welcomed us,
        // under the same epoch); anything higher would be another history's sequence numbers. A syncing
        // successor's own data counts only from the snapshot on.
        long ackCeiling = role.SuccessorSyncing ? 0 : (long)acks.Current.Welcome.AppliedSeq;
        var welcomeHeld = new HashSet<string>(acks.Current.Welcome.HeldChunks.Select(c => Convert.ToHexString(c.Span)), StringComparer.Ordinal);
        _log.LogDebug("chain {Chain}: streaming to {Successor} from {Next}", role.ChainId, successor.NodeId, next);

        Task ackReader = _options.Spawn(async () =>
        {
            try
            {
                while (await acks.MoveNextAsync())
                {
                    if (acks.Current.PartCase == ReplicateAck.PartOneofCase.AckedSeq)
                        OnDownstreamAck(Math.Min(acks.Current.AckedSeq, (ulong)Interlocked.Read(ref ackCeiling)));
                }
            }
            finally
            {
                streamStop.Cancel();
            }
        });

        try
        {
            if (role.SuccessorSyncing)
            {
                next = await SendSnapshotAsync(call.RequestStream, welcomeHeld, streamStop.Token) + 1;
                Interlocked.Exchange(ref ackCeiling, (long)(next - 1));
                lock (_gate)
                {
                    if (_role.SuccessorSyncing && _role.Successor?.NodeId == role.Successor?.NodeId)
                        _successorSyncPoint = Math.Max(_successorSyncPoint ?? 0, next - 1);
                }
            }
            bool keepalive = role.SuccessorSyncing;
            while (!streamStop.IsCancellationRequested)
            {
                Task wake = DurableAdvanced.Next;
                ulong durable = DurableSeq;
                if (keepalive && next > durable)
                {
                    // Tell a syncing successor how far we are even when idle, so it can report it caught up.
                    await call.RequestStream.WriteAsync(new ReplicateMessage { Updates = new UpdateBatch { SenderDurableSeq = durable } }, streamStop.Token);
                }
                while (next <= durable)
                {
                    // Everything durable goes out in as few messages as the size limit allows.
                    var batch = new UpdateBatch();
                    long bytes = 0;
                    while (next <= durable && batch.Updates.Count < ForwardBatchUpdatesMax)
                    {
                        Update update = UpdateForSend(next);
                        int size = update.CalculateSize();
                        if (batch.Updates.Count > 0 && bytes + size > ForwardBatchBytesMax)
                            break;
                        batch.Updates.Add(update);
                        bytes += size;
                        next++;
                    }
                    batch.SenderDurableSeq = durable;
                    Interlocked.Exchange(ref ackCeiling, (long)(next - 1));
                    await call.RequestStream.WriteAsync(new ReplicateMessage { Updates = batch }, streamStop.Token);
                }
                if (keepalive)
                {
                    try
                    {
                        await wake.WaitAsync(TimeSpan.FromMilliseconds(300), _options.Time, streamStop.Token);
                    }
                    catch (TimeoutException)
                    {
                    }
                }
                else
                {
                    await wake.WaitAsync(streamStop.Token);
                }
            }
        }
        finally
        {
            streamStop.Cancel();
            try
            {
                await ackReader;
            }
            catch
            {
                // ended with the stream
            }
        }
    }

    /// <summary>
    /// Bulk copy to a syncing successor: from one engine snapshot, the chain's sequence number S and every
    /// object record, dedup record and chunk, in bounded messages; then SyncDone(S). Returns S: the updates after
    /// it follow on the stream (the log keeps them: its pruning floor is the successor's acknowledgement).
    /// Chunks go last, so a joiner could skip the ones it holds (digest-driven copy is future work).
    /// </summary>
    private async Task<ulong> SendSnapshotAsync(IClientStreamWriter<ReplicateMessage> stream, HashSet<string> heldChunks, CancellationToken cancellationToken)
    {
        long skippedBytes = 0;
        await stream.WriteAsync(new ReplicateMessage { SyncBegin = new SyncBegin() }, cancellationToken);
        using IKvSnapshot snapshot = _store.Engine.Snapshot();
        ulong applied = ChainSnapshotReader.Applied(_store, ChainId, snapshot);
        var batcher = new SyncBatcher(data => stream.WriteAsync(new ReplicateMessage { SyncData = data }, cancellationToken).AsTask());
        ChainSnapshotRead read = await ChainSnapshotReader.ReadAsync(_store, ChainId, snapshot, ChainSnapshotReader.SyncColumnFamilies, batcher.AddAsync,
            key =>
            {
                if (heldChunks.Count == 0 || !heldChunks.Contains(Convert.ToHexString(key.AsSpan(4))))
                    return false;
                skippedBytes += ChunkInfoRecord.Decode(_store.Engine.Get(NodeStore.ChunkInfo, key, snapshot) ?? Array.Empty<byte>())?.Size ?? 0;
                return true;
            }, _log, cancellationToken);
        long bytesSent = read.Bytes;
        await batcher.FlushAsync();
        await stream.WriteAsync(new ReplicateMessage { SyncDone = new SyncDone { AppliedSeq = applied } }, cancellationToken);
        Interlocked.Add(ref _snapshotBytesSent, bytesSent);
        Interlocked.Add(ref _snapshotBytesSkipped, skippedBytes);
        _log.LogInformation("chain {Chain}: sent a snapshot at {Seq} ({Bytes} bytes; {Skipped} bytes of chunks it already held skipped) to the syncing successor",
            ChainId, applied, bytesSent, skippedBytes);
        return applied;
    }

    // ---------------- joining (syncing) side ----------------

    /// <summary>Bytes of bulk copy this replica received (progress reported to the master while syncing).</summary>
    public long SyncBytesReceived => Interlocked.Read(ref _syncBytesReceived);

    /// <summary>Bytes this replica sent in bulk copies, and chunk bytes it skipped because the receiver held them.</summary>
    public (long Sent, long Skipped) SnapshotBytes => (Interlocked.Read(ref _snapshotBytesSent), Interlocked.Read(ref _snapshotBytesSkipped));

    /// <summary>Ids of intact chunks of this chain held here (at most <paramref name="max"/>), for a sync inventory.</summary>
    public List<byte[]> HeldChunkIds(int max)
    {
        var ids = new List<byte[]>();
        byte[] prefix = NodeStore.ChainPrefix(ChainId);
        var keys = new List<byte[]>();
        // By their records: an iterator over the chunk data itself would read every blob.
        using (IKvIterator it = _store.Engine.Iterate(NodeStore.ChunkInfo, prefix, KvKeys.PrefixUpperBound(prefix)))
        {
            for (it.SeekToFirst(); it.Valid && keys.Count < max; it.Next())
                keys.Add(it.Key.ToArray());
        }
        // Only chunks that still match their id are listed: a damaged one gets copied again.
        foreach (byte[] key in keys)
        {
            if (_store.ReadChunkVerified(ChainId, key.AsSpan(4)).State == ChunkState.Ok)
                ids.Add(key[4..]);
        }
        return ids;
    }

    /// <summary>The predecessor's hello for an epoch: what it held durably when it sent it.</summary>
    public void OnHello(ulong epoch, ulong committedSeq)
    {
        lock (_gate)
        {
            _helloEpoch = epoch;
            _helloCommittedSeq = committedSeq;
            if (_role.Syncing)
                _syncComplete = false;
        }
        CheckVouching();
    }

    /// <summary>
    /// Whether this replica may answer reads as the tail: always, except a newly promoted tail before a hello from
    /// its predecessor under its current epoch and before it applied what that hello said was durable.
    /// </summary>
    public bool ReadsAllowed
    {
        get
        {
            lock (_gate)
            {
                // Blocked since the promotion, across later epochs too: the old tail may have committed writes
                // under the old epoch after the master promoted this node, and only a hello under the current
                // epoch says what the predecessor holds. Alone (no predecessor) there is nothing to wait for.
                if (!VouchesLocked)
                    return false;
                _readsBlockedForEpoch = 0;
                return true;
            }
        }
    }

    /// <summary>
    /// Whether this replica's durable history is known to hold everything the chain committed before it: true
    /// unless it is a promoted tail still waiting for its predecessor's hello under its current epoch (or for
    /// applying what that hello said). Only then may it serve reads, and only then does its own hello vouch for
    /// its durable sequence number: a successor synced or promoted from it must not trust more than it knows.
    /// </summary>
    private bool VouchesLocked =>
        _readsBlockedForEpoch == 0 || _role.Predecessor is null || (_helloEpoch == _role.Epoch && _durableSeq >= _helloCommittedSeq);

    /// <summary>
    /// Ends the read block once this replica vouches for its history; if its stream to the successor began with a
    /// hello that vouched for nothing, restarts that stream so the successor gets a hello that does.
    /// </summary>
    private void CheckVouching()
    {
        bool restart;
        lock (_gate)
        {
            if (_readsBlockedForEpoch == 0 || !VouchesLocked)
                return;
            _readsBlockedForEpoch = 0;
            restart = _sentUnvouchedHello;
            _sentUnvouchedHello = false;
        }
        if (restart)
            RestartForwarder();
    }

    /// <summary>
    /// The epoch this replica runs and whether, under that epoch, it is a syncing replica that holds everything
    /// its predecessor last said it had durably (read together: the report names the epoch the flag belongs to).
    /// </summary>
    public (ulong Epoch, bool CaughtUp) SyncState
    {
        get
        {
            lock (_gate)
                return (_role.Epoch, _role.Syncing && _syncComplete && _senderReported && _durableSeq >= _senderDurableSeq);
        }
    }

    /// <summary>Whether the stream of <paramref name="epoch"/> may update the sync state: the replica still runs
    /// that epoch and received the hello of that epoch.</summary>
    private bool StreamIsCurrentLocked(ulong epoch) => epoch == _role.Epoch && _helloEpoch == epoch;

    public void OnSenderDurable(ulong epoch, ulong seq)
    {
        lock (_gate)
        {
            if (!StreamIsCurrentLocked(epoch))
                return;
            _senderDurableSeq = Math.Max(_senderDurableSeq, seq);
            _senderReported = true;
            if (_role.Syncing && _lastEnqueuedSeq >= _helloCommittedSeq)
                _syncComplete = true;
        }
    }

    /// <summary>Drops this node's copy of the chain before a bulk copy (nothing is queued while syncing starts).</summary>
    public async Task BeginSyncAsync(CancellationToken cancellationToken)
    {
        byte[] prefix = NodeStore.ChainPrefix(ChainId);
        byte[] end = KvKeys.PrefixUpperBound(prefix)!;
        var kept = new List<byte[]>();
        using (IKvIterator it = _store.Engine.Iterate(NodeStore.ChunkInfo, prefix, end))
        {
            for (it.SeekToFirst(); it.Valid; it.Next())
                kept.Add(it.Key.ToArray());
        }
        lock (_gate)
            _chunksBeforeSync = kept;
        var batch = new KvBatch();
        // Chunks stay: they are content-addressed (a held chunk is the right chunk) and the sender skips the
        // ones listed in our welcome. Object records, dedup records and the log are replaced wholesale.
        foreach (string cf in new[] { NodeStore.Objects, NodeStore.Log, NodeStore.Dedup, NodeStore.ChunkInfo })
            batch.DeleteRange(cf, prefix, end);
        batch.Put(NodeStore.Meta, NodeStore.AppliedKey(ChainId), new byte[8]);
        await _store.Engine.WriteAsync(batch, cancellationToken);
        lock (_gate)
        {
            _syncComplete = false;
            _lastEnqueuedSeq = 0;
            Interlocked.Exchange(ref _durableSeq, 0);
            Interlocked.Exchange(ref _ackedSeq, 0);
            _sent.Clear();
            _unapplied.Clear();
            _dirty.Clear();
            _dirtyFloor = 0;
        }
    }

    public async Task WriteSyncDataAsync(SyncData data, CancellationToken cancellationToken)
    {
        if (data.ColumnFamily is not (NodeStore.Objects or NodeStore.Dedup or NodeStore.Chunks or NodeStore.ChunkInfo) || data.Keys.Count != data.Values.Count)
            throw new RpcException(StatusCode.InvalidArgument, $"chain {ChainId}: malformed sync data");
        byte[] prefix = NodeStore.ChainPrefix(ChainId);
        var batch = new KvBatch();
        for (int i = 0; i < data.Keys.Count; i++)
        {
            if (!data.Keys[i].Span.StartsWith(prefix))
                throw new RpcException(StatusCode.InvalidArgument, $"chain {ChainId}: sync data for another chain");
            batch.Put(data.ColumnFamily, data.Keys[i].ToByteArray(), data.Values[i].ToByteArray());
        }
        await _store.Engine.WriteAsync(batch, cancellationToken);
        Interlocked.Add(ref _syncBytesReceived, batch.ByteSize);
    }

    /// <summary>Completes a bulk copy: the chain is now at <paramref name="seq"/>; updates after it follow.</summary>
    public async Task EndSyncAsync(ulong epoch, ulong seq, CancellationToken cancellationToken)
    {
        var applied = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(applied, seq);
        KvBatch batch = new KvBatch().Put(NodeStore.Meta, NodeStore.AppliedKey(ChainId), applied);
        // Chunks kept from before the copy that the chain no longer has (no record came with the copy): drop them.
        List<byte[]> before;
        lock (_gate)
        {
            before = _chunksBeforeSync;
            _chunksBeforeSync = new();
        }
        foreach (byte[] key in before)
        {
            if (_store.Engine.Get(NodeStore.ChunkInfo, key) is null)
                batch.Delete(NodeStore.Chunks, key);
        }
        await _store.Engine.WriteAsync(batch, cancellationToken);
        lock (_gate)
        {
            _lastEnqueuedSeq = seq;
            _dirtyFloor = seq;
            Interlocked.Exchange(ref _durableSeq, seq);
            _syncComplete = StreamIsCurrentLocked(epoch) && seq >= _helloCommittedSeq;
        }
        DurableAdvanced.Set();
        RecomputeAck();
        _log.LogInformation("chain {Chain}: bulk copy complete at {Seq}", ChainId, seq);
    }

    /// <summary>The update with the given sequence number: from the Sent list, or from the durable log after a restart.</summary>
    private Update UpdateForSend(ulong seq)
    {
        lock (_gate)
        {
            // The successor usually needs what just became durable: search from the newest end.
            for (LinkedListNode<PendingUpdate>? n = _sent.Last; n is not null; n = n.Previous)
            {
                if (n.Value.Seq == seq)
                    return n.Value.Update;
                if (n.Value.Seq < seq)
                    break;
            }
        }
        return _store.ReadLoggedUpdate(ChainId, seq)
            ?? throw new InvalidOperationException($"chain {ChainId}: update {seq} is neither in the Sent list nor in the log");
    }

    public async ValueTask DisposeAsync()
    {
        _applyQueue.Writer.TryComplete();
        _stopping.Cancel();
        try
        {
            await _applyLoop;
        }
        catch
        {
            // logged by the loop
        }
        try
        {
            await _forwarder;
        }
        catch
        {
            // logged by the loop
        }
        lock (_gate)
        {
            foreach (PendingUpdate p in _sent)
                p.Acked.TrySetException(NodeErrors.NotReady("node is shutting down"));
        }
        while (_applyQueue.Reader.TryRead(out PendingUpdate? p))
            p.Acked.TrySetException(NodeErrors.NotReady("node is shutting down"));
    }
}

/// <summary>Groups bulk-copy entries of one column family into bounded SyncData messages.</summary>
internal sealed class SyncBatcher(Func<SyncData, Task> send)
{
    private const int EntriesMax = 1024;
    private const long BytesMax = Limits.MessageBytesMax - 256 * 1024;
    private SyncData? _message;
    private long _bytes;

    /// <summary>Adds an entry (sending the batch first when it is full); returns the entry's bytes.</summary>
    public async Task<long> AddAsync(string columnFamily, byte[] key, byte[] value)
    {
        long size = key.Length + value.Length;
        if (_message is not null && (_message.ColumnFamily != columnFamily || _bytes + size > BytesMax || _message.Keys.Count >= EntriesMax))
            await FlushAsync();
        _message ??= new SyncData { ColumnFamily = columnFamily };
        _message.Keys.Add(UnsafeByteOperations.UnsafeWrap(key));
        _message.Values.Add(UnsafeByteOperations.UnsafeWrap(value));
        _bytes += size;
        return size;
    }

    public async Task FlushAsync()
    {
        if (_message is null)
            return;
        SyncData message = _message;
        _message = null;
        _bytes = 0;
        await send(message);
    }
}
