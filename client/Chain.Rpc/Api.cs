// PUBLIC CONTRACT of the transport. Other projects code against exactly these signatures.
using Google.Protobuf;

namespace Chain.Rpc;

public enum MethodType { Unary, ClientStreaming, ServerStreaming, DuplexStreaming }

/// <summary>Standard gRPC status codes (same numbers as on the wire).</summary>
public enum StatusCode
{
    OK = 0, Cancelled = 1, Unknown = 2, InvalidArgument = 3, DeadlineExceeded = 4, NotFound = 5,
    AlreadyExists = 6, PermissionDenied = 7, ResourceExhausted = 8, FailedPrecondition = 9, Aborted = 10,
    OutOfRange = 11, Unimplemented = 12, Internal = 13, Unavailable = 14, DataLoss = 15, Unauthenticated = 16,
}

/// <summary>Describes one RPC method: path "/{ServiceName}/{Name}".</summary>
public sealed class Method<TRequest, TResponse>
    where TRequest : class, IMessage<TRequest>
    where TResponse : class, IMessage<TResponse>
{
    public Method(MethodType type, string serviceName, string name, MessageParser<TRequest> requestParser, MessageParser<TResponse> responseParser)
    {
        Type = type;
        ServiceName = serviceName;
        Name = name;
        RequestParser = requestParser;
        ResponseParser = responseParser;
        FullName = "/" + serviceName + "/" + name;
    }

    public MethodType Type { get; }
    public string ServiceName { get; }
    public string Name { get; }
    public string FullName { get; }
    public MessageParser<TRequest> RequestParser { get; }
    public MessageParser<TResponse> ResponseParser { get; }
}

/// <summary>
/// A call that ended with a non-OK status. Thrown by handlers on the server (the status and
/// <see cref="Trailers"/> go on the wire) and by the client channel (status, message and custom trailers
/// as received).
/// </summary>
public sealed class RpcException : Exception
{
    public RpcException(StatusCode status, string detail, IReadOnlyDictionary<string, string>? trailers = null)
        : base($"{status}: {detail}")
    {
        Status = status;
        Detail = detail;
        Trailers = trailers ?? new Dictionary<string, string>();
    }

    public StatusCode Status { get; }
    public string Detail { get; }

    /// <summary>Custom ASCII trailers (lower-case names, not starting with "grpc-").</summary>
    public IReadOnlyDictionary<string, string> Trailers { get; }
}

/// <summary>Per-call options on the client.</summary>
public sealed record CallOptions
{
    /// <summary>Relative deadline; sent as grpc-timeout and enforced locally. Null: none.</summary>
    public TimeSpan? Timeout { get; init; }
    public CancellationToken CancellationToken { get; init; }
    /// <summary>Extra ASCII request headers (lower-case names).</summary>
    public IReadOnlyDictionary<string, string>? Headers { get; init; }
}

/// <summary>Limits shared by client and server.</summary>
public sealed record RpcLimits
{
    /// <summary>Largest message (protobuf bytes, excluding the 5-byte prefix) accepted or sent.</summary>
    public int MaxMessageBytes { get; init; } = 8 * 1024 * 1024;
}

/// <summary>Writes messages of a stream. Writes are sequential (no concurrent WriteAsync).</summary>
public interface IStreamWriter<in T>
{
    ValueTask WriteAsync(T message, CancellationToken cancellationToken = default);
}

/// <summary>Client side of a request stream: CompleteAsync half-closes it.</summary>
public interface IClientStreamWriter<in T> : IStreamWriter<T>
{
    ValueTask CompleteAsync();
}
