using System.Security.Cryptography;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;
using Chain.Storage;
using Google.Protobuf;

namespace Chain.Node;

/// <summary>Reads this node's own replica of a chain (any role): for operators, tests and convergence checks.</summary>
internal sealed class AdminService
{
    private readonly StorageNode _node;

    public AdminService(StorageNode node) => _node = node;

    public void Register(RpcServiceRegistry registry)
    {
        registry.AddUnary(AdminMethods.ReplicaState, ReplicaStateAsync);
        registry.AddUnary(AdminMethods.BucketHasObjects, BucketHasObjectsAsync);
    }

    /// <summary>
    /// The master's emptiness check while deleting a bucket. Answered only by the chain's head under the asked
    /// epoch, running at least the config that marked the bucket deleting — from then on this head sequences no
    /// put into it, so "empty" stays true.
    /// </summary>
    private async Task<BucketHasObjectsResponse> BucketHasObjectsAsync(BucketHasObjectsRequest request, ServerCallContext context)
    {
        if (Validation.CheckBucket(request.Bucket) is { } bucketProblem)
            throw NodeErrors.Kind(StatusCode.InvalidArgument, ErrorKinds.InvalidBucket, bucketProblem);
        if ((_node.Config?.Version ?? 0) < request.MinConfigVersion)
            await _node.RefreshConfigAsync();
        if ((_node.Config?.Version ?? 0) < request.MinConfigVersion)
            throw NodeErrors.NotReady($"node {_node.NodeId} runs config {_node.Config?.Version ?? 0}, older than {request.MinConfigVersion}");
        ChainReplica replica = _node.GetReplica(request.ChainId)
            ?? throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.NotHead, $"node {_node.NodeId} is not in chain {request.ChainId}");
        ChainRole role = replica.Role;
        if (role.Epoch != request.Epoch)
            throw NodeErrors.StaleEpoch(request.ChainId, request.Epoch, role.Epoch);
        if (!role.IsHead)
            throw NodeErrors.Kind(StatusCode.FailedPrecondition, ErrorKinds.NotHead, $"node {_node.NodeId} is not the head of chain {request.ChainId}", role.Epoch);
        return new BucketHasObjectsResponse { HasObjects = replica.BucketHasObjects(request.Bucket) };
    }

    private Task<ReplicaStateResponse> ReplicaStateAsync(ReplicaStateRequest request, ServerCallContext context)
    {
        ChainReplica replica = _node.GetReplica(request.ChainId)
            ?? throw NodeErrors.NotReady($"node {_node.NodeId} has no replica of chain {request.ChainId}");
        ChainRole role = replica.Role;
        var response = new ReplicaStateResponse
        {
            NodeId = _node.NodeId,
            ChainId = request.ChainId,
            Epoch = role.Epoch,
            Position = role.Position,
            AppliedSeq = replica.DurableSeq,
            AckedSeq = replica.AckedSeq,
        };
        byte[] prefix = NodeStore.ChainPrefix(request.ChainId);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using IKvSnapshot snapshot = _node.Store.Engine.Snapshot();
        using (IKvIterator it = _node.Store.Engine.Iterate(NodeStore.Objects, prefix, KvKeys.PrefixUpperBound(prefix), snapshot))
        {
            for (it.SeekToFirst(); it.Valid; it.Next())
            {
                hash.AppendData(it.Key);
                hash.AppendData(it.Value);
                response.ObjectCount++;
            }
        }
        response.ObjectsSha256 = ByteString.CopyFrom(hash.GetHashAndReset());
        if (!string.IsNullOrEmpty(request.Bucket) && !request.Key.IsEmpty)
        {
            if (Validation.CheckKey(request.Key.Span) is { } problem)
                throw NodeErrors.InvalidKey(problem);
            ObjectMeta? meta = _node.Store.GetObject(request.ChainId, request.Bucket, request.Key.Span);
            response.ObjectPresent = meta is not null;
            if (meta is not null)
                response.Object = meta;
        }
        return Task.FromResult(response);
    }
}
