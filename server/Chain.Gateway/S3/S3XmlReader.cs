using System.Xml;
using System.Xml.Linq;

namespace Chain.Gateway.S3;

/// <summary>Parses small S3 request bodies (no DTDs); anything not well-formed is 400 MalformedXML.</summary>
public static class S3XmlReader
{
    public static XElement Parse(byte[] body)
    {
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null };
        try
        {
            using var reader = XmlReader.Create(new MemoryStream(body), settings);
            return XDocument.Load(reader).Root ?? throw S3Exception.MalformedXml("no root element");
        }
        catch (XmlException e)
        {
            throw S3Exception.MalformedXml(e.Message);
        }
    }

    /// <summary>The child elements with this local name (S3 bodies come with or without the S3 namespace).</summary>
    public static IEnumerable<XElement> Children(XElement parent, string localName) =>
        parent.Elements().Where(e => e.Name.LocalName == localName);

    public static string? ChildValue(XElement parent, string localName) => Children(parent, localName).FirstOrDefault()?.Value;
}
