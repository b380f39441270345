using Chain.Protocol.V1;

namespace Chain.Tracker.Tests;

/// <summary>What a simulated swarm is made of and what goes wrong in it.</summary>
internal sealed record SimSpec(
    int Peers,
    int Chunks,
    string[] Zones,
    uint[] Caps,
    int DownloadSlots,
    int MaxStoreFetches,
    int MaxTransferSteps,
    double SourceFailureRate,
    int[] Liars,
    int[] Dying,
    int Seed)
{
    public bool Failures => SourceFailureRate > 0 || Liars.Length > 0 || Dying.Length > 0;

    public override string ToString() =>
        $"peers={Peers} chunks={Chunks} zones=[{string.Join(",", Zones)}] caps=[{string.Join(",", Caps)}] slots={DownloadSlots} " +
        $"store={MaxStoreFetches} steps<={MaxTransferSteps} fail={SourceFailureRate:F2} liars=[{string.Join(",", Liars)}] " +
        $"dying=[{string.Join(",", Dying)}] seed={Seed}";
}

/// <summary>
/// A discrete-time swarm driven only by <see cref="TrackerState"/>: every step each live peer reports the outcomes
/// of its transfers that finished and asks for as many assignments as it has free download slots; a transfer takes
/// 1..MaxTransferSteps steps. Liars serve bad data (every transfer from them fails verification); dying peers stop
/// at a random step (their transfers as sources fail, their own vanish); other sources fail at random. Completed
/// peers stay as seeders (they keep exchanging with want 0). Invariants are checked after every exchange.
/// </summary>
internal sealed class SwarmSimulation
{
    public const int StepMs = 100;

    private readonly SimSpec _spec;
    private readonly ManualClock _clock = new();
    private readonly Random _random;
    private readonly Swarmer _swarmer;
    private readonly List<Transfer>[] _transfers;
    private readonly HashSet<int>[] _have;
    private readonly bool[] _dead;
    private readonly int[] _deathStep;
    private readonly HashSet<string> _reportedLiars = new(StringComparer.Ordinal);

    public SwarmSimulation(SimSpec spec)
    {
        _spec = spec;
        _random = new Random(spec.Seed);
        _swarmer = new Swarmer(spec.Chunks, "sim" + spec.Seed);
        Tracker = new TrackerState(new TrackerOptions
        {
            Seed = spec.Seed,
            Lease = TimeSpan.FromSeconds(1),
            MaxStoreFetchesPerSwarm = spec.MaxStoreFetches,
            SourceBackoff = TimeSpan.FromMilliseconds(300),
        }, _clock);
        _transfers = Enumerable.Range(0, spec.Peers).Select(_ => new List<Transfer>()).ToArray();
        _have = Enumerable.Range(0, spec.Peers).Select(_ => new HashSet<int>()).ToArray();
        _dead = new bool[spec.Peers];
        _deathStep = Enumerable.Range(0, spec.Peers).Select(p => spec.Dying.Contains(p) ? _random.Next(1, 20) : int.MaxValue).ToArray();
        for (int p = 0; p < spec.Peers; p++)
            Tracker.Announce(_swarmer.Announce(Info(p)));
    }

    public TrackerState Tracker { get; }
    public string SwarmId => _swarmer.SwarmId;
    public int Steps { get; private set; }

    /// <summary>Peers that are alive and have not got every chunk yet.</summary>
    public bool Done => Enumerable.Range(0, _spec.Peers).All(p => _dead[p] || _have[p].Count == _spec.Chunks);

    private string Id(int p) => $"p{p}";

    private PeerInfo Info(int p) => Swarmer.Peer(Id(p), _spec.Zones[p], _spec.Caps[p]);

    /// <summary>Runs until every live peer is complete or <paramref name="maxSteps"/>; returns the steps taken.</summary>
    public int Run(int maxSteps)
    {
        while (!Done && Steps < maxSteps)
            Step();
        return Steps;
    }

