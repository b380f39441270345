using System.Diagnostics;
using Chain.Client.Internal;
using Chain.Protocol;
using Chain.Rpc;

namespace Chain.Client.Tests;

public class RetryRunnerTests
{
    private static ChainClientOptions Options(int maxAttempts = 4, double baseDelayMs = 1, double timeoutSeconds = 30) => new()
    {
        Master = FakeTransport.Master,
        MaxAttempts = maxAttempts,
        RetryBaseDelay = TimeSpan.FromMilliseconds(baseDelayMs),
        OperationTimeout = TimeSpan.FromSeconds(timeoutSeconds),
    };

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    public async Task Gives_up_after_MaxAttempts_with_the_last_error_inside(int maxAttempts)
    {
        var runner = new RetryRunner(Options(maxAttempts));
        int attempts = 0;
        RpcException? last = null;

        var error = await Assert.ThrowsAsync<ChainUnavailableException>(() => runner.RunAsync<int>("op", (state, ct) =>
        {
            attempts++;
            Assert.Equal(attempts, state.Attempt);
            last = FakeTransport.Error(StatusCode.Unavailable, null, $"attempt {attempts}");
            throw last;
        }, CancellationToken.None));

        Assert.Equal(maxAttempts, attempts);
        Assert.Same(last, error.InnerException);
        Assert.Contains($"attempt {maxAttempts}", error.Message);
    }

    [Fact]
    public async Task Succeeds_after_transient_failures()
    {
        var runner = new RetryRunner(Options(maxAttempts: 5));
        int attempts = 0;

        int result = await runner.RunAsync("op", (state, ct) =>
        {
            attempts++;
            if (attempts < 3)
                throw FakeTransport.Error(StatusCode.Unavailable, ErrorKinds.NotReady);
            return Task.FromResult(42);
        }, CancellationToken.None);

        Assert.Equal(42, result);
        Assert.Equal(3, attempts);
    }

    [Fact]
    public async Task Permanent_errors_are_not_retried_and_are_mapped()
    {
        var runner = new RetryRunner(Options());
        int attempts = 0;

        var error = await Assert.ThrowsAsync<ObjectNotFoundException>(() => runner.RunAsync<int>("op", (state, ct) =>
        {
            attempts++;
            throw FakeTransport.Error(StatusCode.NotFound, ErrorKinds.NoSuchKey);
        }, CancellationToken.None, "bkt", "k"));

        Assert.Equal(1, attempts);
        Assert.Equal("k", error.Key);
    }

    [Fact]
    public async Task Routing_errors_invalidate_the_config_used_and_retry_at_once()
    {
        var invalidated = new List<ulong?>();
        // A base delay of a minute: only an immediate retry can finish in time.
        var runner = new RetryRunner(Options(maxAttempts: 3, baseDelayMs: 60_000), v => invalidated.Add(v));
        int attempts = 0;
        var watch = Stopwatch.StartNew();

        int result = await runner.RunAsync("op", (state, ct) =>
        {
            attempts++;
            state.ConfigVersion = (ulong)(10 + attempts);
            if (attempts == 1)
                throw FakeTransport.Error(StatusCode.FailedPrecondition, ErrorKinds.StaleEpoch);
            return Task.FromResult(1);
        }, CancellationToken.None);

        Assert.Equal(1, result);
        Assert.Equal(new ulong?[] { 11 }, invalidated);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"the first retry after a routing error waited {watch.Elapsed}");
    }

    [Fact]
    public async Task Unavailable_invalidates_the_config_but_a_permanent_error_does_not()
    {
        var invalidated = new List<ulong?>();
        var runner = new RetryRunner(Options(maxAttempts: 2), v => invalidated.Add(v));

        await Assert.ThrowsAsync<ChainUnavailableException>(() => runner.RunAsync<int>("op", (state, ct) =>
        {
            state.ConfigVersion = 5;
            throw FakeTransport.Error(StatusCode.Unavailable, null);
        }, CancellationToken.None));
        Assert.Equal(new ulong?[] { 5, 5 }, invalidated);

        invalidated.Clear();
        await Assert.ThrowsAsync<ChainArgumentException>(() => runner.RunAsync<int>("op", (state, ct) =>
            throw FakeTransport.Error(StatusCode.InvalidArgument, ErrorKinds.InvalidKey), CancellationToken.None));
        Assert.Empty(invalidated);
    }

    [Fact]
    public async Task The_overall_deadline_ends_retries_early_with_the_last_error()
    {
        var runner = new RetryRunner(Options(maxAttempts: 1000, baseDelayMs: 20, timeoutSeconds: 0.3));
        int attempts = 0;
        var watch = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<ChainUnavailableException>(() => runner.RunAsync<int>("op", (state, ct) =>
        {
            attempts++;
            throw FakeTransport.Error(StatusCode.Unavailable, null, "node down");
        }, CancellationToken.None));

        Assert.True(attempts is > 1 and < 1000, $"{attempts} attempts");
        Assert.IsType<RpcException>(error.InnerException);
        Assert.Contains("node down", error.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_hanging_attempt_is_cut_by_the_overall_deadline()
    {
        var runner = new RetryRunner(Options(timeoutSeconds: 0.2));

        var error = await Assert.ThrowsAsync<ChainUnavailableException>(() => runner.RunAsync<int>("op", async (state, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            return 0;
        }, CancellationToken.None));

        Assert.Contains("did not complete within", error.Message);
    }

    [Fact]
    public async Task The_callers_cancellation_is_reported_as_cancellation()
    {
        var runner = new RetryRunner(Options());
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => runner.RunAsync<int>("op", async (state, ct) =>
        {
            await Task.Delay(Timeout.Infinite, ct);
            return 0;
        }, cts.Token));
    }

    [Fact]
    public async Task Streaming_budget_can_be_extended_past_the_operation_timeout()
    {
        var runner = new RetryRunner(Options(timeoutSeconds: 0.2));

        int result = await runner.RunAsync("op", async (state, ct) =>
        {
            state.Deadline.ExtendTo(TimeSpan.FromSeconds(30));
            await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
            return 7;
        }, CancellationToken.None);

        Assert.Equal(7, result);
    }
}
