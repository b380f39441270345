using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Chain.Gateway.S3;

/// <summary>
/// Decodes an aws-chunked request body (Content-Encoding: aws-chunked, x-amz-content-sha256: STREAMING-*) while it is
/// read: <c>hex-size[;chunk-signature=SIG]\r\n DATA \r\n</c> … <c>0[;chunk-signature=SIG]\r\n [name:value\r\n]* \r\n</c>.
/// Constant memory: one read buffer, header and trailer lines of at most <see cref="LineBytesMax"/>, chunks announced
/// up to <see cref="ChunkBytesMax"/> pass through as they arrive. Each chunk's signature (chained from the seed
/// signature) is checked at the chunk's end, the trailing checksum and trailer signature and the decoded length
/// (x-amz-decoded-content-length) after the last chunk — all before end of stream is reported, so a reader that
/// commits only at end of stream stores nothing from a bad body. A failure throws an <see cref="S3Exception"/>
/// (kept in <see cref="Failure"/>): 403 SignatureDoesNotMatch, 400 BadDigest, IncompleteBody or InvalidRequest.
/// </summary>
public sealed class AwsChunkedStream : ForwardOnlyStream
{
    public const int ChunkBytesMax = 16 << 20;
    public const int LineBytesMax = 4096;
    private const int TrailerLinesMax = 16;
    private const string SignaturePrefix = "chunk-signature=";
    private const string TrailerSignatureName = "x-amz-trailer-signature";

    private readonly Stream _inner;
    private readonly StreamingUpload _mode;
    private readonly long _decodedLength;
    private readonly string? _trailerName;
    private readonly PayloadChecksum? _checksum;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly IncrementalHash _chunkHash;
    private int _start;
    private int _end;
    private string? _previousSignature;
    private string? _chunkSignature;
    private long _chunkRemaining;
    private bool _chunkOpen;
    private long _decoded;
    private bool _done;

    /// <param name="decodedLength">x-amz-decoded-content-length: the number of object bytes the body must decode to.</param>
    /// <param name="trailerHeader">x-amz-trailer: the checksum header sent after the last chunk (trailer modes); null or empty for none.</param>
    public AwsChunkedStream(Stream inner, StreamingUpload mode, long decodedLength, string? trailerHeader)
    {
        _inner = inner;
        _mode = mode;
        _decodedLength = decodedLength;
        _previousSignature = mode.Signing?.SeedSignature;
        if (mode.Trailer && !string.IsNullOrWhiteSpace(trailerHeader))
        {
            _trailerName = trailerHeader.Trim().ToLowerInvariant();
            _checksum = PayloadChecksum.ForHeader(_trailerName)
                ?? throw new S3Exception(400, "InvalidRequest",
                    $"x-amz-trailer '{trailerHeader}' is not a supported checksum (x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1, -sha256)");
        }
        _chunkHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    }

    public S3Exception? Failure { get; private set; }

