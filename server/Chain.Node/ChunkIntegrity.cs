using System.Collections.Concurrent;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Storage;
using Google.Protobuf;
using Microsoft.Extensions.Logging;

namespace Chain.Node;

/// <summary>
/// Damaged chunks on this node: every read verifies a chunk against its SHA-256 (and the engine's own checksums);
/// a failure is reported (log, counters, <c>Admin/Health</c>) and the chunk is repaired in the background from
/// another node that holds an intact copy. Chunks are content-addressed and immutable, so any copy whose digest
/// matches is the right one, whichever chain member (or former member) holds it, and the repair is a local rewrite
/// outside the chain's sequence.
/// </summary>
internal sealed class ChunkIntegrity
{
    private const int RecentMax = 32;
    private readonly StorageNode _node;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<string, Task<bool>> _repairs = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _recent = new();
    private long _detected;
    private long _repaired;
    private long _failures;

    public ChunkIntegrity(StorageNode node, ILogger log)
    {
        _node = node;
        _log = log;
    }

    public HealthResponse Health()
    {
        var response = new HealthResponse
        {
            NodeId = _node.NodeId,
            CorruptChunksDetected = (ulong)Interlocked.Read(ref _detected),
            ChunksRepaired = (ulong)Interlocked.Read(ref _repaired),
            RepairFailures = (ulong)Interlocked.Read(ref _failures),
        };
        response.RecentCorruptions.AddRange(_recent);
        GCMemoryInfo gc = GC.GetGCMemoryInfo();
        response.ManagedHeapBytes = (ulong)gc.HeapSizeBytes;
        response.ManagedCommittedBytes = (ulong)gc.TotalCommittedBytes;
        response.FullCollections = (ulong)GC.CollectionCount(2);
        response.ResidentBytes = (ulong)Environment.WorkingSet;
        return response;
    }

    /// <summary>Records a damaged chunk and starts its repair (once per chunk at a time); the task says whether it was repaired.</summary>
    public Task<bool> ReportCorrupt(uint chainId, ReadOnlySpan<byte> sha256, string problem)
    {
        string id = Convert.ToHexStringLower(sha256);
        Interlocked.Increment(ref _detected);
        string line = $"{_node.Options.Time.GetUtcNow():O} chain {chainId} chunk {id}: {problem}";
        _recent.Enqueue(line);
        while (_recent.Count > RecentMax && _recent.TryDequeue(out _))
        {
        }
        _log.LogError("CORRUPT chunk {Chunk} of chain {Chain} on node {Node}: {Problem}; repairing from a peer", id, chainId, _node.NodeId, problem);
        string slot = chainId + ":" + id;
        byte[] copy = sha256.ToArray();
        var mine = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<bool> running = _repairs.GetOrAdd(slot, mine.Task);
        if (running != mine.Task)
            return running;
        _ = _node.Options.Spawn(async () =>
        {
            bool ok = false;
            try
            {
                ok = await RepairAsync(chainId, copy);
            }
            catch (Exception e)
            {
                _log.LogError("repair of chunk {Chunk} of chain {Chain} failed: {Error}", id, chainId, e.Message);
            }
            finally
            {
                Interlocked.Increment(ref ok ? ref _repaired : ref _failures);
                _repairs.TryRemove(new KeyValuePair<string, Task<bool>>(slot, mine.Task));
                mine.TrySetResult(ok);
            }
        });
        return mine.Task;
    }

    /// <summary>Fetches an intact copy from another node (chain members first) and rewrites the local one.</summary>
    private async Task<bool> RepairAsync(uint chainId, byte[] sha256)
    {
        ClusterConfig? config = _node.Config;
        if (config is null)
            return false;
        ChainInfo? chain = config.Chains.FirstOrDefault(c => c.ChainId == chainId);
        var candidates = new List<string>();
        if (chain is not null)
            candidates.AddRange(chain.Nodes.Concat(chain.Syncing).Concat(chain.Former));
        candidates.AddRange(config.Nodes.Select(n => n.Node.NodeId));
        foreach (string peer in candidates.Distinct(StringComparer.Ordinal))
        {
            if (peer == _node.NodeId)
                continue;
            NodeStatus? status = config.Nodes.FirstOrDefault(n => n.Node.NodeId == peer);
            if (status is null || !Uri.TryCreate(status.Node.Address, UriKind.Absolute, out Uri? address))
                continue;
            byte[] data;
            try
            {
                GetChunkResponse response = await _node.Channel(address).UnaryAsync(StoreMethods.GetChunk,
                    new GetChunkRequest { ChainId = chainId, Sha256 = ByteString.CopyFrom(sha256) },
                    new CallOptions { Timeout = TimeSpan.FromSeconds(10) });
                data = response.Data.ToByteArray();
            }
            catch (RpcException e)
            {
                _log.LogDebug("repair: node {Peer} could not supply chunk {Chunk}: {Error}", peer, Convert.ToHexStringLower(sha256), e.Message);
                continue;
            }
            if (!Digests.Matches(data, sha256))
            {
                _log.LogWarning("repair: node {Peer} sent a copy of chunk {Chunk} that does not match its SHA-256", peer, Convert.ToHexStringLower(sha256));
                continue;
            }
            try
            {
                await _node.Store.RewriteChunkAsync(chainId, sha256, data);
            }
            catch (StorageException e)
            {
                _log.LogError("repair: rewriting chunk {Chunk} failed: {Error}", Convert.ToHexStringLower(sha256), e.Message);
                return false;
            }
            if (_node.Store.ReadChunkVerified(chainId, sha256).State != ChunkState.Ok)
                return false;
            _log.LogWarning("REPAIRED chunk {Chunk} of chain {Chain} on node {Node} from node {Peer}", Convert.ToHexStringLower(sha256), chainId, _node.NodeId, peer);
            return true;
        }
        return false;
    }

    /// <summary>Verifies every chunk this node stores (all chains) and repairs the damaged ones; waits for the repairs.</summary>
    public async Task<ScrubResponse> ScrubAsync(CancellationToken cancellationToken)
    {
        var result = new ScrubResponse();
        var repairs = new List<Task<bool>>();
        var damaged = new List<(uint Chain, byte[] Id)>();
        // Key-only pass first (cheap even with blob files), then each chunk read on its own, so one damaged blob
        // cannot end the scan.
        var ids = new List<byte[]>();
        using (IKvIterator it = _node.Store.Engine.Iterate(NodeStore.ChunkInfo, null, null))
        {
            for (it.SeekToFirst(); it.Valid; it.Next())
                ids.Add(it.Key.ToArray());
        }
        foreach (byte[] key in ids)
        {
            cancellationToken.ThrowIfCancellationRequested();
            uint chainId = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(key);
            byte[] id = key[4..];
            ChunkRead read = _node.Store.ReadChunkVerified(chainId, id);
            result.ChunksChecked++;
            if (read.Data is not null)
                result.BytesChecked += (ulong)read.Data.Length;
            if (read.State == ChunkState.Ok)
                continue;
            // A chunk whose data vanished under its record is as damaged as one that changed.
            result.Corrupt++;
            repairs.Add(ReportCorrupt(chainId, id, read.Problem ?? "data missing"));
        }
        foreach (Task<bool> repair in repairs)
        {
            if (await repair.WaitAsync(cancellationToken))
                result.Repaired++;
        }
        return result;
    }
}
