using Chain.Protocol;
using Chain.Rpc;

namespace Chain.Client.Internal;

internal enum FailureAction
{
    /// <summary>Not retryable: throw <see cref="Decision.Error"/>.</summary>
    Fail,
    /// <summary>Transient: retry after a backoff.</summary>
    Retry,
    /// <summary>Transient, and the chain table may have changed: refresh the config, then retry after a backoff.</summary>
    RefreshAndRetry,
    /// <summary>The routing was wrong (stale epoch, not head, not tail): refresh the config and retry at once.</summary>
    RefreshAndRetryFast,
    /// <summary>A member other than the tail could not serve the read (read-at-tail): retry it at the tail at once, same config.</summary>
    RetryAtTail,
}

internal readonly record struct Decision(FailureAction Action, Exception? Error)
{
    public bool IsTransient => Action != FailureAction.Fail;
    public bool RefreshConfig => Action is FailureAction.RefreshAndRetry or FailureAction.RefreshAndRetryFast;
}

/// <summary>Maps failures of one attempt to what the client does next and which exception the caller sees.</summary>
internal static class ErrorClassifier
{
    public static Decision Classify(Exception exception, string? bucket = null, string? key = null)
    {
        switch (exception)
        {
            case RpcException rpc:
                return ClassifyRpc(rpc, bucket ?? "", key ?? "");
            case ClusterNotReadyException:
                return new Decision(FailureAction.RefreshAndRetry, null);
            case ChainException chain:
                return new Decision(FailureAction.Fail, chain);
            default:
                return new Decision(FailureAction.Fail, exception);
        }
    }

    private static Decision ClassifyRpc(RpcException rpc, string bucket, string key)
    {
        rpc.Trailers.TryGetValue(ErrorTrailers.Kind, out var kind);
        switch (kind)
        {
            case ErrorKinds.StaleEpoch:
            case ErrorKinds.NotHead:
            case ErrorKinds.NotTail:
                return new Decision(FailureAction.RefreshAndRetryFast, null);
            case ErrorKinds.NotReady:
                return new Decision(FailureAction.RefreshAndRetry, null);
            case ErrorKinds.ReadAtTail:
                return new Decision(FailureAction.RetryAtTail, null);
            case ErrorKinds.NoSuchBucket:
                return Fail(new BucketNotFoundException(bucket));
            case ErrorKinds.NoSuchKey:
                return Fail(new ObjectNotFoundException(bucket, key));
            case ErrorKinds.InvalidKey:
            case ErrorKinds.InvalidBucket:
                return Fail(new ChainArgumentException(rpc.Detail, rpc));
            case ErrorKinds.TooLarge:
                return Fail(new ObjectTooLargeException(rpc.Detail));
            case ErrorKinds.BadDigest:
                return Fail(new IntegrityException(rpc.Detail));
            case ErrorKinds.PreconditionFailed:
                return Fail(new PreconditionFailedException(bucket, key, rpc.Detail));
            case ErrorKinds.BucketNotEmpty:
                return Fail(new BucketNotEmptyException(bucket, rpc.Detail, rpc));
            case ErrorKinds.BucketDeleting:
                return Fail(new BucketDeletingException(bucket, rpc.Detail, rpc));
            case ErrorKinds.MissingChunk:
                return Fail(new MissingChunkException(rpc.Detail));
            case ErrorKinds.CorruptReplica:
                // That replica is repairing its copy; another attempt (or replica) gets intact data.
                return new Decision(FailureAction.Retry, null);
        }

        return rpc.Status switch
        {
            // A node or the master may be gone; the table may have changed.
            StatusCode.Unavailable => new Decision(FailureAction.RefreshAndRetry, null),
            // One attempt took too long (a hung node looks like this, too).
            StatusCode.DeadlineExceeded => new Decision(FailureAction.RefreshAndRetry, null),
            StatusCode.InvalidArgument or StatusCode.ResourceExhausted or StatusCode.OutOfRange =>
                Fail(new ChainArgumentException(Describe(rpc), rpc)),
            _ => Fail(new ChainException(Describe(rpc), rpc)),
        };
    }

    private static Decision Fail(Exception error) => new(FailureAction.Fail, error);

    private static string Describe(RpcException rpc) =>
        string.IsNullOrEmpty(rpc.Detail) ? $"the server failed the call with status {rpc.Status}" : $"{rpc.Status}: {rpc.Detail}";
}