    protected override long BytesReturned => _decoded;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Failure is not null)
            throw Failure;
        if (_done || buffer.Length == 0)
            return 0;
        try
        {
            while (true)
            {
                if (_chunkRemaining > 0)
                    return await ReadChunkDataAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (_chunkOpen)
                {
                    // The data's CRLF, then the chunk is whole: its signature is checked before anything after it is read.
                    if (await ReadLineAsync(cancellationToken).ConfigureAwait(false) is not "")
                        throw InvalidRequest("a chunk's data is not followed by CRLF");
                    CloseChunk();
                }
                long size = ParseChunkHeader(await ReadLineAsync(cancellationToken).ConfigureAwait(false));
                if (size > _decodedLength - _decoded)
                    throw InvalidRequest($"the chunks hold more than x-amz-decoded-content-length ({_decodedLength}) bytes");
                _chunkOpen = true;
                _chunkRemaining = size;
                if (size > 0)
                    continue;
                CloseChunk();
                await ReadTrailersAsync(cancellationToken).ConfigureAwait(false);
                if (_decoded != _decodedLength)
                    throw IncompleteBody($"the chunks hold {_decoded} bytes, x-amz-decoded-content-length says {_decodedLength}");
                if (_start != _end || await FillAsync(cancellationToken).ConfigureAwait(false) > 0)
                    throw InvalidRequest("bytes follow the aws-chunked body's end");
                _done = true;
                return 0;
            }
        }
        catch (S3Exception failure)
        {
            Failure = failure;
            throw;
        }
    }

    private async ValueTask<int> ReadChunkDataAsync(Memory<byte> buffer, CancellationToken ct)
    {
        if (_start == _end && await FillAsync(ct).ConfigureAwait(false) == 0)
            throw IncompleteBody("the body ends inside a chunk");
        int n = (int)Math.Min(Math.Min(buffer.Length, _end - _start), _chunkRemaining);
        ReadOnlySpan<byte> data = _buffer.AsSpan(_start, n);
        data.CopyTo(buffer.Span);
        _chunkHash.AppendData(data);
        _checksum?.Append(data);
        _start += n;
        _chunkRemaining -= n;
        _decoded += n;
        return n;
    }

    /// <summary>"hex-size;chunk-signature=SIG" (signed chunks) or "hex-size[;extensions]" (unsigned): the size; keeps the signature.</summary>
    private long ParseChunkHeader(string line)
    {
        int semicolon = line.IndexOf(';');
        string hex = semicolon < 0 ? line : line[..semicolon];
        if (hex.Length is 0 or > 8 || !long.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long size))
            throw InvalidRequest($"malformed chunk size '{Printable(hex)}'");
        if (size > ChunkBytesMax)
            throw InvalidRequest($"a chunk of {size} bytes is larger than the {ChunkBytesMax} bytes allowed");
        _chunkSignature = null;
        if (_mode.SignedChunks)
        {
            string extension = semicolon < 0 ? "" : line[(semicolon + 1)..];
            if (!extension.StartsWith(SignaturePrefix, StringComparison.Ordinal) || !S3Auth.IsSha256Hex(extension[SignaturePrefix.Length..]))
                throw S3Exception.SignatureDoesNotMatch("a chunk has no chunk-signature");
            _chunkSignature = extension[SignaturePrefix.Length..];
        }
        return size;
    }

    /// <summary>The chunk's data is all read: checks its signature and advances the chain.</summary>
    private void CloseChunk()
    {
        _chunkOpen = false;
        string dataHash = Convert.ToHexStringLower(_chunkHash.GetHashAndReset());
        if (_mode.Signing is not { } signing || _chunkSignature is null)
            return;
        string expected = SigV4.Signature(signing.SigningKey, SigV4.ChunkStringToSign(signing.AmzDate, signing.Scope, _previousSignature!, dataHash));
        if (!SigV4.SignaturesEqual(expected, _chunkSignature))
            throw S3Exception.SignatureDoesNotMatch("a chunk's signature does not match its data");
        _previousSignature = expected;
    }

    /// <summary>The lines after the last chunk up to the empty line: the checksum (checked) and, signed, the trailer signature (checked).</summary>
    private async ValueTask ReadTrailersAsync(CancellationToken ct)
    {
        var canonical = new StringBuilder();
        string? checksum = null;
        string? trailerSignature = null;
        for (int lines = 0; ; lines++)
        {
            string line = await ReadLineAsync(ct).ConfigureAwait(false);
            if (line.Length == 0)
                break;
            if (!_mode.Trailer)
                throw InvalidRequest("trailing headers in a body whose x-amz-content-sha256 announces none");
            if (lines == TrailerLinesMax)
                throw InvalidRequest($"more than {TrailerLinesMax} trailing headers");
            int colon = line.IndexOf(':');
            if (colon <= 0)
                throw InvalidRequest($"malformed trailing header '{Printable(line)}'");
            string name = line[..colon].Trim().ToLowerInvariant();
            string value = line[(colon + 1)..].Trim();
            if (name == TrailerSignatureName)
            {
                trailerSignature = value;
                continue;
            }
            if (name != _trailerName || checksum is not null)
                throw InvalidRequest($"the trailing header '{Printable(name)}' is not the one x-amz-trailer announced");
            checksum = value;
            canonical.Append(name).Append(':').Append(value).Append('\n');
        }
        if (_trailerName is not null && checksum is null)
            throw InvalidRequest($"the body ends without the trailing header {_trailerName} that x-amz-trailer announced");
        if (_mode.SignedChunks && _mode.Trailer && _mode.Signing is { } signing)
        {
            if (trailerSignature is null || !S3Auth.IsSha256Hex(trailerSignature))
                throw S3Exception.SignatureDoesNotMatch("the trailing headers have no x-amz-trailer-signature");
            string expected = SigV4.Signature(signing.SigningKey,
                SigV4.TrailerStringToSign(signing.AmzDate, signing.Scope, _previousSignature!, canonical.ToString()));
            if (!SigV4.SignaturesEqual(expected, trailerSignature))
                throw S3Exception.SignatureDoesNotMatch("the trailer signature does not match the trailing headers");
        }
        if (_checksum is not null && _checksum.Base64() != checksum)
            throw new S3Exception(400, "BadDigest", $"The {_trailerName![PayloadChecksum.HeaderPrefix.Length..].ToUpperInvariant()} you specified did not match the calculated checksum.");
    }

    /// <summary>One CRLF-terminated line (without it) of at most <see cref="LineBytesMax"/> bytes.</summary>
    private async ValueTask<string> ReadLineAsync(CancellationToken ct)
    {
        int scanned = 0;
        while (true)
        {
            int newline = _buffer.AsSpan(_start + scanned, _end - _start - scanned).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                int length = scanned + newline;
                if (length > LineBytesMax)
                    throw InvalidRequest($"a line of the aws-chunked body is longer than {LineBytesMax} bytes");
                if (length == 0 || _buffer[_start + length - 1] != '\r')
                    throw InvalidRequest("a line of the aws-chunked body does not end in CRLF");
                string line = Encoding.ASCII.GetString(_buffer, _start, length - 1);
                _start += length + 1;
                return line;
            }
            scanned = _end - _start;
            if (scanned >= LineBytesMax)
                throw InvalidRequest($"a line of the aws-chunked body is longer than {LineBytesMax} bytes");
            if (await FillAsync(ct).ConfigureAwait(false) == 0)
                throw IncompleteBody("the body ends inside the aws-chunked framing");
        }
    }

    /// <summary>Reads more of the inner stream behind the unread bytes (moved to the front when the buffer is full); 0 at its end.</summary>
    private async ValueTask<int> FillAsync(CancellationToken ct)
    {
        if (_end == _buffer.Length)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        int n = await _inner.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false);
        _end += n;
        return n;
    }

    private static string Printable(string text) => text.Length > 64 ? text[..64] + "…" : text;

    private static S3Exception InvalidRequest(string detail) => new(400, "InvalidRequest", "Malformed aws-chunked body: " + detail);

    private static S3Exception IncompleteBody(string detail) =>
        new(400, "IncompleteBody", "You did not provide the number of bytes specified by the x-amz-decoded-content-length header: " + detail);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _chunkHash.Dispose();
            _checksum?.Dispose();
        }
        base.Dispose(disposing);
    }
}
