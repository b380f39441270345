using System.Security.Cryptography;
using Chain.Protocol.V1;
using Google.Protobuf;

namespace Chain.Tracker.Tests;

/// <summary>A manual clock: time moves only when a test says so.</summary>
internal sealed class ManualClock : TimeProvider
{
    private DateTimeOffset _wall = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private long _ticks;
    public override DateTimeOffset GetUtcNow() => _wall;
    public override long GetTimestamp() => _ticks;
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public void Advance(TimeSpan by)
    {
        _wall += by;
        _ticks += by.Ticks;
    }
}

/// <summary>Builders for tracker requests over one synthetic object of equal-sized chunks.</summary>
internal sealed class Swarmer
{
    public const uint ChunkBytes = 1000;

    public Swarmer(int chunks, string seed = "object")
    {
        byte[] id = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(seed + "/" + chunks));
        SwarmId = Convert.ToHexStringLower(id);
        Chunks = Enumerable.Range(0, chunks).Select(i => new SwarmChunk
        {
            Sha256 = ByteString.CopyFrom(SHA256.HashData(BitConverter.GetBytes(i * 7919 + seed.Length))),
            Size = ChunkBytes,
            ChainId = (uint)(i % 5),
        }).ToArray();
    }

    public string SwarmId { get; }
    public SwarmChunk[] Chunks { get; }

    public static PeerInfo Peer(string id, string zone = "", uint maxUploads = 4, ulong bandwidth = 0) => new()
    {
        PeerId = id,
        Address = $"http://127.0.0.1:{20000 + Math.Abs(id.GetHashCode() % 10000)}",
        Zone = zone,
        MaxUploads = maxUploads,
        UploadBytesPerSecond = bandwidth,
    };

    public AnnounceRequest Announce(PeerInfo peer, IEnumerable<int>? have = null, bool wants = true)
    {
        var request = new AnnounceRequest
        {
            Peer = peer,
            SwarmId = SwarmId,
            ObjectSize = (ulong)Chunks.Length * ChunkBytes,
            Wants = wants,
            ObjectName = "b/k",
        };
        request.Chunks.AddRange(Chunks);
        request.Have.AddRange((have ?? Enumerable.Empty<int>()).Select(i => (uint)i));
        return request;
    }

    public AnnounceRequest Seeder(PeerInfo peer) => Announce(peer, Enumerable.Range(0, Chunks.Length), wants: false);

    public ExchangeRequest Exchange(string peerId, uint want, params Outcome[] outcomes)
    {
        var request = new ExchangeRequest { PeerId = peerId, SwarmId = SwarmId, Want = want };
        request.Outcomes.AddRange(outcomes);
        return request;
    }

    public static Outcome Done(Assignment a) =>
        new() { AssignmentId = a.AssignmentId, Chunk = a.Chunk, Kind = Outcome.Types.Kind.Done, Bytes = ChunkBytes, Millis = 10 };

    public static Outcome Failed(Assignment a, Outcome.Types.Kind kind) =>
        new() { AssignmentId = a.AssignmentId, Chunk = a.Chunk, Kind = kind };
}
