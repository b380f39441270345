using System.Net;
using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;
using Chain.Rpc.Server;

namespace Chain.Agent.Tests;

/// <summary>
/// A stand-in for the tracker, served on a real RpcServer: it records every announce and outcome, and names sources by a
/// script: <see cref="Choose"/>(requesting peer, chunk, attempt) → a peer's id, "store", or null (nothing now).
/// </summary>
public sealed class ScriptedTracker : IAsyncDisposable
{
    private readonly object _gate = new();
    private readonly Dictionary<string, PeerInfo> _peers = new();
    private readonly Dictionary<(string Peer, string Swarm, uint Chunk), int> _attempts = new();
    private readonly HashSet<(string Peer, string Swarm, uint Chunk)> _held = new();
    private readonly Dictionary<ulong, (string Peer, string Swarm, uint Chunk)> _outstanding = new();
    private readonly Dictionary<string, List<SwarmChunk>> _swarms = new();
    private ulong _nextId = 1;
    private RpcServer? _server;

    public Func<string, uint, int, string?> Choose { get; set; } = (_, _, _) => "store";
    public List<AnnounceRequest> Announces { get; } = new();
    public List<(string Peer, string Swarm, Outcome Outcome)> Outcomes { get; } = new();
    public List<(string Peer, uint Chunk, string Source)> Assigned { get; } = new();
    public Uri Address => _server!.Address;

    public static async Task<ScriptedTracker> StartAsync()
    {
        var tracker = new ScriptedTracker();
        var registry = new RpcServiceRegistry();
        registry.AddUnary(TrackerMethods.Announce, (r, _) => Task.FromResult(tracker.Announce(r)));
        registry.AddUnary(TrackerMethods.Exchange, (r, _) => Task.FromResult(tracker.Exchange(r)));
        registry.AddUnary(TrackerMethods.Leave, (_, _) => Task.FromResult(new LeaveResponse()));
        tracker._server = await RpcServer.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), registry);
        return tracker;
    }

    public T Read<T>(Func<ScriptedTracker, T> read)
    {
        lock (_gate)
            return read(this);
    }

    private AnnounceResponse Announce(AnnounceRequest request)
    {
        lock (_gate)
        {
            Announces.Add(request.Clone());
            _peers[request.Peer.PeerId] = request.Peer;
            _swarms.TryAdd(request.SwarmId, request.Chunks.ToList());
            foreach (uint chunk in request.Have)
                _held.Add((request.Peer.PeerId, request.SwarmId, chunk));
            return new AnnounceResponse { LeaseMs = 3000 };
        }
    }

    private ExchangeResponse Exchange(ExchangeRequest request)
    {
        lock (_gate)
        {
            string peer = request.PeerId;
            string swarm = request.SwarmId;
            foreach (var outcome in request.Outcomes)
            {
                Outcomes.Add((peer, request.SwarmId, outcome.Clone()));
                _outstanding.Remove(outcome.AssignmentId);
                if (outcome.Kind == Outcome.Types.Kind.Done)
                    _held.Add((peer, swarm, outcome.Chunk));
                else if (outcome.Kind == Outcome.Types.Kind.Evicted)
                    _held.Remove((peer, swarm, outcome.Chunk));
            }
            var response = new ExchangeResponse();
            if (!_swarms.TryGetValue(request.SwarmId, out var chunks))
                return response;
            for (uint chunk = 0; chunk < chunks.Count && response.Assignments.Count < request.Want; chunk++)
            {
                if (_held.Contains((peer, swarm, chunk)) || _outstanding.ContainsValue((peer, swarm, chunk)))
                    continue;
                _attempts.TryGetValue((peer, swarm, chunk), out int attempt);
                string? choice = Choose(peer, chunk, attempt);
                if (choice is null)
                    continue;
                _attempts[(peer, swarm, chunk)] = attempt + 1;
                var source = choice == "store"
                    ? new ChunkSource { StoreChainId = chunks[(int)chunk].ChainId }
                    : new ChunkSource { Peer = _peers[choice] };
                ulong id = _nextId++;
                _outstanding[id] = (peer, swarm, chunk);
                Assigned.Add((peer, chunk, choice));
                response.Assignments.Add(new Assignment { Chunk = chunk, Source = source, AssignmentId = id });
            }
            if (response.Assignments.Count == 0)
                response.RetryAfterMs = 50;
            response.Complete = Enumerable.Range(0, chunks.Count).All(c => _held.Contains((peer, swarm, (uint)c)));
            return response;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
            await _server.DisposeAsync();
    }
}
