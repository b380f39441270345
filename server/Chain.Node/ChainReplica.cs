using System.Collections.Concurrent;
using System.Threading.Channels;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Storage;
using Chain.Storage.Memory;
using Chain.Storage.RocksDb;
using Microsoft.Extensions.Logging;

namespace Chain.Node;

/// <summary>An update on its way through this node, with the head's waiter when this node is the head.</summary>
internal sealed class PendingUpdate
{
    public PendingUpdate(Update update, bool countsAgainstInFlight)
    {
        Update = update;
        CountsAgainstInFlight = countsAgainstInFlight;
    }

    public Update Update { get; }
    public ulong Seq => Update.Seq;
    public bool CountsAgainstInFlight { get; }
    public bool IsChunk => Update.OpCase == Update.OpOneofCase.Chunk || Update.Object?.LastChunk is not null;
    public int DataBytes => Update.OpCase switch
    {
        Update.OpOneofCase.Chunk => Update.Chunk.Data.Length,
        Update.OpOneofCase.Object => Update.Object.LastChunk?.Data.Length ?? 0,
        _ => 0,
    };
    /// <summary>Completes when the whole chain has the update durably (the tail committed it).</summary>
    public TaskCompletionSource Acked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>For deletes: whether the object existed when the delete was applied.</summary>
    public bool Existed { get; set; }
}

/// <summary>This node's place in one chain under one epoch.</summary>
internal sealed record ChainRole(uint ChainId, ulong Epoch, int Position, int Length, NodeInfo? Predecessor, NodeInfo? Successor)
{
    public bool IsHead => Position == 0;
    public bool IsTail => Position == Length - 1;
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
    private readonly Func<Uri, RpcChannel> _channels;
    private readonly Channel<PendingUpdate> _applyQueue;
    private readonly object _gate = new();
    // Durable, forwarded or not, not yet acknowledged by the rest of the chain; ascending sequence numbers.
    private readonly LinkedList<PendingUpdate> _sent = new();
    private readonly SemaphoreSlim _inFlightUpdates = new(Limits.InFlightUpdatesMax, Limits.InFlightUpdatesMax);
    private readonly SemaphoreSlim _inFlightChunks = new((int)(Limits.InFlightBytesMax / Limits.ChunkBytes), (int)(Limits.InFlightBytesMax / Limits.ChunkBytes));
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

