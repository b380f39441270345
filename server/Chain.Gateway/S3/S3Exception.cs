using System.Text;
using System.Xml;
using Microsoft.AspNetCore.Http;

namespace Chain.Gateway.S3;

/// <summary>An S3 error: the HTTP status, S3's error code and a message, answered as an XML Error body.</summary>
public sealed class S3Exception(int status, string code, string message) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;

    public static S3Exception NoSuchBucket(string bucket) => new(404, "NoSuchBucket", $"The specified bucket '{bucket}' does not exist");
    public static S3Exception NoSuchKey(string key) => new(404, "NoSuchKey", $"The specified key '{key}' does not exist");
    public static S3Exception NotImplemented(string what) => new(501, "NotImplemented", what + " is not implemented");
    public static S3Exception MalformedXml(string detail) => new(400, "MalformedXML", "The XML you provided was not well-formed: " + detail);
    public static S3Exception InvalidArgument(string detail) => new(400, "InvalidArgument", detail);
    public static S3Exception AccessDenied(string detail) => new(403, "AccessDenied", detail);
    public static S3Exception AuthorizationQueryError(string detail) => new(400, "AuthorizationQueryParametersError", detail);
    public static S3Exception SignatureDoesNotMatch(string detail) =>
        new(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided: " + detail);

    /// <summary>Writes the error unless the response has started (then the connection is aborted: the body is incomplete).</summary>
    public static async Task WriteAsync(HttpContext context, int status, string code, string message)
    {
        if (context.Response.HasStarted)
        {
            context.Abort();
            return;
        }
        context.Response.Clear();
        context.Response.StatusCode = status;
        // A client that sent Expect: 100-continue and got this answer first does not send its body; the connection
        // cannot carry another request (the server would read its first bytes as that body).
        if (context.Request.Headers.Expect.ToString().Contains("100-continue", StringComparison.OrdinalIgnoreCase))
            context.Response.Headers.Connection = "close";
        if (HttpMethods.IsHead(context.Request.Method))
            return;
        context.Response.ContentType = "application/xml";
        var xml = new S3XmlWriter("Error", withNamespace: false);
        xml.Element("Code", code);
        xml.Element("Message", message);
        xml.Element("Resource", context.Request.Path.Value ?? "/");
        xml.Element("RequestId", context.TraceIdentifier);
        await xml.WriteToAsync(context.Response).ConfigureAwait(false);
    }
}

/// <summary>Builds one small S3 XML document (namespace http://s3.amazonaws.com/doc/2006-03-01/) in memory.</summary>
public sealed class S3XmlWriter
{
    public const string Namespace = "http://s3.amazonaws.com/doc/2006-03-01/";
    private readonly StringBuilder _text = new();
    private readonly XmlWriter _writer;

    public S3XmlWriter(string root, bool withNamespace = true)
    {
        _writer = XmlWriter.Create(_text, new XmlWriterSettings { Encoding = Encoding.UTF8, Indent = false });
        _writer.WriteStartDocument();
        if (withNamespace)
            _writer.WriteStartElement(root, Namespace);
        else
            _writer.WriteStartElement(root);
    }

    public S3XmlWriter Element(string name, string value)
    {
        _writer.WriteElementString(name, value);
        return this;
    }

    public S3XmlWriter Start(string name)
    {
        _writer.WriteStartElement(name);
        return this;
    }

    public S3XmlWriter End()
    {
        _writer.WriteEndElement();
        return this;
    }

    public string Finish()
    {
        _writer.WriteEndDocument();
        _writer.Flush();
        // StringBuilder output declares UTF-16; the body is UTF-8.
        return _text.ToString().Replace("encoding=\"utf-16\"", "encoding=\"UTF-8\"", StringComparison.Ordinal);
    }

    public async Task WriteToAsync(HttpResponse response)
    {
        byte[] body = Encoding.UTF8.GetBytes(Finish());
        response.ContentType = "application/xml";
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body).ConfigureAwait(false);
    }
}
