using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Chain.Node;

/// <summary>Receiving side of node-to-node replication: the predecessor's duplex stream for one chain.</summary>
internal sealed class ReplicationService
{
    private readonly StorageNode _node;
    private readonly ILogger _log;

    public ReplicationService(StorageNode node, ILogger log)
    {
        _node = node;
        _log = log;
    }

    public void Register(RpcServiceRegistry registry) => registry.AddDuplex(ReplicationMethods.Replicate, ReplicateAsync);

    private async Task ReplicateAsync(IAsyncEnumerable<ReplicateMessage> requests, IStreamWriter<ReplicateAck> responses, ServerCallContext context)
    {
        await using IAsyncEnumerator<ReplicateMessage> incoming = requests.GetAsyncEnumerator(context.CancellationToken);
        if (!await incoming.MoveNextAsync() || incoming.Current.PartCase != ReplicateMessage.PartOneofCase.Hello)
            throw new RpcException(StatusCode.InvalidArgument, "a replication stream must start with a hello");
        ReplicateHello hello = incoming.Current.Hello;
        Routing routing = hello.Routing ?? throw new RpcException(StatusCode.InvalidArgument, "hello without routing");
        ChainReplica replica = _node.GetReplica(routing.ChainId)
            ?? throw NodeErrors.NotReady($"node {_node.NodeId} does not serve chain {routing.ChainId} (yet)");
        ChainRole role = replica.Role;
        if (role.Epoch != routing.Epoch)
            throw NodeErrors.StaleEpoch(routing.ChainId, routing.Epoch, role.Epoch);
        if (role.Predecessor is null || role.Predecessor.NodeId != hello.FromNode)
            throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.StaleEpoch,
                $"node {hello.FromNode} is not the predecessor of {_node.NodeId} in chain {routing.ChainId} epoch {role.Epoch}", role.Epoch);

        CancellationToken token = replica.AttachUpstream(context.CancellationToken);
        replica.OnHello(routing.Epoch, hello.CommittedSeq);
        var welcome = new ReplicateWelcome { AppliedSeq = replica.DurableSeq };
        if (replica.Role.Syncing)
            welcome.HeldChunks.AddRange(replica.HeldChunkIds(Limits.SyncInventoryChunksMax).Select(ByteString.CopyFrom));
        await responses.WriteAsync(new ReplicateAck { Welcome = welcome }, token);

