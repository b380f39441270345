using Microsoft.AspNetCore.Http;

namespace Chain.Gateway.S3;

public sealed partial class S3Api
{
    /// <summary>
    /// Multipart uploads (POST ?uploads, PUT ?partNumber&amp;uploadId, POST ?uploadId, DELETE ?uploadId, GET ?uploads):
    /// every request carrying one of those parameters lands here. Not implemented yet: 501 NotImplemented.
    /// </summary>
    private static Task HandleMultipartAsync(HttpContext context, S3Request request, S3Principal principal) =>
        throw S3Exception.NotImplemented("multipart upload");
}
