using System.Text;

namespace Chain.Protocol;

/// <summary>Validation rules shared by client and server, so both reject the same inputs the same way.</summary>
public static class Validation
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Returns null when the key is acceptable, otherwise the reason.</summary>
    public static string? CheckKey(ReadOnlySpan<byte> key)
    {
        if (key.IsEmpty)
            return "key is empty";
        if (key.Length > Limits.KeyBytesMax)
            return $"key is {key.Length} bytes; the maximum is {Limits.KeyBytesMax}";
        try
        {
            StrictUtf8.GetCharCount(key);
        }
        catch (DecoderFallbackException)
        {
            return "key is not valid UTF-8";
        }
        if (key.IndexOf((byte)0) >= 0)
            return "key contains a NUL byte";
        return null;
    }

    /// <summary>Bucket names follow S3's rules: 3-63 chars of a-z, 0-9, '.', '-', starting and ending alphanumeric.</summary>
    public static string? CheckBucket(string? bucket)
    {
        if (string.IsNullOrEmpty(bucket))
            return "bucket name is empty";
        if (bucket.Length < 3 || bucket.Length > 63)
            return $"bucket name '{bucket}' must be 3 to 63 characters";
        foreach (char c in bucket)
        {
            bool ok = c is >= 'a' and <= 'z' or >= '0' and <= '9' or '.' or '-';
            if (!ok)
                return $"bucket name '{bucket}' may contain only a-z, 0-9, '.' and '-'";
        }
        if (!char.IsAsciiLetterOrDigit(bucket[0]) || !char.IsAsciiLetterOrDigit(bucket[^1]))
            return $"bucket name '{bucket}' must start and end with a letter or digit";
        return null;
    }

    /// <summary>
    /// A node's failure-domain label: empty (no zone: the node is a zone of its own) or 1-64 ASCII letters, digits,
    /// '.', '_' or '-'. Returns null when acceptable, otherwise the reason.
    /// </summary>
    public static string? CheckZone(string? zone)
    {
        if (string.IsNullOrEmpty(zone))
            return null;
        if (zone.Length > 64)
            return $"zone '{zone[..16]}...' is {zone.Length} characters; the maximum is 64";
        foreach (char c in zone)
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('.' or '_' or '-'))
                return $"zone '{zone}' may only contain ASCII letters, digits, '.', '_' and '-'";
        return null;
    }

    public static byte[] EncodeKey(string key) => StrictUtf8.GetBytes(key);

    public static string DecodeKey(ReadOnlySpan<byte> key) => StrictUtf8.GetString(key);
}
