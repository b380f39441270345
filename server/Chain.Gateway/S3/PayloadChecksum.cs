using System.Numerics;
using System.Security.Cryptography;

namespace Chain.Gateway.S3;

/// <summary>
/// One of S3's additional checksums (x-amz-checksum-crc32 / -crc32c / -crc64nvme / -sha1 / -sha256), computed
/// incrementally over an object's bytes; its value is the base64 of the big-endian digest, as S3 sends it.
/// </summary>
public abstract class PayloadChecksum : IDisposable
{
    public const string HeaderPrefix = "x-amz-checksum-";
    private static readonly uint[] Crc32Table = Crc<uint>.Table(0xEDB88320u);
    private static readonly uint[] Crc32CTable = Crc<uint>.Table(0x82F63B78u);
    private static readonly ulong[] Crc64NvmeTable = Crc<ulong>.Table(0x9A6C9329AC4BC9B5ul);

    /// <summary>The checksum named by a header such as "x-amz-checksum-crc32" (any case); null for an algorithm S3 does not define here.</summary>
    public static PayloadChecksum? ForHeader(string header) => header.Trim().ToLowerInvariant() switch
    {
        HeaderPrefix + "crc32" => new Crc<uint>(Crc32Table),
        HeaderPrefix + "crc32c" => new Crc<uint>(Crc32CTable),
        HeaderPrefix + "crc64nvme" => new Crc<ulong>(Crc64NvmeTable),
        HeaderPrefix + "sha1" => new Digest(HashAlgorithmName.SHA1),
        HeaderPrefix + "sha256" => new Digest(HashAlgorithmName.SHA256),
        _ => null,
    };

    public abstract void Append(ReadOnlySpan<byte> data);

    /// <summary>The base64 of the digest of everything appended.</summary>
    public abstract string Base64();

    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>
    /// A reflected CRC of 32 or 64 bits (init and final xor all ones) with a 256-entry table: CRC-32 (0xEDB88320),
    /// CRC-32C (0x82F63B78), CRC-64/NVME (0x9A6C9329AC4BC9B5, the reversed forms of the polynomials).
    /// </summary>
    private sealed class Crc<T>(T[] table) : PayloadChecksum where T : unmanaged, IBinaryInteger<T>, IUnsignedNumber<T>
    {
        private T _crc = ~T.Zero;

        public override void Append(ReadOnlySpan<byte> data)
        {
            T crc = _crc;
            foreach (byte b in data)
                crc = table[int.CreateTruncating(crc ^ T.CreateTruncating(b)) & 0xFF] ^ (crc >> 8);
            _crc = crc;
        }

        public override string Base64()
        {
            Span<byte> digest = stackalloc byte[_crc.GetByteCount()];
            (~_crc).WriteBigEndian(digest);
            return Convert.ToBase64String(digest);
        }

        public static T[] Table(T polynomial)
        {
            var table = new T[256];
            for (int i = 0; i < 256; i++)
            {
                T value = T.CreateTruncating(i);
                for (int bit = 0; bit < 8; bit++)
                    value = (value & T.One) != T.Zero ? (value >> 1) ^ polynomial : value >> 1;
                table[i] = value;
            }
            return table;
        }
    }

    private sealed class Digest(HashAlgorithmName algorithm) : PayloadChecksum
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(algorithm);

        public override void Append(ReadOnlySpan<byte> data) => _hash.AppendData(data);

        public override string Base64() => Convert.ToBase64String(_hash.GetCurrentHash());

        public override void Dispose()
        {
            _hash.Dispose();
            base.Dispose();
        }
    }
}
