namespace Chain.Gateway.BuildCache;

/// <summary>What a request path (after the mapped prefix) names.</summary>
internal enum EntryKind
{
    /// <summary>ccache (subdirs <c>70/814j…</c> or flat) or Gradle (<c>&lt;key&gt;</c>): any body.</summary>
    Plain,
    /// <summary>Bazel action cache, or ccache's bazel layout: <c>ac/&lt;64 hex&gt;</c>, any body.</summary>
    ActionCache,
    /// <summary>Bazel content-addressed store: <c>cas/&lt;64 hex&gt;</c>, body's SHA-256 must equal the key.</summary>
    ContentAddressed,
}

/// <summary>A parsed entry path: its kind, the object key it is stored under, and the digest a CAS body must have.</summary>
internal sealed record EntryPath(EntryKind Kind, string ObjectKey, byte[]? ExpectedSha256)
{
    public const int MaxPathLength = 512;

    /// <summary>
    /// Parses a relative path ("70/814j…", "ac/…", "cas/…", "key"): one or two segments of letters, digits, '.', '_', '-'
    /// (never "." or ".."). Null with a reason when the path is not an entry.
    /// </summary>
    public static EntryPath? Parse(string relative, string keyPrefix, out string? problem)
    {
        problem = null;
        if (relative.Length is 0 or > MaxPathLength)
        {
            problem = relative.Length == 0 ? "no entry key in the path" : $"the entry path is longer than {MaxPathLength} characters";
            return null;
        }
        var segments = relative.Split('/');
        if (segments.Length > 2 || !segments.All(IsSegment))
        {
            problem = "an entry path is one or two segments of letters, digits, '.', '_' and '-'";
            return null;
        }
        if (segments.Length == 2 && segments[0] == "cas")
        {
            if (!IsSha256Hex(segments[1]))
            {
                problem = "a CAS key is 64 lowercase hex digits";
                return null;
            }
            return new EntryPath(EntryKind.ContentAddressed, keyPrefix + relative, Convert.FromHexString(segments[1]));
        }
        // "ac/<64 hex>" is Bazel's action cache (and ccache's bazel layout); "ac/<31 chars>" is a ccache subdirs key.
        var kind = segments.Length == 2 && segments[0] == "ac" && IsSha256Hex(segments[1]) ? EntryKind.ActionCache : EntryKind.Plain;
        return new EntryPath(kind, keyPrefix + relative, null);
    }

    private static bool IsSegment(string segment) =>
        segment.Length > 0 && segment is not ("." or "..") && segment.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    private static bool IsSha256Hex(string text) => text.Length == 64 && text.All(char.IsAsciiHexDigitLower);
}
