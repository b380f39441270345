using Chain.Consistency;
using FsCheck;
using FsCheck.Fluent;

namespace Chain.Jepsen;

/// <summary>One planned operation: its kind and the key slot it goes to.</summary>
public readonly record struct OpPlan(OpKind Kind, int Slot);

/// <summary>
/// The endless, deterministic stream of planned operations of one client: drawn with FsCheck from the spec's
/// op mix and key weights, in chunks seeded by (spec seed, client, chunk number).
/// </summary>
public sealed class OpStream
{
    private const int ChunkSize = 256;

    private readonly Gen<OpPlan> _gen;
    private readonly long _seed;
    private readonly int _client;
    private OpPlan[] _chunk = Array.Empty<OpPlan>();
    private int _position;
    private int _chunkNumber;

    public OpStream(RunSpec spec, int client)
    {
        ArgumentNullException.ThrowIfNull(spec);
        _gen = PlanGen(spec);
        _seed = spec.Seed;
        _client = client;
    }

    public static Gen<OpPlan> PlanGen(RunSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var kinds = new List<(int, Gen<OpKind>)>();
        if (spec.Mix.Read > 0)
            kinds.Add((spec.Mix.Read, Gen.Constant(OpKind.Read)));
        if (spec.Mix.Write > 0)
            kinds.Add((spec.Mix.Write, Gen.Constant(OpKind.Write)));
        if (spec.Mix.Cas > 0)
            kinds.Add((spec.Mix.Cas, Gen.Constant(OpKind.Cas)));
        Gen<int> slot = Gen.Frequency(spec.KeyWeights.Select((w, i) => (w, Gen.Constant(i))).ToArray());
        return from kind in Gen.Frequency(kinds.ToArray())
               from s in slot
               select new OpPlan(kind, s);
    }

    public OpPlan Next()
    {
        if (_position == _chunk.Length)
        {
            _chunk = SpecGenerator.Sample(_gen, ChunkSeed(_seed, _client, _chunkNumber++), ChunkSize);
            _position = 0;
        }
        return _chunk[_position++];
    }

    /// <summary>A well-mixed seed per (seed, client, chunk) (SplitMix64 finalizer).</summary>
    internal static long ChunkSeed(long seed, int client, int chunk)
    {
        ulong z = unchecked((ulong)seed + 0x9E3779B97F4A7C15UL * (ulong)(client + 1) + 0xBF58476D1CE4E5B9UL * (ulong)(chunk + 1));
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return unchecked((long)(z ^ (z >> 31)));
    }
}
