using Chain.Protocol;
using Chain.Protocol.V1;
using Chain.Rpc;

namespace Chain.Tracker;

/// <summary>
/// The tracker's scheduling core: swarms, peers (leased), holders per chunk, assignments in flight, metrics.
/// Pure: no I/O, time only from the <see cref="TimeProvider"/>, random choices from a seeded <see cref="Random"/>.
/// Not thread-safe: <see cref="TrackerService"/> calls it under one lock. Bad requests throw typed
/// <see cref="RpcException"/>s and change nothing.
///
/// Policy of <see cref="Exchange"/> (ARCHITECTURE.md, "Distribution tier"): chunks the peer lacks and is not
/// already fetching, rarest first (holders + in flight; ties random); for each, a source: a live, not avoided,
/// not backed-off holder with a free upload slot, same zone first, then fewest uploads in flight, then most upload
/// bandwidth, then random (the best of the first <see cref="SourcesComparedMax"/> eligible ones). With no usable holder at all and nobody fetching the chunk, the store — at most
/// <see cref="TrackerOptions.MaxStoreFetchesPerSwarm"/> at once per swarm, so the store's upload goes to distinct
/// chunks and every other copy travels peer to peer. A chunk some holder has (busy) or someone is fetching is
/// left for later: the peer is told to retry soon if it got nothing.
/// </summary>
public sealed class TrackerState
{
    /// <summary>Peers listed in one status answer at most (the counts stay exact).</summary>
    public const int StatusPeersMax = 4096;

    /// <summary>Eligible sources compared for one chunk at most: the best of the first this many (bounds the work per call).</summary>
    public const int SourcesComparedMax = 64;

    private readonly TrackerOptions _options;
    private readonly TimeProvider _time;
    private readonly long _origin;
    private readonly Random _random;
    private readonly Dictionary<string, Peer> _peers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Swarm> _swarms = new(StringComparer.Ordinal);
    private readonly Dictionary<ulong, Flight> _assignments = new();
    private readonly HashSet<string> _avoided = new(StringComparer.Ordinal);
    private readonly Queue<string> _avoidedOrder = new();
    private ulong _nextAssignmentId = 1;
    private long _lastSweepMs;

    public TrackerState(TrackerOptions options, TimeProvider time)
    {
        options.Validate();
        _options = options;
        _time = time;
        _origin = time.GetTimestamp();
        _random = new Random(options.Seed);
    }

    public TrackerOptions Options => _options;

    /// <summary>Assignments in flight over all swarms (for tests and status).</summary>
    public int AssignmentsInFlight => _assignments.Count;

    public int SwarmCount => _swarms.Count;

    /// <summary>Whether a peer id has served data that failed verification (it is never named as a source again).</summary>
    public bool IsAvoided(string peerId) => _avoided.Contains(peerId);

    /// <summary>Uploads a peer has in flight over all swarms (0 for an unknown peer).</summary>
    public int UploadsInFlight(string peerId) => _peers.TryGetValue(peerId, out Peer? p) ? p.Uploads.Count : 0;

    /// <summary>The concurrent uploads a peer accepts (its announced max_uploads, or the default).</summary>
    public int UploadCap(string peerId) => _peers.TryGetValue(peerId, out Peer? p) ? Cap(p) : 0;

    /// <summary>How many times the store has been named as the source of a chunk of a swarm (for tests and bounds).</summary>
    public int StoreServes(string swarmId, int chunk) => _swarms.TryGetValue(swarmId, out Swarm? s) ? s.StoreAssigned[chunk] : 0;

    // ---------------------------------------------------------------- requests