    public ChainReplica(NodeStore store, NodeOptions options, ChainRole role, Func<Uri, RpcChannel> channels, ILogger log)
    {
        _store = store;
        _options = options;
        _role = role;
        _channels = channels;
        _log = log;
        _durableSeq = store.LoadApplied(role.ChainId);
        _lastEnqueuedSeq = _durableSeq;
        _ackedSeq = role.Successor is null ? _durableSeq : 0;
        _prunedSeq = 0;
        _applyQueue = Channel.CreateBounded<PendingUpdate>(new BoundedChannelOptions(Limits.InFlightUpdatesMax)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _applyLoop = Task.Run(ApplyLoopAsync);
        RestartForwarder();
    }

    public uint ChainId => _role.ChainId;
    public ChainRole Role => Volatile.Read(ref _role);
    public ulong DurableSeq => Interlocked.Read(ref _durableSeq);
    public ulong AckedSeq => Interlocked.Read(ref _ackedSeq);
    public ulong LastEnqueuedSeq { get { lock (_gate) return _lastEnqueuedSeq; } }

    /// <summary>Pulsed when the durable sequence number advances.</summary>
    public AsyncSignal DurableAdvanced { get; } = new();

    /// <summary>Pulsed when the acknowledged sequence number advances.</summary>
    public AsyncSignal AckAdvanced { get; } = new();

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
            if (role.Successor is null)
                _downstreamAckedSeq = 0;
        }
        _log.LogInformation("chain {Chain}: role changed from position {Old}/{OldLen} epoch {OldEpoch} to {New}/{NewLen} epoch {NewEpoch}",
            role.ChainId, old.Position, old.Length, old.Epoch, role.Position, role.Length, role.Epoch);
        if (old.Successor?.NodeId != role.Successor?.NodeId || old.Successor?.Address != role.Successor?.Address || old.Epoch != role.Epoch)
            RestartForwarder();
        RecomputeAck();
    }

    // ---------------- head: proposing ----------------

    /// <summary>
    /// Head only: assigns the next sequence number and queues the update for durable application and
    /// forwarding. Waits while too much is in flight (backpressure). The returned update's
    /// <see cref="PendingUpdate.Acked"/> completes when the whole chain has it.
    /// </summary>
    public async Task<PendingUpdate> ProposeAsync(ulong expectedEpoch, Func<ulong, ulong, Update> build, bool isChunk, CancellationToken cancellationToken)
    {
        await _inFlightUpdates.WaitAsync(cancellationToken);
        if (isChunk)
        {
            try
            {
                await _inFlightChunks.WaitAsync(cancellationToken);
            }
            catch
            {
                _inFlightUpdates.Release();
                throw;
            }
        }
        try
        {
            lock (_gate)
            {
                ChainRole role = _role;
                if (!role.IsHead)
                    throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.NotHead, $"node is not the head of chain {role.ChainId}", role.Epoch);
                if (role.Epoch != expectedEpoch)
                    throw NodeErrors.StaleEpoch(role.ChainId, expectedEpoch, role.Epoch);
                ulong seq = _lastEnqueuedSeq + 1;
                Update update = build(seq, role.Epoch);
                var pending = new PendingUpdate(update, countsAgainstInFlight: true);
                if (!_applyQueue.Writer.TryWrite(pending))
                    throw NodeErrors.NotReady($"chain {role.ChainId} is shutting down or its queue is full");
                _lastEnqueuedSeq = seq;
                TrackRequest(pending);
                return pending;
            }
        }
        catch
        {
            _inFlightUpdates.Release();
            if (isChunk)
                _inFlightChunks.Release();
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
            pending = new PendingUpdate(update, countsAgainstInFlight: false);
            _lastEnqueuedSeq = update.Seq;
            TrackRequest(pending);
        }
        // Single upstream stream: writes happen in order; waiting here pushes back on the predecessor.
        await _applyQueue.Writer.WriteAsync(pending, cancellationToken);
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
                    Interlocked.Exchange(ref _durableSeq, group[^1].Seq);
                }
                DurableAdvanced.Set();
                RecomputeAck();
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
                await Task.Delay(delay, _stopping.Token);
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
        lock (_gate)
        {
            ulong durable = _durableSeq;
            ulong candidate = _role.Successor is null ? durable : Math.Min(durable, _downstreamAckedSeq);
            if (candidate <= _ackedSeq)
                return;
            Interlocked.Exchange(ref _ackedSeq, candidate);
            while (_sent.First is { } first && first.Value.Seq <= candidate)
            {
                (done ??= new()).Add(first.Value);
                _sent.RemoveFirst();
            }
            acked = candidate;
            if (acked - _prunedSeq >= 256)
            {
                _prunedSeq = acked;
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
                    if (p.IsChunk)
                        _inFlightChunks.Release();
                }
                if (RequestKey(p.Update) is { } key)
                    _pendingByRequest.TryRemove(new KeyValuePair<string, PendingUpdate>(key, p));
                p.Acked.TrySetResult();
            }
        }
        AckAdvanced.Set();
        if (prune)
            _ = PruneAsync(acked);
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
        _forwarderStop?.Cancel();
        ChainRole role = Role;
        if (role.Successor is null)
            return;
        var stop = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        _forwarderStop = stop;
        Task previous = _forwarder;
        _forwarder = Task.Run(async () =>
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
                await Task.Delay(delay, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
        }
    }

    private async Task ForwardOnceAsync(ChainRole role, CancellationToken stop)
    {
        NodeInfo successor = role.Successor!;
        RpcChannel channel = _channels(new Uri(successor.Address));
        using var streamStop = CancellationTokenSource.CreateLinkedTokenSource(stop);
        using DuplexCall<ReplicateMessage, ReplicateAck> call = channel.Duplex(ReplicationMethods.Replicate,
            new CallOptions { CancellationToken = streamStop.Token });
        await call.RequestStream.WriteAsync(new ReplicateMessage
        {
            Hello = new ReplicateHello { Routing = new Routing { ChainId = role.ChainId, Epoch = role.Epoch }, FromNode = _options.NodeId },
        }, streamStop.Token);

        await using IAsyncEnumerator<ReplicateAck> acks = call.ResponseStream.GetAsyncEnumerator(streamStop.Token);
        if (!await acks.MoveNextAsync() || acks.Current.PartCase != ReplicateAck.PartOneofCase.Welcome)
            throw new InvalidOperationException("successor did not answer the hello with a welcome");
        ulong next = acks.Current.Welcome.AppliedSeq + 1;
        _log.LogDebug("chain {Chain}: streaming to {Successor} from {Next}", role.ChainId, successor.NodeId, next);

        Task ackReader = Task.Run(async () =>
        {
            try
            {
                while (await acks.MoveNextAsync())
                {
                    if (acks.Current.PartCase == ReplicateAck.PartOneofCase.AckedSeq)
                        OnDownstreamAck(acks.Current.AckedSeq);
                }
            }
            finally
            {
                streamStop.Cancel();
            }
        }, CancellationToken.None);

        try
        {
            while (!streamStop.IsCancellationRequested)
            {
                Task wake = DurableAdvanced.Next;
                ulong durable = DurableSeq;
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
                    await call.RequestStream.WriteAsync(new ReplicateMessage { Updates = batch }, streamStop.Token);
                }
                await wake.WaitAsync(streamStop.Token);
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
