// gRPC-over-HTTP/2 wire helpers shared by the client channel and the server (see PROTOCOL-HTTP2):
// length-prefixed message framing, grpc-message percent-encoding, grpc-timeout encoding and the
// mapping of HTTP-level failures to status codes.
using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Google.Protobuf;

namespace Chain.Rpc;

internal static class GrpcWire
{
    /// <summary>Compressed-Flag (1 byte) + Message-Length (4 bytes, big-endian).</summary>
    public const int PrefixSize = 5;

    public const string ContentType = "application/grpc";

    /// <summary>Longest grpc-message detail (in characters) put on the wire; longer ones are cut.</summary>
    public const int MaxDetailChars = 2048;

    /// <summary>True for "application/grpc" and "application/grpc+proto" (parameters after ';' ignored).</summary>
    public static bool IsGrpcContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return false;
        }
        var semicolon = contentType.IndexOf(';');
        var media = (semicolon >= 0 ? contentType[..semicolon] : contentType).Trim();
        return media.Equals("application/grpc", StringComparison.OrdinalIgnoreCase)
            || media.Equals("application/grpc+proto", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Size check before anything is sent: a message larger than the limit is never written.</summary>
    public static int CheckedSize(IMessage message, int maxMessageBytes)
    {
        var size = message.CalculateSize();
        if (size > maxMessageBytes)
        {
            throw new RpcException(StatusCode.ResourceExhausted,
                $"outgoing message of {size} bytes exceeds the limit of {maxMessageBytes} bytes");
        }
        return size;
    }

    public static void WritePrefix(Span<byte> destination, int length)
    {
        destination[0] = 0; // not compressed
        BinaryPrimitives.WriteUInt32BigEndian(destination[1..], (uint)length);
    }

    /// <summary>
    /// Buffers up to this size come from <see cref="ArrayPool{T}.Shared"/>; larger ones (chunk-carrying messages) are
    /// allocated at their exact size and left to the collector. The shared pool would round a 4 MiB message up to an
    /// 8 MiB array and keep dozens of them per core and thread for good: hundreds of MiB held by a process that moves
    /// large objects, whatever it is doing now.
    /// </summary>
    public const int PooledBufferBytesMax = 1024 * 1024;

    /// <summary>A buffer of at least <paramref name="size"/> bytes; give it back with <see cref="ReturnBuffer"/>.</summary>
    public static byte[] RentBuffer(int size) =>
        size <= PooledBufferBytesMax ? ArrayPool<byte>.Shared.Rent(size) : GC.AllocateUninitializedArray<byte>(size);

    public static void ReturnBuffer(byte[] buffer)
    {
        if (buffer.Length <= PooledBufferBytesMax)
            ArrayPool<byte>.Shared.Return(buffer);
    }

    /// <summary>Frames one message into a buffer from <see cref="RentBuffer"/>; the caller returns it with <see cref="ReturnBuffer"/>.</summary>
    public static byte[] RentFramed(IMessage message, int maxMessageBytes, out int frameLength)
    {
        var size = CheckedSize(message, maxMessageBytes);
        frameLength = PrefixSize + size;
        var buffer = RentBuffer(frameLength);
        WritePrefix(buffer, size);
        message.WriteTo(buffer.AsSpan(PrefixSize, size));
        return buffer;
    }

    /// <summary>Frames one message into an exactly sized array.</summary>
    public static byte[] Framed(IMessage message, int maxMessageBytes)
    {
        var size = CheckedSize(message, maxMessageBytes);
        var buffer = new byte[PrefixSize + size];
        WritePrefix(buffer, size);
        message.WriteTo(buffer.AsSpan(PrefixSize));
        return buffer;
    }

    /// <summary>
    /// Reads one length-prefixed message. Returns null at a clean end of stream (before a prefix).
    /// The length is checked against the limit before the payload is buffered.
    /// Errors are <see cref="RpcException"/>s: a truncated frame is Internal, an oversized one ResourceExhausted,
    /// a set compressed flag <paramref name="compressedStatus"/>, an unparseable payload <paramref name="parseFailureStatus"/>.
    /// </summary>
    public static async ValueTask<T?> ReadMessageAsync<T>(
        Stream stream,
        MessageParser<T> parser,
        int maxMessageBytes,
        byte[] prefixBuffer,
        StatusCode parseFailureStatus,
        StatusCode compressedStatus,
        CancellationToken cancellationToken)
        where T : class, IMessage<T>
    {
        var got = await stream.ReadAtLeastAsync(prefixBuffer.AsMemory(0, PrefixSize), PrefixSize, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (got == 0)
        {
            return null;
        }
        if (got < PrefixSize)
        {
            throw new RpcException(StatusCode.Internal,
                $"truncated gRPC frame: the stream ended after {got} of the {PrefixSize} prefix bytes");
        }

        var flag = prefixBuffer[0];
        var length = BinaryPrimitives.ReadUInt32BigEndian(prefixBuffer.AsSpan(1, 4));
        if (flag == 1)
        {
            throw new RpcException(compressedStatus, "compressed gRPC messages are not supported (compression not supported)");
        }
        if (flag != 0)
        {
            throw new RpcException(StatusCode.Internal, $"invalid gRPC frame: compressed flag is {flag}, expected 0 or 1");
        }
        if (length > (uint)maxMessageBytes)
        {
            throw new RpcException(StatusCode.ResourceExhausted,
                $"incoming message of {length} bytes exceeds the limit of {maxMessageBytes} bytes");
        }

        var size = (int)length;
        if (size == 0)
        {
            return Parse(parser, ReadOnlySpan<byte>.Empty, parseFailureStatus);
        }
        var buffer = RentBuffer(size);
        try
        {
            var read = await stream.ReadAtLeastAsync(buffer.AsMemory(0, size), size, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            if (read < size)
            {
                throw new RpcException(StatusCode.Internal,
                    $"truncated gRPC frame: the stream ended after {read} of the {size} message bytes");
            }
            return Parse(parser, buffer.AsSpan(0, size), parseFailureStatus);
        }
        finally
        {
            ReturnBuffer(buffer);
        }
    }

    private static T Parse<T>(MessageParser<T> parser, ReadOnlySpan<byte> data, StatusCode failureStatus)
        where T : class, IMessage<T>
    {
        try
        {
            return parser.ParseFrom(data);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new RpcException(failureStatus, $"failed to parse {typeof(T).Name} ({data.Length} bytes): {ex.Message}");
        }
    }

    // ---- grpc-message percent-encoding ----

    /// <summary>UTF-8, then every byte outside 0x20..0x7E and '%' itself as %XX.</summary>
    public static string PercentEncode(string value)
    {
        var needs = false;
        foreach (var c in value)
        {
            if (c < 0x20 || c > 0x7E || c == '%')
            {
                needs = true;
                break;
            }
        }
        if (!needs)
        {
            return value;
        }
        var bytes = Encoding.UTF8.GetBytes(value);
        var sb = new StringBuilder(bytes.Length * 2);
        foreach (var b in bytes)
        {
            if (b < 0x20 || b > 0x7E || b == (byte)'%')
            {
                sb.Append('%').Append(HexDigit(b >> 4)).Append(HexDigit(b & 0xF));
            }
            else
            {
                sb.Append((char)b);
            }
        }
        return sb.ToString();

        static char HexDigit(int v) => (char)(v < 10 ? '0' + v : 'A' + v - 10);
    }

    /// <summary>Decodes %XX sequences as UTF-8; malformed escapes are kept as they are, invalid UTF-8 becomes U+FFFD.</summary>
    public static string PercentDecode(string value)
    {
        if (value.IndexOf('%') < 0)
        {
            return value;
        }
        var bytes = new List<byte>(value.Length);
        Span<byte> scratch = stackalloc byte[4];
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '%' && i + 2 < value.Length && IsHex(value[i + 1]) && IsHex(value[i + 2]))
            {
                bytes.Add((byte)((HexValue(value[i + 1]) << 4) | HexValue(value[i + 2])));
                i += 2;
            }
            else if (c < 0x80)
            {
                bytes.Add((byte)c);
            }
            else
            {
                var n = new Rune(char.IsSurrogate(c) ? '\uFFFD' : c).EncodeToUtf8(scratch);
                for (var k = 0; k < n; k++)
                {
                    bytes.Add(scratch[k]);
                }
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());

        static bool IsHex(char c) => char.IsAsciiHexDigit(c);
        static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    }

    /// <summary>Cuts an over-long status detail so that it fits comfortably into a header block.</summary>
    public static string TrimDetail(string detail) =>
        detail.Length <= MaxDetailChars ? detail : string.Concat(detail.AsSpan(0, MaxDetailChars), "…");

    // ---- grpc-timeout ----

    private const long TicksPerMicrosecond = 10;
    private const long MaxTimeoutValue = 99_999_999; // at most 8 digits

    /// <summary>Encodes a relative timeout, rounded up, in the finest unit whose value fits into 8 digits.</summary>
    public static string EncodeTimeout(TimeSpan timeout)
    {
        var ticks = timeout.Ticks;
        if (ticks <= 0)
        {
            return "1n";
        }
        if (ticks < TimeSpan.TicksPerMillisecond)
        {
            return CeilDiv(ticks, TicksPerMicrosecond).ToString(CultureInfo.InvariantCulture) + "u";
        }
        var ms = CeilDiv(ticks, TimeSpan.TicksPerMillisecond);
        if (ms <= MaxTimeoutValue)
        {
            return ms.ToString(CultureInfo.InvariantCulture) + "m";
        }
        var s = CeilDiv(ticks, TimeSpan.TicksPerSecond);
        if (s <= MaxTimeoutValue)
        {
            return s.ToString(CultureInfo.InvariantCulture) + "S";
        }
        var m = CeilDiv(ticks, TimeSpan.TicksPerMinute);
        if (m <= MaxTimeoutValue)
        {
            return m.ToString(CultureInfo.InvariantCulture) + "M";
        }
        return Math.Min(CeilDiv(ticks, TimeSpan.TicksPerHour), MaxTimeoutValue).ToString(CultureInfo.InvariantCulture) + "H";

        static long CeilDiv(long a, long b) => a / b + (a % b == 0 ? 0 : 1);
    }

    /// <summary>Parses "TimeoutValue TimeoutUnit" (1..8 digits, unit H M S m u n).</summary>
    public static bool TryParseTimeout(string? value, out TimeSpan timeout)
    {
        timeout = default;
        if (string.IsNullOrEmpty(value) || value.Length < 2 || value.Length > 9)
        {
            return false;
        }
        long amount = 0;
        for (var i = 0; i < value.Length - 1; i++)
        {
            var c = value[i];
            if (c < '0' || c > '9')
            {
                return false;
            }
            amount = amount * 10 + (c - '0');
        }
        long ticks;
        switch (value[^1])
        {
            case 'H': ticks = amount * TimeSpan.TicksPerHour; break;
            case 'M': ticks = amount * TimeSpan.TicksPerMinute; break;
            case 'S': ticks = amount * TimeSpan.TicksPerSecond; break;
            case 'm': ticks = amount * TimeSpan.TicksPerMillisecond; break;
            case 'u': ticks = amount * TicksPerMicrosecond; break;
            case 'n': ticks = (amount + 99) / 100; break; // round up to whole ticks
            default: return false;
        }
        timeout = TimeSpan.FromTicks(ticks);
        return true;
    }

    // ---- status mapping ----

    /// <summary>HTTP status → gRPC status, for responses without grpc-status (http-grpc-status-mapping).</summary>
    public static StatusCode FromHttpStatus(int httpStatus) => httpStatus switch
    {
        400 => StatusCode.Internal,
        401 => StatusCode.Unauthenticated,
        403 => StatusCode.PermissionDenied,
        404 => StatusCode.Unimplemented,
        429 or 502 or 503 or 504 => StatusCode.Unavailable,
        _ => StatusCode.Unknown,
    };

    /// <summary>HTTP/2 RST_STREAM / GOAWAY error code → gRPC status (PROTOCOL-HTTP2, "Errors").</summary>
    public static StatusCode FromHttp2ErrorCode(long errorCode) => errorCode switch
    {
        0x7 => StatusCode.Unavailable,        // REFUSED_STREAM
        0x8 => StatusCode.Cancelled,          // CANCEL
        0xb => StatusCode.ResourceExhausted,  // ENHANCE_YOUR_CALM
        0xc => StatusCode.PermissionDenied,   // INADEQUATE_SECURITY
        _ => StatusCode.Internal,             // NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, ...
    };

    /// <summary>
    /// True for headers that are transport- or HTTP-level rather than custom metadata
    /// (reserved "grpc-" names, pseudo-headers, and the usual HTTP entity/connection headers).
    /// </summary>
    public static bool IsReservedHeader(string name)
    {
        if (name.Length == 0 || name[0] == ':' || name.StartsWith("grpc-", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        switch (name.ToLowerInvariant())
        {
            case "content-type":
            case "content-length":
            case "content-encoding":
            case "te":
            case "trailer":
            case "transfer-encoding":
            case "connection":
            case "keep-alive":
            case "upgrade":
            case "host":
            case "user-agent":
            case "date":
            case "server":
            case "via":
            case "alt-svc":
                return true;
            default:
                return false;
        }
    }

    /// <summary>Custom metadata names: lower-case token characters; values: printable ASCII.</summary>
    public static bool IsValidCustomMetadata(string name, string value)
    {
        if (string.IsNullOrEmpty(name) || IsReservedHeader(name))
        {
            return false;
        }
        foreach (var c in name)
        {
            if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_' or '.'))
            {
                return false;
            }
        }
        foreach (var c in value)
        {
            if (c < 0x20 || c > 0x7E)
            {
                return false;
            }
        }
        return true;
    }
}