    public AnnounceResponse Announce(AnnounceRequest request)
    {
        Sweep(force: false);
        PeerInfo info = ValidPeer(request.Peer);
        string swarmId = ValidSwarmId(request.SwarmId);
        _swarms.TryGetValue(swarmId, out Swarm? swarm);
        if (swarm is null)
        {
            if (request.Chunks.Count == 0)
                throw Errors.Kind(StatusCode.NotFound, ErrorKinds.UnknownSwarm, $"swarm {swarmId} is not known: the first announce carries its chunk list");
            ValidChunks(request);
            if (_swarms.Count >= _options.MaxSwarms)
                throw new RpcException(StatusCode.ResourceExhausted, $"the tracker holds its maximum of {_options.MaxSwarms} swarms");
        }
        else if (request.Chunks.Count != 0 && !SameChunks(swarm, request))
        {
            throw Errors.Kind(StatusCode.FailedPrecondition, ErrorKinds.SwarmConflict,
                $"swarm {swarmId}: the announced chunk list differs from the swarm's ({swarm.Chunks.Length} chunks, {swarm.ObjectSize} bytes)");
        }
        int chunkCount = swarm?.Chunks.Length ?? request.Chunks.Count;
        foreach (uint index in request.Have)
        {
            if (index >= chunkCount)
                throw Errors.InvalidArgument($"announce: have index {index} is out of range (the swarm has {chunkCount} chunks)");
        }
        _peers.TryGetValue(info.PeerId, out Peer? peer);
        Member? member = null;
        swarm?.Members.TryGetValue(info.PeerId, out member);
        if (member is null)
        {
            if (swarm is not null && swarm.Members.Count >= _options.MaxPeersPerSwarm)
                throw new RpcException(StatusCode.ResourceExhausted, $"swarm {swarmId} holds its maximum of {_options.MaxPeersPerSwarm} peers");
            if (peer is not null && peer.Swarms.Count >= _options.MaxSwarmsPerPeer)
                throw new RpcException(StatusCode.ResourceExhausted, $"peer {info.PeerId} is in its maximum of {_options.MaxSwarmsPerPeer} swarms");
        }

        // Valid: apply.
        long now = NowMs();
        if (swarm is null)
        {
            swarm = new Swarm(swarmId, request.Chunks.Select(c => c.Clone()).ToArray(), request.ObjectSize);
            _swarms.Add(swarmId, swarm);
        }
        if (request.ObjectName.Length > 0)
            swarm.Name = request.ObjectName.Length > 1024 ? request.ObjectName[..1024] : request.ObjectName;
        if (peer is null)
        {
            peer = new Peer(info.PeerId);
            _peers.Add(peer.Id, peer);
        }
        peer.Info = info.Clone();
        peer.LastSeenMs = now;
        if (member is null)
        {
            member = new Member(peer, swarm, UnixMs());
            swarm.Members.Add(peer.Id, member);
            peer.Swarms.Add(swarm.Id, member);
        }
        member.Wants = request.Wants;
        RefreshFree(peer);   // a new member, or a changed upload cap
        var have = new bool[swarm.Chunks.Length];
        foreach (uint index in request.Have)
            have[index] = true;
        for (int c = 0; c < have.Length; c++)
        {
            if (have[c] && !member.Have[c])
                AddHolder(member, c);
            else if (!have[c] && member.Have[c])
                RemoveHolder(member, c);
        }
        return new AnnounceResponse { LeaseMs = (uint)_options.Lease.TotalMilliseconds };
    }

    public ExchangeResponse Exchange(ExchangeRequest request)
    {
        Sweep(force: false);
        Member member = MemberOf(request.PeerId, request.SwarmId);
        Swarm swarm = member.Swarm;
        foreach (Outcome outcome in request.Outcomes)
        {
            if (outcome.Kind is not (Outcome.Types.Kind.Done or Outcome.Types.Kind.SourceFailed or Outcome.Types.Kind.VerificationFailed or Outcome.Types.Kind.Evicted))
                throw Errors.InvalidArgument($"exchange: outcome kind {outcome.Kind} is not one of DONE, SOURCE_FAILED, VERIFICATION_FAILED, EVICTED");
            if (outcome.Chunk >= swarm.Chunks.Length)
                throw Errors.InvalidArgument($"exchange: outcome chunk {outcome.Chunk} is out of range (the swarm has {swarm.Chunks.Length} chunks)");
            if (outcome.Kind != Outcome.Types.Kind.Evicted && outcome.AssignmentId != 0
                && _assignments.TryGetValue(outcome.AssignmentId, out Flight? a) && a.Downloader == member && a.Chunk != outcome.Chunk)
                throw Errors.InvalidArgument($"exchange: assignment {outcome.AssignmentId} was for chunk {a.Chunk}, not {outcome.Chunk}");
        }

        // Valid: apply.
        member.Peer.LastSeenMs = NowMs();
        foreach (Outcome outcome in request.Outcomes)
            Apply(member, outcome);

        var response = new ExchangeResponse();
        if (member.HaveCount == swarm.Chunks.Length)
        {
            response.Complete = true;
            return response;
        }
        if (!member.Wants || request.Want == 0)
            return response;
        int want = (int)Math.Min(request.Want, (uint)_options.MaxAssignmentsPerExchange);
        foreach (int chunk in RarestFirst(member))
        {
            if (response.Assignments.Count >= want)
                break;
            if (Assign(member, chunk) is { } assignment)
                response.Assignments.Add(assignment);
        }
        if (response.Assignments.Count == 0)
            response.RetryAfterMs = (uint)_options.RetryAfterMs;
        return response;
    }