        using var ackStop = CancellationTokenSource.CreateLinkedTokenSource(token);
        Task ackWriter = WriteAcksAsync(replica, routing.Epoch, responses, ackStop.Token);
        try
        {
            while (await incoming.MoveNextAsync())
            {
                token.ThrowIfCancellationRequested();
                ReplicateMessage message = incoming.Current;
                if (replica.Role.Epoch != routing.Epoch)
                    throw NodeErrors.StaleEpoch(routing.ChainId, routing.Epoch, replica.Role.Epoch);
                switch (message.PartCase)
                {
                    case ReplicateMessage.PartOneofCase.Updates:
                        foreach (Update update in message.Updates.Updates)
                        {
                            VerifyUpdate(routing.ChainId, update);
                            await replica.AcceptAsync(update, token);
                        }
                        replica.OnSenderDurable(routing.Epoch, message.Updates.SenderDurableSeq);
                        break;
                    case ReplicateMessage.PartOneofCase.SyncBegin when replica.Role.Syncing:
                        await replica.BeginSyncAsync(token);
                        break;
                    case ReplicateMessage.PartOneofCase.SyncData when replica.Role.Syncing:
                        await replica.WriteSyncDataAsync(message.SyncData, token);
                        break;
                    case ReplicateMessage.PartOneofCase.SyncDone when replica.Role.Syncing:
                        await replica.EndSyncAsync(routing.Epoch, message.SyncDone.AppliedSeq, token);
                        break;
                    default:
                        throw new RpcException(StatusCode.InvalidArgument, $"unexpected {message.PartCase} on a replication stream");
                }
            }
        }
        finally
        {
            ackStop.Cancel();
            try
            {
                await ackWriter;
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e)
            {
                _log.LogDebug("chain {Chain}: ack stream to predecessor ended: {Error}", routing.ChainId, e.Message);
            }
        }
    }

    /// <summary>
    /// Acknowledges upstream what this replica has acknowledged, while it runs the stream's epoch. Under a newer
    /// epoch the replica's sequence numbers may continue another history (it may be the head now, and the old
    /// predecessor a deposed head with writes of its own at the same numbers): an ack sent on the old stream would
    /// acknowledge the wrong updates, so the writer stops (the stream is cut at the predecessor's next message).
    /// </summary>
    private static async Task WriteAcksAsync(ChainReplica replica, ulong epoch, IStreamWriter<ReplicateAck> responses, CancellationToken token)
    {
        ulong sent = 0;
        while (!token.IsCancellationRequested)
        {
            Task wake = replica.AckAdvanced.Next;
            if (replica.Role.Epoch != epoch)
                return;
            ulong acked = replica.AckedSeq;
            if (acked > sent)
            {
                await responses.WriteAsync(new ReplicateAck { AckedSeq = acked }, token);
                sent = acked;
                continue;
            }
            await wake.WaitAsync(token);
        }
    }

    private static void VerifyChunk(uint chainId, ulong seq, ChunkWrite chunk)
    {
        if (chunk.Data.Length > Limits.ChunkBytesMax)
            throw new RpcException(StatusCode.InvalidArgument, $"chain {chainId}: update {seq}: chunk exceeds {Limits.ChunkBytesMax} bytes");
        if (chunk.TouchOnly)
        {
            if (!chunk.Data.IsEmpty || chunk.Sha256.Length != 32)
                throw new RpcException(StatusCode.InvalidArgument, $"chain {chainId}: update {seq}: malformed chunk touch");
            return;
        }
        if (!Digests.Matches(chunk.Data.Span, chunk.Sha256.Span))
            throw NodeErrors.BadDigest($"chain {chainId}: update {seq}: chunk data does not match its SHA-256");
    }

    /// <summary>Checks an update received from a peer before it is applied: a peer that sends garbage is refused.</summary>
    private static void VerifyUpdate(uint chainId, Update update)
    {
        switch (update.OpCase)
        {
            case Update.OpOneofCase.Chunk:
                VerifyChunk(chainId, update.Seq, update.Chunk);
                break;
            case Update.OpOneofCase.Object:
                if (update.Object.Meta is null || Validation.CheckKey(update.Object.Meta.Key.Span) is not null)
                    throw new RpcException(StatusCode.InvalidArgument, $"chain {chainId}: update {update.Seq}: invalid object write");
                if (update.Object.LastChunk is { } last)
                    VerifyChunk(chainId, update.Seq, last);
                break;
            case Update.OpOneofCase.Delete:
                if (Validation.CheckKey(update.Delete.Key.Span) is not null)
                    throw new RpcException(StatusCode.InvalidArgument, $"chain {chainId}: update {update.Seq}: invalid delete");
                break;
            case Update.OpOneofCase.ChunkDelete:
                if (update.ChunkDelete.Sha256.Count > ChunkService.IdsPerCallMax || update.ChunkDelete.Sha256.Any(id => id.Length != 32))
                    throw new RpcException(StatusCode.InvalidArgument, $"chain {chainId}: update {update.Seq}: invalid chunk collection");
                break;
            default:
                throw new RpcException(StatusCode.InvalidArgument, $"chain {chainId}: update {update.Seq} has no operation");
        }
    }
}

internal static class Digests
{
    public static bool Matches(ReadOnlySpan<byte> data, ReadOnlySpan<byte> expected)
    {
        if (expected.Length != 32)
            return false;
        Span<byte> actual = stackalloc byte[32];
        System.Security.Cryptography.SHA256.HashData(data, actual);
        return actual.SequenceEqual(expected);
    }
}
