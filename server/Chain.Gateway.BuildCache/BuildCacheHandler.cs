using System.Security;
using System.Security.Cryptography;
using System.Text;
using Chain.Client;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Chain.Gateway.BuildCache;

/// <summary>
/// Serves one build-cache prefix: GET (200 body / 404), HEAD, PUT (200; 413 above the maximum; CAS digest checked),
/// DELETE (204 / 404) of entries stored as objects of one bucket. Thread-safe; one per mapped prefix.
/// </summary>
internal sealed class BuildCacheHandler
{
    private readonly PathString _prefix;
    private readonly ChainClient _client;
    private readonly BuildCacheOptions _options;
    private readonly SemaphoreSlim _slots;
    private readonly string _challenge;
    private readonly object _bucketGate = new();
    private Task? _bucketReady;

    public BuildCacheHandler(PathString prefix, ChainClient client, BuildCacheOptions options)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _prefix = prefix;
        _client = client;
        _options = options;
        _slots = new SemaphoreSlim(options.MaxConcurrentRequests, options.MaxConcurrentRequests);
        var schemes = new List<string>();
        if (options.BearerToken is not null)
            schemes.Add("Bearer realm=\"chain-build-cache\"");
        if (options.BasicUser is not null)
            schemes.Add("Basic realm=\"chain-build-cache\"");
        _challenge = string.Join(", ", schemes);
    }

    public async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        if (_options.RequiresAuth && !Authorized(request.Headers.Authorization.ToString()))
        {
            response.Headers.WWWAuthenticate = _challenge;
            await ErrorAsync(context, StatusCodes.Status401Unauthorized, "AccessDenied", "authentication required").ConfigureAwait(false);
            return;
        }
        if (!request.Path.StartsWithSegments(_prefix, out var rest) || !rest.HasValue || rest.Value!.Length < 2)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "InvalidURI", "no entry key in the path").ConfigureAwait(false);
            return;
        }
        var entry = EntryPath.Parse(rest.Value[1..], _options.KeyPrefix, out var problem);
        if (entry is null)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "InvalidURI", problem!).ConfigureAwait(false);
            return;
        }
        Func<HttpContext, EntryPath, Task>? serve = request.Method switch
        {
            "GET" => GetAsync,
            "HEAD" => HeadAsync,
            "PUT" => PutAsync,
            "DELETE" => DeleteAsync,
            _ => null,
        };
        if (serve is null)
        {
            response.Headers.Allow = "GET, HEAD, PUT, DELETE";
            await ErrorAsync(context, StatusCodes.Status405MethodNotAllowed, "MethodNotAllowed", $"{request.Method} is not supported").ConfigureAwait(false);
            return;
        }
        if (!await _slots.WaitAsync(_options.QueueTimeout, context.RequestAborted).ConfigureAwait(false))
        {
            response.Headers.RetryAfter = "1";
            await ErrorAsync(context, StatusCodes.Status503ServiceUnavailable, "SlowDown", "too many requests in flight").ConfigureAwait(false);
            return;
        }
        try
        {
            await serve(context, entry).ConfigureAwait(false);
        }
        catch (ChainUnavailableException ex) when (!response.HasStarted)
        {
            await ErrorAsync(context, StatusCodes.Status503ServiceUnavailable, "ServiceUnavailable", ex.Message).ConfigureAwait(false);
        }
        catch (ChainArgumentException ex) when (!response.HasStarted)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "InvalidArgument", ex.Message).ConfigureAwait(false);
        }
        catch (Exception) when (response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            // Part of a body went out: only a broken connection tells the client the entry is incomplete.
            context.Abort();
        }
        finally
        {
            _slots.Release();
        }
    }

    private async Task GetAsync(HttpContext context, EntryPath entry)
    {
        var info = await StatAsync(entry, context.RequestAborted).ConfigureAwait(false);
        if (info is null)
        {
            await ErrorAsync(context, StatusCodes.Status404NotFound, "NoSuchKey", "no such entry").ConfigureAwait(false);
            return;
        }
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/octet-stream";
        response.ContentLength = info.Size;
        try
        {
            await _client.GetAsync(_options.Bucket, entry.ObjectKey, response.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ObjectNotFoundException or BucketNotFoundException && !response.HasStarted)
        {
            // Deleted between the stat and the read.
            response.ContentLength = null;
            await ErrorAsync(context, StatusCodes.Status404NotFound, "NoSuchKey", "no such entry").ConfigureAwait(false);
        }
    }

    private async Task HeadAsync(HttpContext context, EntryPath entry)
    {
        var info = await StatAsync(entry, context.RequestAborted).ConfigureAwait(false);
        context.Response.StatusCode = info is null ? StatusCodes.Status404NotFound : StatusCodes.Status200OK;
        if (info is not null)
        {
            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = info.Size;
        }
    }

    private async Task PutAsync(HttpContext context, EntryPath entry)
    {
        var request = context.Request;
        if (request.ContentLength > _options.MaxEntryBytes)
        {
            await ErrorAsync(context, StatusCodes.Status413PayloadTooLarge, "EntityTooLarge",
                $"the entry is larger than the maximum of {_options.MaxEntryBytes} bytes").ConfigureAwait(false);
            return;
        }
        // The limit is ours (counted while streaming); Kestrel's default of 30 MB must not cut in first.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
            sizeFeature.MaxRequestBodySize = null;
        await EnsureBucketAsync(context.RequestAborted).ConfigureAwait(false);
        await using var body = new GuardedBody(request.Body, _options.MaxEntryBytes, entry.ExpectedSha256);
        try
        {
            await _client.PutAsync(_options.Bucket, entry.ObjectKey, body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
        }
        catch (EntryTooLargeException ex)
        {
            await ErrorAsync(context, StatusCodes.Status413PayloadTooLarge, "EntityTooLarge", ex.Message).ConfigureAwait(false);
            return;
        }
        catch (DigestMismatchException ex)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "BadDigest", ex.Message).ConfigureAwait(false);
            return;
        }
        catch (BucketNotFoundException)
        {
            // Deleted behind our back: create it again on the next request; this body is gone.
            ForgetBucket();
            await ErrorAsync(context, StatusCodes.Status503ServiceUnavailable, "ServiceUnavailable", "the cache bucket was missing; retry").ConfigureAwait(false);
            return;
        }
        catch (Exception ex) when (ex is BadHttpRequestException or IOException && !context.RequestAborted.IsCancellationRequested)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "IncompleteBody", ex.Message).ConfigureAwait(false);
            return;
        }
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentLength = 0;
    }

    private async Task DeleteAsync(HttpContext context, EntryPath entry)
    {
        bool existed;
        try
        {
            existed = await _client.DeleteAsync(_options.Bucket, entry.ObjectKey, context.RequestAborted).ConfigureAwait(false);
        }
        catch (BucketNotFoundException)
        {
            existed = false;
        }
        if (existed)
            context.Response.StatusCode = StatusCodes.Status204NoContent;
        else
            await ErrorAsync(context, StatusCodes.Status404NotFound, "NoSuchKey", "no such entry").ConfigureAwait(false);
    }

    private async Task<ObjectInfo?> StatAsync(EntryPath entry, CancellationToken cancellationToken)
    {
        try
        {
            return await _client.StatAsync(_options.Bucket, entry.ObjectKey, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ObjectNotFoundException or BucketNotFoundException)
        {
            return null;
        }
    }

    private Task EnsureBucketAsync(CancellationToken cancellationToken)
    {
        Task ready;
        lock (_bucketGate)
            ready = _bucketReady ??= _client.CreateBucketAsync(_options.Bucket, CancellationToken.None);
        return AwaitBucketAsync(ready, cancellationToken);
    }

    private async Task AwaitBucketAsync(Task ready, CancellationToken cancellationToken)
    {
        try
        {
            await ready.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || ready.IsCanceled)
        {
            lock (_bucketGate)
            {
                if (ReferenceEquals(_bucketReady, ready))
                    _bucketReady = null;
            }
            throw;
        }
    }

    private void ForgetBucket()
    {
        lock (_bucketGate)
            _bucketReady = null;
    }

    private bool Authorized(string header)
    {
        int space = header.IndexOf(' ');
        if (space <= 0)
            return false;
        var scheme = header[..space];
        var value = header[(space + 1)..].Trim();
        if (_options.BearerToken is { } token && scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
            return SameText(value, token);
        if (_options.BasicUser is { } user && scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
        {
            string decoded;
            try
            {
                decoded = Encoding.UTF8.GetString(Convert.FromBase64String(value));
            }
            catch (FormatException)
            {
                return false;
            }
            return SameText(decoded, user + ":" + _options.BasicPassword);
        }
        return false;
    }

    private static bool SameText(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));

    private static async Task ErrorAsync(HttpContext context, int status, string code, string message)
    {
        var response = context.Response;
        response.StatusCode = status;
        if (HttpMethods.IsHead(context.Request.Method))
            return;
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code + "</Code><Message>" + SecurityElement.Escape(message) +
                  "</Message><Resource>" + SecurityElement.Escape(context.Request.Path.Value ?? "") + "</Resource></Error>";
        var bytes = Encoding.UTF8.GetBytes(xml);
        response.ContentType = "application/xml";
        response.ContentLength = bytes.Length;
        await response.Body.WriteAsync(bytes, context.RequestAborted).ConfigureAwait(false);
    }
}
