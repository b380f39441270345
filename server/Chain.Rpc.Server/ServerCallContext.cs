namespace Chain.Rpc.Server;

/// <summary>Per-call information handed to a handler.</summary>
public sealed class ServerCallContext
{
    private readonly Dictionary<string, string> _headers;

    internal ServerCallContext(string method, CancellationToken cancellationToken, DateTimeOffset? deadline, string peer, Dictionary<string, string> headers)
    {
        Method = method;
        CancellationToken = cancellationToken;
        Deadline = deadline;
        Peer = peer;
        _headers = headers;
    }

    /// <summary>Fires when the client cancels or disconnects, when the deadline passes, when the server aborts the call, and once the call has ended.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>Absolute deadline from the client's grpc-timeout; null when the client set none.</summary>
    public DateTimeOffset? Deadline { get; }

    /// <summary>The client's address, e.g. "ipv4:127.0.0.1:50312" or "ipv6:[::1]:50312".</summary>
    public string Peer { get; }

    /// <summary>"/{service}/{method}" of this call.</summary>
    internal string Method { get; }

    /// <summary>A request header (case-insensitive name); several values are joined with ", ". Null when absent.</summary>
    public string? GetHeader(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _headers.TryGetValue(name, out var value) ? value : null;
    }
}
