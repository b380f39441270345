using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Google.Protobuf;

namespace Chain.Client;

/// <summary>Receives one attempt's snapshot stream of a chain (a new sink per attempt; disposed whether it completed or not).</summary>
internal interface ISnapshotSink : IAsyncDisposable
{
    ValueTask AddAsync(string columnFamily, ByteString key, ByteString value, CancellationToken cancellationToken);

    Task CompleteAsync(CancellationToken cancellationToken);
}

public sealed partial class ChainClient
{
    /// <summary>The master's current config, fetched now (for a backup's <c>config.pb</c>).</summary>
    internal async Task<ClusterConfig> CurrentConfigAsync(CancellationToken cancellationToken) =>
        (await FreshConfigAsync(cancellationToken).ConfigureAwait(false)).Config;

    /// <summary>
    /// Streams chain <paramref name="chainId"/>'s records in <paramref name="columnFamilies"/> from its tail (one
    /// engine snapshot there) into a sink that <paramref name="open"/> makes from the serving node's id and the
    /// snapshot's applied sequence number. A refusal (not the tail, stale epoch, no lease), a broken stream or chunks
    /// the tail found damaged (it repairs them in the background) discard the attempt and retry with a fresh table.
    /// </summary>
    internal Task SnapshotChainAsync(uint chainId, IReadOnlyList<string> columnFamilies, Func<string, ulong, ISnapshotSink> open,
        CancellationToken cancellationToken)
    {
        CheckNotDisposed();
        return _retry.RunAsync($"snapshot of chain {chainId}", async (state, ct) =>
        {
            var current = await _config.GetAsync(fresh: false, ct).ConfigureAwait(false);
            state.ConfigVersion = current.Version;
            var tail = MemberRoute(current, chainId, tail: true);
            var request = new SnapshotChainRequest { ChainId = chainId, Epoch = tail.Epoch };
            request.ColumnFamilies.AddRange(columnFamilies);
            ISnapshotSink? sink = null;
            try
            {
                await foreach (var message in _transport.For(tail.Address)
                                   .ServerStreamingAsync(AdminMethods.SnapshotChain, request, new CallOptions { CancellationToken = ct })
                                   .WithCancellation(ct).ConfigureAwait(false))
                {
                    if (sink is null)
                    {
                        sink = open(tail.NodeId, message.AppliedSeq);
                        continue;
                    }
                    if (message.Records is { } records)
                    {
                        if (records.Keys.Count != records.Values.Count || !columnFamilies.Contains(records.ColumnFamily))
                            throw new ChainException($"protocol error: node '{tail.NodeId}' sent a malformed snapshot batch of chain {chainId}");
                        for (int i = 0; i < records.Keys.Count; i++)
                            await sink.AddAsync(records.ColumnFamily, records.Keys[i], records.Values[i], ct).ConfigureAwait(false);
                    }
                    if (message.Done)
                    {
                        if (message.DamagedChunks > 0)
                            throw new RpcException(StatusCode.Unavailable,
                                $"node '{tail.NodeId}' left {message.DamagedChunks} damaged chunk(s) of chain {chainId} out (it repairs them from a peer)");
                        await sink.CompleteAsync(ct).ConfigureAwait(false);
                        return true;
                    }
                }
                throw new RpcException(StatusCode.Unavailable, $"the snapshot stream of chain {chainId} from node '{tail.NodeId}' ended early");
            }
            finally
            {
                if (sink is not null)
                    await sink.DisposeAsync().ConfigureAwait(false);
            }
        }, cancellationToken, budget: TimeSpan.FromDays(1));
    }
}
