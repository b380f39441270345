using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Chain.Storage;
using Microsoft.Extensions.Logging;

namespace Chain.Node;

/// <summary>
/// Backup: <c>Admin.SnapshotChain</c> streams one chain's committed records from ONE engine snapshot of its tail.
/// The tail holds exactly what the chain committed (the prefix property), so one replica per chain is a complete
/// and correct copy: every write acknowledged before the snapshot was taken is in it, and nothing uncommitted.
/// </summary>
internal sealed class BackupService
{
    private readonly StorageNode _node;
    private readonly ILogger _log;

    public BackupService(StorageNode node, ILogger log)
    {
        _node = node;
        _log = log;
    }

    public void Register(RpcServiceRegistry registry) =>
        registry.AddServerStreaming(AdminMethods.SnapshotChain, SnapshotChainAsync);

    /// <summary>
    /// Only the chain's tail under the asked epoch, holding a read lease, answers (checked before and after the
    /// snapshot is taken: a node with a lease has not been removed from the chain, so every write acknowledged
    /// before then went through it); others refuse with <c>not-tail</c> / <c>stale-epoch</c> / <c>not-ready</c>
    /// and the caller refreshes its table and retries.
    /// </summary>
    private async Task SnapshotChainAsync(SnapshotChainRequest request, IStreamWriter<SnapshotChainResponse> responses, ServerCallContext context)
    {
        var families = request.ColumnFamilies.Distinct(StringComparer.Ordinal).ToList();
        if (families.Count == 0)
            throw NodeErrors.Invalid("name at least one column family to snapshot");
        foreach (string cf in families)
        {
            if (!ChainSnapshotReader.Readable.Contains(cf))
                throw NodeErrors.Invalid($"column family '{cf}' cannot be snapshotted (known: {string.Join(", ", ChainSnapshotReader.Readable)})");
        }
        ChainReplica replica = await ChunkService.MemberAsync(_node, request.ChainId, request.Epoch, head: false, tail: true);
        using IKvSnapshot snapshot = _node.Store.Engine.Snapshot();
        CheckServing(replica, request);
        ulong applied = ChainSnapshotReader.Applied(_node.Store, replica.ChainId, snapshot);
        await responses.WriteAsync(new SnapshotChainResponse { AppliedSeq = applied }, context.CancellationToken);
        var batcher = new SyncBatcher(data => responses.WriteAsync(new SnapshotChainResponse { Records = data }, context.CancellationToken).AsTask());
        ChainSnapshotRead read = await ChainSnapshotReader.ReadAsync(_node.Store, replica.ChainId, snapshot, families, batcher.AddAsync, null, _log,
            context.CancellationToken);
        await batcher.FlushAsync();
        await responses.WriteAsync(new SnapshotChainResponse { DamagedChunks = (uint)read.DamagedChunks, Done = true }, context.CancellationToken);
        _log.LogInformation("chain {Chain}: backup snapshot at {Seq} of [{Families}]: {Bytes} bytes, {Damaged} damaged chunks left out",
            replica.ChainId, applied, string.Join(",", families), read.Bytes, read.DamagedChunks);
    }

    private void CheckServing(ChainReplica replica, SnapshotChainRequest request)
    {
        if (!_node.HasReadLease)
            throw NodeErrors.NotReady($"node {_node.NodeId} holds no read lease from the master; it may have been removed from chain {request.ChainId}");
        ChainRole role = replica.Role;
        if (role.Epoch != request.Epoch)
            throw NodeErrors.StaleEpoch(request.ChainId, request.Epoch, role.Epoch);
        if (!role.IsTail || !replica.ReadsAllowed)
            throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.NotTail, $"node {_node.NodeId} is not serving as the tail of chain {request.ChainId}", role.Epoch);
    }
}
