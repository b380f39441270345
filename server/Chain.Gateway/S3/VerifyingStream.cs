using System.Security.Cryptography;

namespace Chain.Gateway.S3;

/// <summary>
/// A request body read once, front to back: counts bytes against a limit, computes MD5 (the ETag) and, when the
/// request signed one, SHA-256. Only at the end — before reporting end of stream to the reader — does it compare
/// them with the expected digests; a mismatch throws instead, so a reader that commits only after end of stream
/// (the client library's put) writes nothing. The first failure is kept in <see cref="Failure"/>.
/// </summary>
public sealed class VerifyingStream : ForwardOnlyStream
{
    private readonly Stream _inner;
    private readonly long _maxBytes;
    private readonly byte[]? _expectedMd5;
    private readonly string? _expectedSha256Hex;
    private readonly IncrementalHash _md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
    private readonly IncrementalHash? _sha256;
    private readonly Action<string>? _onVerified;
    private readonly bool _disposeInner;
    private long _read;

    /// <param name="onVerified">Called with the hex MD5 once the whole body passed every check (before end of stream is reported).</param>
    /// <param name="disposeInner">Whether disposing this stream disposes <paramref name="inner"/> (a decoding stream made for it).</param>
    public VerifyingStream(Stream inner, long maxBytes, byte[]? expectedMd5, string? expectedSha256Hex, Action<string>? onVerified = null,
        bool disposeInner = false)
    {
        _disposeInner = disposeInner;
        _inner = inner;
        _maxBytes = maxBytes;
        _expectedMd5 = expectedMd5;
        _expectedSha256Hex = expectedSha256Hex;
        _sha256 = expectedSha256Hex is null ? null : IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        _onVerified = onVerified;
    }

    public S3Exception? Failure { get; private set; }
    public string? Md5Hex { get; private set; }
    public long BytesRead => _read;

    protected override long BytesReturned => _read;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Failure is not null)
            throw Failure;
        if (Md5Hex is not null)
            return 0;
        int n;
        try
        {
            n = await _inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (S3Exception failure)
        {
            throw Fail(failure); // a decoding inner stream's verdict (aws-chunked) is this body's
        }
        if (n > 0)
        {
            _read += n;
            if (_read > _maxBytes)
                throw Fail(new S3Exception(400, "EntityTooLarge", $"Your proposed upload exceeds the maximum allowed object size of {_maxBytes} bytes."));
            _md5.AppendData(buffer.Span[..n]);
            _sha256?.AppendData(buffer.Span[..n]);
            return n;
        }
        byte[] md5 = _md5.GetHashAndReset();
        if (_expectedMd5 is not null && !md5.AsSpan().SequenceEqual(_expectedMd5))
            throw Fail(new S3Exception(400, "BadDigest", "The Content-MD5 you specified did not match what we received."));
        if (_sha256 is not null && Convert.ToHexStringLower(_sha256.GetHashAndReset()) != _expectedSha256Hex)
            throw Fail(new S3Exception(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."));
        Md5Hex = Convert.ToHexStringLower(md5);
        _onVerified?.Invoke(Md5Hex);
        return 0;
    }

    /// <summary>Reads the whole (small) body into memory, verified; for XML request bodies.</summary>
    public async Task<byte[]> ReadAllAsync(CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        await CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        return buffer.ToArray();
    }

    private S3Exception Fail(S3Exception failure)
    {
        Failure = failure;
        return failure;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _md5.Dispose();
            _sha256?.Dispose();
            if (_disposeInner)
                _inner.Dispose();
        }
        base.Dispose(disposing);
    }
}
