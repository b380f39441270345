using Chain.Protocol;
using Chain.Rpc;

namespace Chain.Node;

/// <summary>Typed errors a node puts on the wire: a status plus a machine-readable kind trailer.</summary>
internal static class NodeErrors
{
    public static RpcException Kind(StatusCode status, string kind, string detail, ulong? epoch = null)
    {
        var trailers = new Dictionary<string, string> { [ErrorTrailers.Kind] = kind };
        if (epoch is not null)
            trailers[ErrorTrailers.Epoch] = epoch.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new RpcException(status, detail, trailers);
    }

    public static RpcException StaleEpoch(uint chainId, ulong sent, ulong current) =>
        Kind(StatusCode.FailedPrecondition, ErrorKinds.StaleEpoch,
            $"stale epoch for chain {chainId}: request has {sent}, node runs {current}; refresh the chain table", current);

    public static RpcException NotReady(string detail) => Kind(StatusCode.Unavailable, ErrorKinds.NotReady, detail);

    public static RpcException InvalidKey(string detail) => Kind(StatusCode.InvalidArgument, ErrorKinds.InvalidKey, detail);

    public static RpcException BadDigest(string detail) => Kind(StatusCode.InvalidArgument, ErrorKinds.BadDigest, detail);

    public static RpcException TooLarge(string detail) => Kind(StatusCode.InvalidArgument, ErrorKinds.TooLarge, detail);

    public static RpcException NoSuchBucket(string bucket) =>
        Kind(StatusCode.NotFound, ErrorKinds.NoSuchBucket, $"bucket '{bucket}' does not exist");

    public static RpcException NoSuchKey(string bucket, string key) =>
        Kind(StatusCode.NotFound, ErrorKinds.NoSuchKey, $"object '{bucket}/{key}' not found");

    public static RpcException PreconditionFailed(string detail) =>
        Kind(StatusCode.FailedPrecondition, ErrorKinds.PreconditionFailed, detail);

    public static RpcException Invalid(string detail) => new(StatusCode.InvalidArgument, detail);
}
