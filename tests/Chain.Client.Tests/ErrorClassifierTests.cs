using Chain.Client.Internal;
using Chain.Protocol;
using Chain.Rpc;

namespace Chain.Client.Tests;

public class ErrorClassifierTests
{
    public static TheoryData<StatusCode, string?, string, Type?> Table => new()
    {
        // Routing errors: refresh the config and retry at once.
        { StatusCode.FailedPrecondition, ErrorKinds.StaleEpoch, nameof(FailureAction.RefreshAndRetryFast), null },
        { StatusCode.FailedPrecondition, ErrorKinds.NotHead, nameof(FailureAction.RefreshAndRetryFast), null },
        { StatusCode.FailedPrecondition, ErrorKinds.NotTail, nameof(FailureAction.RefreshAndRetryFast), null },
        // CRAQ redirect: the same read at the tail, with the same config.
        { StatusCode.FailedPrecondition, ErrorKinds.ReadAtTail, nameof(FailureAction.RetryAtTail), null },
        // Not ready: back off (and refresh); the kind decides even under another status.
        { StatusCode.Unavailable, ErrorKinds.NotReady, nameof(FailureAction.RefreshAndRetry), null },
        { StatusCode.FailedPrecondition, ErrorKinds.NotReady, nameof(FailureAction.RefreshAndRetry), null },
        // Transport-level transient failures without a kind.
        { StatusCode.Unavailable, null, nameof(FailureAction.RefreshAndRetry), null },
        { StatusCode.DeadlineExceeded, null, nameof(FailureAction.RefreshAndRetry), null },
        // Typed, permanent errors.
        { StatusCode.NotFound, ErrorKinds.NoSuchBucket, nameof(FailureAction.Fail), typeof(BucketNotFoundException) },
        { StatusCode.NotFound, ErrorKinds.NoSuchKey, nameof(FailureAction.Fail), typeof(ObjectNotFoundException) },
        { StatusCode.InvalidArgument, ErrorKinds.InvalidKey, nameof(FailureAction.Fail), typeof(ChainArgumentException) },
        { StatusCode.InvalidArgument, ErrorKinds.InvalidBucket, nameof(FailureAction.Fail), typeof(ChainArgumentException) },
        { StatusCode.InvalidArgument, ErrorKinds.TooLarge, nameof(FailureAction.Fail), typeof(ObjectTooLargeException) },
        { StatusCode.InvalidArgument, ErrorKinds.BadDigest, nameof(FailureAction.Fail), typeof(IntegrityException) },
        { StatusCode.FailedPrecondition, ErrorKinds.BucketNotEmpty, nameof(FailureAction.Fail), typeof(BucketNotEmptyException) },
        { StatusCode.FailedPrecondition, ErrorKinds.BucketDeleting, nameof(FailureAction.Fail), typeof(BucketDeletingException) },
        // Statuses without a kind.
        { StatusCode.InvalidArgument, null, nameof(FailureAction.Fail), typeof(ChainArgumentException) },
        { StatusCode.ResourceExhausted, null, nameof(FailureAction.Fail), typeof(ChainArgumentException) },
        { StatusCode.OutOfRange, null, nameof(FailureAction.Fail), typeof(ChainArgumentException) },
        { StatusCode.Internal, null, nameof(FailureAction.Fail), typeof(ChainException) },
        { StatusCode.NotFound, null, nameof(FailureAction.Fail), typeof(ChainException) },
        { StatusCode.FailedPrecondition, null, nameof(FailureAction.Fail), typeof(ChainException) },
        { StatusCode.Unimplemented, null, nameof(FailureAction.Fail), typeof(ChainException) },
        { StatusCode.Unknown, null, nameof(FailureAction.Fail), typeof(ChainException) },
        // An unknown kind falls back to the status.
        { StatusCode.Unavailable, "some-future-kind", nameof(FailureAction.RefreshAndRetry), null },
        { StatusCode.Internal, "some-future-kind", nameof(FailureAction.Fail), typeof(ChainException) },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Classifies_status_and_kind(StatusCode status, string? kind, string action, Type? errorType)
    {
        var rpc = FakeTransport.Error(status, kind, "the server's detail");

        var decision = ErrorClassifier.Classify(rpc, "bkt", "some/key");

        Assert.Equal(action, decision.Action.ToString());
        if (errorType is null)
        {
            Assert.True(decision.IsTransient);
            Assert.Null(decision.Error);
        }
        else
        {
            Assert.False(decision.IsTransient);
            Assert.NotNull(decision.Error);
            Assert.Equal(errorType, decision.Error!.GetType());
        }
    }

    [Fact]
    public void Not_found_errors_name_the_bucket_and_key()
    {
        var key = ErrorClassifier.Classify(FakeTransport.Error(StatusCode.NotFound, ErrorKinds.NoSuchKey), "bkt", "a/b");
        var notFound = Assert.IsType<ObjectNotFoundException>(key.Error);
        Assert.Equal(("bkt", "a/b"), (notFound.Bucket, notFound.Key));

        var bucket = ErrorClassifier.Classify(FakeTransport.Error(StatusCode.NotFound, ErrorKinds.NoSuchBucket), "bkt", "a/b");
        Assert.Equal("bkt", Assert.IsType<BucketNotFoundException>(bucket.Error).Bucket);
    }

    [Fact]
    public void Untyped_errors_carry_the_servers_detail_and_the_rpc_error()
    {
        var rpc = FakeTransport.Error(StatusCode.Internal, null, "disk on fire");
        var decision = ErrorClassifier.Classify(rpc);
        Assert.Contains("disk on fire", decision.Error!.Message);
        Assert.Same(rpc, decision.Error.InnerException);

        var bucketNotEmpty = ErrorClassifier.Classify(FakeTransport.Error(StatusCode.FailedPrecondition, ErrorKinds.BucketNotEmpty, "bucket 'x' is not empty"));
        Assert.Equal("bucket 'x' is not empty", bucketNotEmpty.Error!.Message);
    }

    [Fact]
    public void Cluster_not_ready_is_transient_and_other_exceptions_are_not()
    {
        Assert.Equal(FailureAction.RefreshAndRetry, ErrorClassifier.Classify(new ClusterNotReadyException("forming")).Action);

        var integrity = new IntegrityException("bad");
        var decision = ErrorClassifier.Classify(integrity);
        Assert.Equal(FailureAction.Fail, decision.Action);
        Assert.Same(integrity, decision.Error);

        Assert.Equal(FailureAction.Fail, ErrorClassifier.Classify(new IOException("disk")).Action);
    }
}