    public LeaveResponse Leave(LeaveRequest request)
    {
        Sweep(force: false);
        Member member = MemberOf(request.PeerId, request.SwarmId);
        RemoveMember(member);
        return new LeaveResponse();
    }

    public SwarmStatusResponse Status(SwarmStatusRequest request)
    {
        Sweep(force: false);
        IEnumerable<Swarm> swarms;
        if (request.SwarmId.Length == 0)
            swarms = _swarms.Values.OrderBy(s => s.Id, StringComparer.Ordinal);
        else if (_swarms.TryGetValue(request.SwarmId, out Swarm? one))
            swarms = new[] { one };
        else
            throw Errors.Kind(StatusCode.NotFound, ErrorKinds.UnknownSwarm, $"swarm '{request.SwarmId}' is not known");
        var response = new SwarmStatusResponse();
        int listed = 0;
        foreach (Swarm swarm in swarms)
        {
            var status = new SwarmStatus
            {
                SwarmId = swarm.Id,
                ObjectName = swarm.Name,
                ObjectSize = swarm.ObjectSize,
                ChunkCount = (uint)swarm.Chunks.Length,
                BytesFromPeers = swarm.BytesFromPeers,
                BytesFromStore = swarm.BytesFromStore,
                RefetchedAfterVerification = swarm.Refetched,
            };
            foreach (Member m in swarm.Members.Values.OrderBy(m => m.Peer.Id, StringComparer.Ordinal))
            {
                if (listed++ >= StatusPeersMax)
                    break;
                status.Peers.Add(new PeerSwarmStatus
                {
                    PeerId = m.Peer.Id,
                    Zone = m.Peer.Info.Zone,
                    ChunksHeld = (uint)m.HaveCount,
                    BytesFromPeers = m.BytesFromPeers,
                    BytesFromStore = m.BytesFromStore,
                    BytesUploaded = m.BytesUploaded,
                    UploadsInFlight = (uint)m.Peer.Uploads.Count,
                    VerificationFailuresCaused = m.VerificationFailuresCaused,
                    Avoided = _avoided.Contains(m.Peer.Id),
                    JoinedUnixMs = m.JoinedUnixMs,
                    CompletedUnixMs = m.CompletedUnixMs,
                });
            }
            response.Swarms.Add(status);
        }
        return response;
    }

    /// <summary>
    /// Expires peers silent past their lease (dead: no longer holders, their downloads and uploads dropped so the
    /// chunks are assigned again) and assignments older than the assignment timeout. Runs from every request at most
    /// every quarter lease; <paramref name="force"/> runs it now.
    /// </summary>
    public void Sweep(bool force = true)
    {
        long now = NowMs();
        long interval = (long)_options.Lease.TotalMilliseconds / 4;
        if (!force && now - _lastSweepMs < interval)
            return;
        _lastSweepMs = now;
        long leaseMs = (long)_options.Lease.TotalMilliseconds;
        foreach (Peer dead in _peers.Values.Where(p => now - p.LastSeenMs > leaseMs).ToList())
        {
            foreach (Member m in dead.Swarms.Values.ToList())
                RemoveMember(m);
            foreach (Flight upload in dead.Uploads.Values.ToList())
                Drop(upload);
            _peers.Remove(dead.Id);
        }
        long timeoutMs = (long)_options.AssignmentTimeout.TotalMilliseconds;
        foreach (Flight stale in _assignments.Values.Where(a => now - a.StartedMs > timeoutMs).ToList())
            Drop(stale);
    }

    // ---------------------------------------------------------------- scheduling