    public void Step()
    {
        Steps++;
        _clock.Advance(TimeSpan.FromMilliseconds(StepMs));
        for (int p = 0; p < _spec.Peers; p++)
        {
            if (!_dead[p] && Steps >= _deathStep[p])
            {
                _dead[p] = true;
                _transfers[p].Clear();
            }
        }
        // Transfers end together: every peer reports what finished (want 0), then every peer asks for its free slots,
        // as agents do (an outcome is sent when a transfer ends, not when the next question is due).
        foreach (int p in Enumerable.Range(0, _spec.Peers).OrderBy(_ => _random.Next()).ToList())
        {
            if (_dead[p])
                continue;
            var outcomes = new List<Outcome>();
            foreach (Transfer t in _transfers[p].Where(t => t.FinishStep <= Steps).ToList())
            {
                _transfers[p].Remove(t);
                outcomes.Add(Finish(p, t));
            }
            if (outcomes.Count > 0)
                Assert.Empty(Tracker.Exchange(_swarmer.Exchange(Id(p), 0, outcomes.ToArray())).Assignments);
        }
        foreach (int p in Enumerable.Range(0, _spec.Peers).OrderBy(_ => _random.Next()).ToList())
        {
            if (_dead[p])
                continue;
            int free = _spec.DownloadSlots - _transfers[p].Count;
            ExchangeResponse response = Tracker.Exchange(_swarmer.Exchange(Id(p), _have[p].Count == _spec.Chunks ? 0u : (uint)free));
            Assert.True(response.Assignments.Count <= free, $"{response.Assignments.Count} assignments for {free} free slots");
            foreach (Assignment a in response.Assignments)
            {
                string? source = a.Source.KindCase == ChunkSource.KindOneofCase.Peer ? a.Source.Peer.PeerId : null;
                Assert.False(source is not null && _reportedLiars.Contains(source), $"step {Steps}: avoided peer {source} named as a source");
                Assert.False(source == Id(p), "a peer was told to download from itself");
                Assert.DoesNotContain((int)a.Chunk, _have[p]);
                _transfers[p].Add(new Transfer(a, source is null ? -1 : int.Parse(source[1..]), Steps + _random.Next(1, _spec.MaxTransferSteps + 1)));
            }
            CheckUploadCaps();
        }
    }

    private Outcome Finish(int p, Transfer t)
    {
        int source = t.SourcePeer;
        Outcome.Types.Kind kind;
        if (source >= 0 && _dead[source])
            kind = Outcome.Types.Kind.SourceFailed;
        else if (source >= 0 && _spec.Liars.Contains(source))
            kind = Outcome.Types.Kind.VerificationFailed;
        else if (_random.NextDouble() < _spec.SourceFailureRate)
            kind = Outcome.Types.Kind.SourceFailed;
        else
            kind = Outcome.Types.Kind.Done;
        if (kind == Outcome.Types.Kind.Done)
            _have[p].Add((int)t.Assignment.Chunk);
        if (kind == Outcome.Types.Kind.VerificationFailed)
            _reportedLiars.Add(Id(source));
        return kind == Outcome.Types.Kind.Done ? Swarmer.Done(t.Assignment) : Swarmer.Failed(t.Assignment, kind);
    }

    /// <summary>No live peer uploads more chunks at once than its cap: by the tracker's count and by the transfers running.</summary>
    private void CheckUploadCaps()
    {
        var running = new int[_spec.Peers];
        for (int p = 0; p < _spec.Peers; p++)
        {
            foreach (Transfer t in _transfers[p].Where(t => t.SourcePeer >= 0 && !_dead[t.SourcePeer]))
                running[t.SourcePeer]++;
        }
        for (int p = 0; p < _spec.Peers; p++)
        {
            if (_dead[p])
                continue;
            int cap = Tracker.UploadCap(Id(p));
            Assert.True(Tracker.UploadsInFlight(Id(p)) <= cap, $"step {Steps}: tracker counts {Tracker.UploadsInFlight(Id(p))} uploads of p{p}, cap {cap}");
            Assert.True(running[p] <= cap, $"step {Steps}: p{p} runs {running[p]} uploads, cap {cap}");
        }
    }

    private sealed record Transfer(Assignment Assignment, int SourcePeer, int FinishStep);
}
