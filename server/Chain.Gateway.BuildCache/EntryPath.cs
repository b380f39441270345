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

    /// <summary>Segments of a path: a ccache subdirs key takes two, and namespaces in the tools' URLs may add some before them.</summary>
    public const int MaxSegments = 8;

    /// <summary>
    /// Parses a relative path ("70/814j…", "ac/…", "cas/…", "key", optionally below namespace segments such as
    /// "project/cas/…"): up to <see cref="MaxSegments"/> segments of letters, digits, '.', '_', '-' (never "." or "..").
    /// The last two segments decide the kind, so "cas" right before the last segment always means a CAS entry.
    /// Null with a reason when the path is not an entry.
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
        if (segments.Length > MaxSegments || !segments.All(IsSegment))
        {
            problem = $"an entry path is 1 to {MaxSegments} segments of letters, digits, '.', '_' and '-'";
            return null;
        }
        var last = segments[^1];
        var parent = segments.Length >= 2 ? segments[^2] : null;
        if (parent == "cas")
        {
            if (!IsSha256Hex(last))
            {
                problem = "a CAS key is 64 lowercase hex digits";
                return null;
            }
            return new EntryPath(EntryKind.ContentAddressed, keyPrefix + relative, Convert.FromHexString(last));
        }
        // "ac/<64 hex>" is Bazel's action cache (and ccache's bazel layout); "ac/<31 chars>" is a ccache subdirs key.
        var kind = parent == "ac" && IsSha256Hex(last) ? EntryKind.ActionCache : EntryKind.Plain;
        return new EntryPath(kind, keyPrefix + relative, null);
    }

    private static bool IsSegment(string segment) =>
        segment.Length > 0 && segment is not ("." or "..") && segment.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    private static bool IsSha256Hex(string text) => text.Length == 64 && text.All(char.IsAsciiHexDigitLower);
}