    /// <summary>
    /// The chunks the member lacks, is not fetching and could be assigned now, rarest (holders + in flight) first,
    /// ties in random order. A counting sort by rarity and a shuffle within each rarity drawn lazily: O(chunks) per
    /// call however few are taken.
    /// </summary>
    private IEnumerable<int> RarestFirst(Member member)
    {
        Swarm swarm = member.Swarm;
        var candidates = new List<(int Rarity, int Chunk)>();
        int maxRarity = 0;
        for (int c = 0; c < swarm.Chunks.Length; c++)
        {
            if (member.Have[c] || member.Downloads.ContainsKey(c))
                continue;
            if (swarm.Holders[c].Count == 0 && (swarm.InFlight[c] > 0 || swarm.StoreInFlight >= _options.MaxStoreFetchesPerSwarm))
                continue;   // waits for the copy in flight, or for a store slot: cannot be assigned in this call
            int rarity = swarm.Holders[c].Count + swarm.InFlight[c];
            candidates.Add((rarity, c));
            maxRarity = Math.Max(maxRarity, rarity);
        }
        var starts = new int[maxRarity + 2];
        foreach ((int rarity, _) in candidates)
            starts[rarity + 1]++;
        for (int r = 1; r < starts.Length; r++)
            starts[r] += starts[r - 1];
        var order = new int[candidates.Count];
        var next = (int[])starts.Clone();
        foreach ((int rarity, int chunk) in candidates)
            order[next[rarity]++] = chunk;
        for (int r = 0; r <= maxRarity; r++)
        {
            int end = starts[r + 1];
            for (int i = starts[r]; i < end; i++)
            {
                int j = _random.Next(i, end);
                (order[i], order[j]) = (order[j], order[i]);
                yield return order[i];
            }
        }
    }

    private Assignment? Assign(Member member, int chunk)
    {
        Swarm swarm = member.Swarm;
        HashSet<Member> holders = swarm.Holders[chunk];
        long now = NowMs();
        Peer? source = null;
        (int Zone, int Uploads, ulong NegBandwidth) best = default;
        int ties = 0;
        int compared = 0;
        // Scan the smaller of the chunk's holders and the swarm's members with a free upload slot: in a saturated
        // flash crowd few are free, early on few hold the chunk; either way the scan stays short.
        HashSet<Member> pool = swarm.FreeSources.Count < holders.Count ? swarm.FreeSources : holders;
        foreach (Member candidate in pool)
        {
            Peer p = candidate.Peer;
            if (!candidate.Have[chunk] || !Usable(p, member.Peer, now) || p.Uploads.Count >= Cap(p))
                continue;
            bool sameZone = member.Peer.Info.Zone.Length > 0 && member.Peer.Info.Zone == p.Info.Zone;
            ulong bandwidth = p.Info.UploadBytesPerSecond == 0 ? ulong.MaxValue : p.Info.UploadBytesPerSecond;
            var key = (sameZone ? 0 : 1, p.Uploads.Count, ulong.MaxValue - bandwidth);
            int order = source is null ? -1 : key.CompareTo(best);
            if (order < 0)
            {
                source = p;
                best = key;
                ties = 1;
            }
            else if (order == 0 && _random.Next(++ties) == 0)
            {
                source = p;
            }
            if (++compared >= SourcesComparedMax)
                break;
        }
        if (source is null)
        {
            // The store only for a chunk no usable peer holds and nobody is fetching: its first copy (or a lost one).
            if (swarm.InFlight[chunk] > 0 || swarm.StoreInFlight >= _options.MaxStoreFetchesPerSwarm
                || holders.Any(h => Usable(h.Peer, member.Peer, now)))
                return null;
            // The store's first copies go to different peers, so that they can trade them at once: each wanting member
            // gets its share of the store slots (at most StoreFetchesPerPeerMax), never all of them.
            if (member.Downloads.Values.Count(f => f.Source is null) >= StoreShare(swarm))
                return null;
        }

        var flight = new Flight(_nextAssignmentId++, member, chunk, source, now);
        _assignments.Add(flight.Id, flight);
        member.Downloads.Add(chunk, flight);
        swarm.InFlight[chunk]++;
        var wire = new Assignment { AssignmentId = flight.Id, Chunk = (uint)chunk };
        if (source is not null)
        {
            source.Uploads.Add(flight.Id, flight);
            RefreshFree(source);
            wire.Source = new ChunkSource { Peer = source.Info.Clone() };
        }
        else
        {
            swarm.StoreInFlight++;
            swarm.StoreAssigned[chunk]++;
            wire.Source = new ChunkSource { StoreChainId = swarm.Chunks[chunk].ChainId };
        }
        return wire;
    }

