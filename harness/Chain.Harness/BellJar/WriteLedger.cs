using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Chain.Client;

namespace Chain.Harness.BellJar;

/// <summary>
/// The acknowledged writes of a drill: every key is written once, with content derived from the key (so nothing is
/// kept in memory but the key and its size); a write whose outcome is unknown (error, timeout) is not in the ledger.
/// <see cref="VerifyAsync"/> reads every entry back and compares it byte for byte.
/// </summary>
public sealed class WriteLedger
{
    /// <summary>The bucket every drill writes into.</summary>
    public const string Bucket = "drill";

    private readonly ConcurrentDictionary<string, int> _acknowledged = new(StringComparer.Ordinal);
    private readonly string _salt;
    private int _next;

    public WriteLedger(long seed) => _salt = seed.ToString(CultureInfo.InvariantCulture);

    public int Count => _acknowledged.Count;

    /// <summary>Acknowledged objects larger than <see cref="ChunkedBytes"/>'s chunk (distributed over the chains).</summary>
    public int ChunkedCount => _acknowledged.Values.Count(size => size > SmallBytesMax);

    /// <summary>Small objects are 1..4 KiB; chunked ones are 600 KiB (three 256 KiB chunks with <see cref="ChunkBytes"/>).</summary>
    public const int SmallBytesMax = 4096;

    /// <summary>Size of a chunked object of a drill.</summary>
    public const int ChunkedBytes = 600 * 1024;

    /// <summary>The client chunk size the drills use, so that <see cref="ChunkedBytes"/> makes a distributed object.</summary>
    public const int ChunkBytes = 256 * 1024;

    /// <summary>A fresh key (prefix + sequence number).</summary>
    public string NextKey(string prefix) => $"{prefix}-{Interlocked.Increment(ref _next).ToString("D6", CultureInfo.InvariantCulture)}";

    /// <summary>The content of <paramref name="key"/> with <paramref name="size"/> bytes: SHA-256 in counter mode over seed and key.</summary>
    public byte[] Content(string key, int size)
    {
        var data = new byte[size];
        byte[] block = new byte[32];
        byte[] prefix = Encoding.UTF8.GetBytes(_salt + "/" + key + "/");
        var input = new byte[prefix.Length + 8];
        prefix.CopyTo(input, 0);
        for (int offset = 0, counter = 0; offset < size; offset += 32, counter++)
        {
            BitConverter.TryWriteBytes(input.AsSpan(prefix.Length), (long)counter);
            SHA256.HashData(input, block);
            block.AsSpan(0, Math.Min(32, size - offset)).CopyTo(data.AsSpan(offset));
        }
        return data;
    }

    /// <summary>Writes <paramref name="key"/> (size from the key's hash when small) and records it once acknowledged; false when the write failed.</summary>
    public async Task<bool> WriteAsync(ChainClient client, string key, bool chunked, CancellationToken ct)
    {
        int size = chunked ? ChunkedBytes : 1024 + (int)(SHA256.HashData(Encoding.UTF8.GetBytes(key))[0] * 12);
        try
        {
            await client.PutAsync(Bucket, key, Content(key, size), null, ct).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException)
        {
            throw new DrillFailure($"read of acknowledged '{Bucket}/{key}' found no object");
        }
        catch (Exception e) when (e is ChainException or TimeoutException or OperationCanceledException or IOException or System.Net.Http.HttpRequestException
                                   && !ct.IsCancellationRequested)
        {
            return false;
        }
        _acknowledged[key] = size;
        return true;
    }

    /// <summary>
    /// Reads an acknowledged key back and compares it: true when equal, false when the read failed (unavailable,
    /// timed out); a missing object or other content throws <see cref="DrillFailure"/> (an acknowledged write lost).
    /// </summary>
    public async Task<bool> ReadBackAsync(ChainClient client, string key, CancellationToken ct)
    {
        if (!_acknowledged.TryGetValue(key, out int size))
            return false;
        try
        {
            byte[] data = await client.GetBytesAsync(Bucket, key, ct).ConfigureAwait(false);
            // Keys are written once: any other content is a consistency violation, not an unavailable read.
            if (!data.AsSpan().SequenceEqual(Content(key, size)))
                throw new DrillFailure($"read of acknowledged '{Bucket}/{key}' returned {data.Length} bytes that differ from the {size} bytes written");
            return true;
        }
        catch (Exception e) when (e is ChainException or TimeoutException or OperationCanceledException or IOException or System.Net.Http.HttpRequestException
                                   && !ct.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>A random acknowledged key, or null when there is none yet.</summary>
    public string? AnyKey(Random random)
    {
        string[] keys = _acknowledged.Keys.ToArray();
        return keys.Length == 0 ? null : keys[random.Next(keys.Length)];
    }

    /// <summary>
    /// Reads every acknowledged write back (4 at a time) and compares it byte for byte. Each read gets the client's
    /// retries; problems: missing objects and differing contents, by key (at most 20 listed).
    /// </summary>
    public Task<LedgerCheck> VerifyAsync(ChainClient client, CancellationToken ct) => VerifyAsync(client, Acknowledged(), ct);

    /// <summary>The acknowledged writes as of now (key → size): e.g. those acknowledged before a backup began.</summary>
    public IReadOnlyList<KeyValuePair<string, int>> Acknowledged() => _acknowledged.ToArray();

    /// <summary>As <see cref="VerifyAsync(ChainClient, CancellationToken)"/>, for the given acknowledged writes only.</summary>
    public async Task<LedgerCheck> VerifyAsync(ChainClient client, IReadOnlyList<KeyValuePair<string, int>> entries, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(entries);
        var problems = new ConcurrentBag<string>();
        int verified = 0;
        await Parallel.ForEachAsync(entries, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (entry, token) =>
        {
            try
            {
                byte[] data = await client.GetBytesAsync(Bucket, entry.Key, token).ConfigureAwait(false);
                if (data.AsSpan().SequenceEqual(Content(entry.Key, entry.Value)))
                    Interlocked.Increment(ref verified);
                else
                    problems.Add($"{entry.Key}: {data.Length} bytes differ from the {entry.Value} acknowledged");
            }
            catch (ObjectNotFoundException)
            {
                problems.Add($"{entry.Key}: acknowledged ({entry.Value} bytes) but missing");
            }
            catch (Exception e) when (e is ChainException or TimeoutException or IOException or System.Net.Http.HttpRequestException)
            {
                problems.Add($"{entry.Key}: cannot be read: {e.GetType().Name}: {e.Message}");
            }
        }).ConfigureAwait(false);
        return new LedgerCheck(entries.Count, verified, entries.Count(e => e.Value > SmallBytesMax), problems.Order(StringComparer.Ordinal).Take(20).ToList(), problems.Count);
    }
}

/// <summary>The data check: <paramref name="Verified"/> of <paramref name="Acknowledged"/> writes read back identical.</summary>
public sealed record LedgerCheck(int Acknowledged, int Verified, int Chunked, IReadOnlyList<string> Problems, int ProblemCount)
{
    public bool Ok => Acknowledged > 0 && Verified == Acknowledged && ProblemCount == 0;

    public override string ToString() => Ok
        ? $"{Verified}/{Acknowledged} acknowledged writes identical ({Chunked} chunked)"
        : Acknowledged == 0
            ? "no acknowledged write to check"
            : $"{Verified}/{Acknowledged} identical; {ProblemCount} problem(s): {string.Join("; ", Problems)}";
}