    /// <summary>Store fetches one member may have in flight: the swarm's store slots split over its wanting members.</summary>
    private int StoreShare(Swarm swarm)
    {
        int wanting = swarm.Members.Values.Count(m => m.Wants && m.HaveCount < swarm.Chunks.Length);
        return Math.Clamp(_options.MaxStoreFetchesPerSwarm / Math.Max(1, wanting), 1, StoreFetchesPerPeerMax);
    }

    private void Apply(Member member, Outcome outcome)
    {
        int chunk = (int)outcome.Chunk;
        if (outcome.Kind == Outcome.Types.Kind.Evicted)
        {
            if (member.Have[chunk])
                RemoveHolder(member, chunk);
            return;
        }
        _assignments.TryGetValue(outcome.AssignmentId, out Flight? a);
        if (a is not null && a.Downloader != member)
            a = null;   // not this peer's: ignore the id
        switch (outcome.Kind)
        {
            case Outcome.Types.Kind.Done:
                if (a is not null)
                {
                    Drop(a);
                    Swarm swarm = member.Swarm;
                    if (a.Source is null)
                    {
                        swarm.BytesFromStore += outcome.Bytes;
                        member.BytesFromStore += outcome.Bytes;
                    }
                    else
                    {
                        swarm.BytesFromPeers += outcome.Bytes;
                        member.BytesFromPeers += outcome.Bytes;
                        a.Source.FailuresInRow = 0;
                        if (a.Source.Swarms.TryGetValue(swarm.Id, out Member? sourceMember))
                            sourceMember.BytesUploaded += outcome.Bytes;
                    }
                }
                // Verified by the reporter even if the assignment expired meanwhile: it holds the chunk.
                if (!member.Have[chunk])
                    AddHolder(member, chunk);
                break;
            case Outcome.Types.Kind.SourceFailed:
                if (a is null)
                    return;
                Drop(a);
                if (a.Source is { } failed && ++failed.FailuresInRow >= _options.SourceFailuresBeforeBackoff)
                {
                    failed.FailuresInRow = 0;
                    failed.BackoffUntilMs = NowMs() + (long)_options.SourceBackoff.TotalMilliseconds;
                }
                break;
            case Outcome.Types.Kind.VerificationFailed:
                if (a is null)
                    return;
                Drop(a);
                member.Swarm.Refetched++;
                if (a.Source is { } liar)
                {
                    Avoid(liar.Id);
                    if (liar.Swarms.TryGetValue(member.Swarm.Id, out Member? liarMember))
                        liarMember.VerificationFailuresCaused++;
                }
                break;
        }
    }

    private void Avoid(string peerId)
    {
        if (!_avoided.Add(peerId))
            return;
        _avoidedOrder.Enqueue(peerId);
        while (_avoidedOrder.Count > _options.MaxAvoidedPeers)
        {
            string forgotten = _avoidedOrder.Dequeue();
            _avoided.Remove(forgotten);
            if (_peers.TryGetValue(forgotten, out Peer? again))
                RefreshFree(again);
        }
        if (_peers.TryGetValue(peerId, out Peer? avoided))
            RefreshFree(avoided);
    }

    // ---------------------------------------------------------------- bookkeeping

    private void AddHolder(Member member, int chunk)
    {
        member.Have[chunk] = true;
        member.HaveCount++;
        member.Swarm.Holders[chunk].Add(member);
        if (member.HaveCount == member.Swarm.Chunks.Length && member.CompletedUnixMs == 0 && member.Wants)
            member.CompletedUnixMs = UnixMs();
    }

    private static void RemoveHolder(Member member, int chunk)
    {
        member.Have[chunk] = false;
        member.HaveCount--;
        member.Swarm.Holders[chunk].Remove(member);
    }

    private void Drop(Flight a)
    {
        if (!_assignments.Remove(a.Id))
            return;
        Swarm swarm = a.Downloader.Swarm;
        a.Downloader.Downloads.Remove(a.Chunk);
        swarm.InFlight[a.Chunk]--;
        if (a.Source is null)
        {
            swarm.StoreInFlight--;
        }
        else
        {
            a.Source.Uploads.Remove(a.Id);
            RefreshFree(a.Source);
        }
    }

    /// <summary>A peer that may be named as a source now (its upload slots aside).</summary>
    private bool Usable(Peer p, Peer downloader, long now) => p != downloader && p.BackoffUntilMs <= now && !_avoided.Contains(p.Id);

    /// <summary>Keeps <see cref="Swarm.FreeSources"/> exact for the peer: in it iff not avoided and below its upload cap.</summary>
    private void RefreshFree(Peer p)
    {
        bool free = p.Uploads.Count < Cap(p) && !_avoided.Contains(p.Id);
        foreach (Member m in p.Swarms.Values)
        {
            if (free)
                m.Swarm.FreeSources.Add(m);
            else
                m.Swarm.FreeSources.Remove(m);
        }
    }

    private void RemoveMember(Member member)
    {
        Swarm swarm = member.Swarm;
        for (int c = 0; c < member.Have.Length; c++)
        {
            if (member.Have[c])
                RemoveHolder(member, c);
        }
        foreach (Flight a in member.Downloads.Values.ToList())
            Drop(a);
        swarm.Members.Remove(member.Peer.Id);
        swarm.FreeSources.Remove(member);
        member.Peer.Swarms.Remove(swarm.Id);
        if (swarm.Members.Count == 0)
        {
            // Uploads the departed peers still owe to nobody: none can remain (every downloader was a member).
            _swarms.Remove(swarm.Id);
        }
    }

    private Member MemberOf(string peerId, string swarmId)
    {
        if (string.IsNullOrEmpty(peerId))
            throw Errors.InvalidArgument("peer id is empty");
        if (!_swarms.TryGetValue(swarmId, out Swarm? swarm))
            throw Errors.Kind(StatusCode.NotFound, ErrorKinds.UnknownSwarm, $"swarm '{swarmId}' is not known: announce it");
        if (!swarm.Members.TryGetValue(peerId, out Member? member))
            throw Errors.Kind(StatusCode.NotFound, ErrorKinds.NotAnnounced, $"peer '{peerId}' is not in swarm {swarmId} (or its lease ran out): announce again");
        return member;
    }

    private int Cap(Peer p) => p.Info.MaxUploads == 0 ? _options.DefaultMaxUploads : (int)Math.Min(p.Info.MaxUploads, 1024u);

    // ---------------------------------------------------------------- validation

    private static PeerInfo ValidPeer(PeerInfo? peer)
    {
        if (peer is null || string.IsNullOrWhiteSpace(peer.PeerId) || peer.PeerId.Length > 128)
            throw Errors.InvalidArgument("announce: peer id must be 1-128 characters");
        if (!Uri.TryCreate(peer.Address, UriKind.Absolute, out Uri? address) || address.Scheme != "http")
            throw Errors.InvalidArgument($"announce: peer address '{peer.Address}' is not an http:// URL");
        if (peer.DataAddress.Length > 0 && (peer.DataAddress.Length > 64
                || !System.Net.IPEndPoint.TryParse(peer.DataAddress, out var data) || data.Port == 0))
            throw Errors.InvalidArgument($"announce: peer data address '{(peer.DataAddress.Length > 80 ? peer.DataAddress[..80] + "..." : peer.DataAddress)}' is not ip:port");
        if (Validation.CheckZone(peer.Zone) is { } zoneProblem)
            throw Errors.InvalidArgument("announce: " + zoneProblem);
        return peer;
    }

    private static string ValidSwarmId(string id)
    {
        if (id.Length != 64 || !id.All(ch => ch is >= '0' and <= '9' or >= 'a' and <= 'f'))
            throw Errors.InvalidArgument($"swarm id '{(id.Length > 80 ? id[..80] + "..." : id)}' is not a lowercase hex SHA-256");
        return id;
    }

    private void ValidChunks(AnnounceRequest request)
    {
        if (request.Chunks.Count > _options.MaxChunksPerSwarm)
            throw Errors.InvalidArgument($"announce: {request.Chunks.Count} chunks, more than the tracker's {_options.MaxChunksPerSwarm} per swarm");
        ulong total = 0;
        foreach (SwarmChunk chunk in request.Chunks)
        {
            if (chunk.Sha256.Length != 32)
                throw Errors.InvalidArgument($"announce: a chunk digest is {chunk.Sha256.Length} bytes, not 32");
            total += chunk.Size;
        }
        if (total != request.ObjectSize)
            throw Errors.InvalidArgument($"announce: the chunks add up to {total} bytes, the object size is {request.ObjectSize}");
    }

    private static bool SameChunks(Swarm swarm, AnnounceRequest request) =>
        request.ObjectSize == swarm.ObjectSize && request.Chunks.Count == swarm.Chunks.Length
        && request.Chunks.Select((c, i) => c.Equals(swarm.Chunks[i])).All(same => same);

    private long NowMs() => (long)_time.GetElapsedTime(_origin).TotalMilliseconds;

    private long UnixMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    // ---------------------------------------------------------------- state

    private sealed class Peer(string id)
    {
        public string Id { get; } = id;
        public PeerInfo Info { get; set; } = new();
        public long LastSeenMs { get; set; }
        public int FailuresInRow { get; set; }
        public long BackoffUntilMs { get; set; }
        public Dictionary<ulong, Flight> Uploads { get; } = new();
        public Dictionary<string, Member> Swarms { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>Store fetches one member may have in flight even when it is the only one wanting (see <see cref="StoreShare"/>).</summary>
    private const int StoreFetchesPerPeerMax = 2;

    private sealed class Swarm
    {
        public Swarm(string id, SwarmChunk[] chunks, ulong objectSize)
        {
            Id = id;
            Chunks = chunks;
            ObjectSize = objectSize;
            Holders = new HashSet<Member>[chunks.Length];
            for (int c = 0; c < chunks.Length; c++)
                Holders[c] = new HashSet<Member>();
            InFlight = new int[chunks.Length];
            StoreAssigned = new int[chunks.Length];
        }

        public string Id { get; }
        public SwarmChunk[] Chunks { get; }
        public ulong ObjectSize { get; }
        public string Name { get; set; } = "";
        public Dictionary<string, Member> Members { get; } = new(StringComparer.Ordinal);
        public HashSet<Member>[] Holders { get; }
        /// <summary>Members not avoided and below their upload cap (back-off is checked when scanning).</summary>
        public HashSet<Member> FreeSources { get; } = new();
        public int[] InFlight { get; }
        public int[] StoreAssigned { get; }
        public int StoreInFlight { get; set; }
        public ulong BytesFromPeers { get; set; }
        public ulong BytesFromStore { get; set; }
        public uint Refetched { get; set; }
    }

    private sealed class Member(Peer peer, Swarm swarm, long joinedUnixMs)
    {
        public Peer Peer { get; } = peer;
        public Swarm Swarm { get; } = swarm;
        public bool[] Have { get; } = new bool[swarm.Chunks.Length];
        public int HaveCount { get; set; }
        public bool Wants { get; set; }
        public Dictionary<int, Flight> Downloads { get; } = new();
        public ulong BytesFromPeers { get; set; }
        public ulong BytesFromStore { get; set; }
        public ulong BytesUploaded { get; set; }
        public uint VerificationFailuresCaused { get; set; }
        public long JoinedUnixMs { get; } = joinedUnixMs;
        public long CompletedUnixMs { get; set; }
    }

    private sealed class Flight(ulong id, Member downloader, int chunk, Peer? source, long startedMs)
    {
        public ulong Id { get; } = id;
        public Member Downloader { get; } = downloader;
        public int Chunk { get; } = chunk;
        public Peer? Source { get; } = source;   // null: the store
        public long StartedMs { get; } = startedMs;
    }
}

/// <summary>Typed errors the tracker puts on the wire: a status plus, where the caller must act, a kind trailer.</summary>
internal static class Errors
{
    public static RpcException InvalidArgument(string detail) => new(StatusCode.InvalidArgument, detail);

    public static RpcException Kind(StatusCode status, string kind, string detail) =>
        new(status, detail, new Dictionary<string, string> { [ErrorTrailers.Kind] = kind });
}
