using System.Text.Json;

namespace Chain.Harness.BellJar;

/// <summary>A manifest that cannot be used: the message names the file and what is wrong.</summary>
public sealed class ManifestException : Exception
{
    public ManifestException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>The roles BellJar knows and the named ports each listens on (`peer`: the distribution tier's agent, whose rpc port serves Peer and Agent).</summary>
public static class RoleCatalog
{
    /// <summary>The one port every server role listens on: its gRPC endpoint (<c>--listen</c>).</summary>
    public const string RpcPort = "rpc";

    /// <summary>The gateway's HTTP endpoint (S3 and the other HTTP endpoint groups, <c>--listen</c>).</summary>
    public const string HttpPort = "http";

    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Ports =
        new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal)
        {
            ["master"] = new[] { RpcPort },
            ["node"] = new[] { RpcPort },
            ["gateway"] = new[] { HttpPort },
            ["tracker"] = new[] { RpcPort },
            ["peer"] = new[] { RpcPort },
        };

    public static string KnownRoles => string.Join(", ", Ports.Keys.Order(StringComparer.Ordinal));
}

/// <summary>One allowed destination: every instance of <paramref name="Role"/>, on its port named <paramref name="Port"/>.</summary>
public sealed record Dependency(string Role, string Port, string Why)
{
    public override string ToString() => $"{Role}:{Port}";
}

/// <summary>
/// What one role may reach — nothing else: no DNS, no NTP, no registry. Parsed from <c>server/belljar/ROLE.json</c>:
/// <c>{"role": "node", "summary": "...", "reaches": [{"role": "master", "port": "rpc", "why": "..."}]}</c>.
/// </summary>
public sealed record DependencyManifest(string Role, string Summary, IReadOnlyList<Dependency> Reaches)
{
    private static readonly string[] TopFields = { "role", "summary", "reaches" };
    private static readonly string[] DependencyFields = { "role", "port", "why" };

    /// <summary>"master:rpc, node:rpc" (or "nothing").</summary>
    public string Describe() => Reaches.Count == 0 ? "nothing" : string.Join(", ", Reaches);

    /// <summary>Parses and validates one manifest; <paramref name="source"/> names it in errors.</summary>
    public static DependencyManifest Parse(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new ManifestException($"{source}: not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ManifestException($"{source}: the manifest must be a JSON object");
            RejectUnknownFields(root, TopFields, source);
            string role = RequiredString(root, "role", source);
            RequireKnownRole(role, source, "role");
            string summary = OptionalString(root, "summary", source) ?? "";
            if (!root.TryGetProperty("reaches", out JsonElement reaches) || reaches.ValueKind != JsonValueKind.Array)
                throw new ManifestException($"{source}: 'reaches' must be an array of {{\"role\", \"port\", \"why\"}} (empty: the role reaches nothing)");
            var dependencies = new List<Dependency>();
            int index = 0;
            foreach (JsonElement item in reaches.EnumerateArray())
            {
                string where = $"{source}: reaches[{index++}]";
                if (item.ValueKind != JsonValueKind.Object)
                    throw new ManifestException($"{where}: must be an object");
                RejectUnknownFields(item, DependencyFields, where);
                string target = RequiredString(item, "role", where);
                RequireKnownRole(target, where, "role");
                string port = RequiredString(item, "port", where);
                IReadOnlyList<string> ports = RoleCatalog.Ports[target];
                if (!ports.Contains(port, StringComparer.Ordinal))
                    throw new ManifestException($"{where}: role '{target}' has no port '{port}' (its ports: {string.Join(", ", ports)})");
                string why = RequiredString(item, "why", where);
                if (dependencies.Any(d => d.Role == target && d.Port == port))
                    throw new ManifestException($"{where}: {target}:{port} is declared twice");
                dependencies.Add(new Dependency(target, port, why));
            }
            return new DependencyManifest(role, summary, dependencies);
        }
    }

    private static void RejectUnknownFields(JsonElement element, string[] known, string where)
    {
        foreach (JsonProperty property in element.EnumerateObject())
        {
            if (!known.Contains(property.Name, StringComparer.Ordinal))
                throw new ManifestException($"{where}: unknown field '{property.Name}' (allowed: {string.Join(", ", known)})");
        }
    }

    private static void RequireKnownRole(string role, string where, string field)
    {
        if (!RoleCatalog.Ports.ContainsKey(role))
            throw new ManifestException($"{where}: unknown {field} '{role}' (known roles: {RoleCatalog.KnownRoles})");
    }

    private static string RequiredString(JsonElement element, string name, string where) =>
        OptionalString(element, name, where) is { Length: > 0 } value
            ? value
            : throw new ManifestException($"{where}: '{name}' is required and must be a non-empty string");

    private static string? OptionalString(JsonElement element, string name, string where)
    {
        if (!element.TryGetProperty(name, out JsonElement value))
            return null;
        if (value.ValueKind != JsonValueKind.String)
            throw new ManifestException($"{where}: '{name}' must be a string, not {value.ValueKind}");
        return value.GetString()!.Trim();
    }
}

/// <summary>The manifests of every role, one file per role (<c>ROLE.json</c>) in one directory.</summary>
public sealed class ManifestSet
{
    /// <summary>Where the build copies <c>server/belljar/*.json</c>: a <c>belljar</c> folder beside the harness assembly.</summary>
    public static string DefaultDirectory => Path.Combine(AppContext.BaseDirectory, "belljar");

    private readonly Dictionary<string, DependencyManifest> _byRole;

    public ManifestSet(IEnumerable<DependencyManifest> manifests)
    {
        ArgumentNullException.ThrowIfNull(manifests);
        _byRole = new Dictionary<string, DependencyManifest>(StringComparer.Ordinal);
        foreach (DependencyManifest manifest in manifests)
        {
            if (!_byRole.TryAdd(manifest.Role, manifest))
                throw new ManifestException($"two manifests for role '{manifest.Role}'");
        }
    }

    public IReadOnlyCollection<DependencyManifest> All => _byRole.Values;

    /// <summary>The manifest of <paramref name="role"/>; a clear error when there is none.</summary>
    public DependencyManifest For(string role) => _byRole.TryGetValue(role, out DependencyManifest? manifest)
        ? manifest
        : throw new ManifestException($"no dependency manifest for role '{role}' (have: {string.Join(", ", _byRole.Keys.Order(StringComparer.Ordinal))})");

    /// <summary>Loads every <c>*.json</c> of <paramref name="directory"/> (default <see cref="DefaultDirectory"/>); each file must be named after its role.</summary>
    public static ManifestSet Load(string? directory = null)
    {
        string path = directory ?? DefaultDirectory;
        if (!Directory.Exists(path))
            throw new ManifestException($"manifest directory '{path}' does not exist");
        var manifests = new List<DependencyManifest>();
        foreach (string file in Directory.EnumerateFiles(path, "*.json").Order(StringComparer.Ordinal))
        {
            string text;
            try
            {
                text = File.ReadAllText(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ManifestException($"{file}: cannot read: {e.Message}", e);
            }
            DependencyManifest manifest = DependencyManifest.Parse(text, file);
            string expected = manifest.Role + ".json";
            if (!string.Equals(Path.GetFileName(file), expected, StringComparison.Ordinal))
                throw new ManifestException($"{file}: declares role '{manifest.Role}', so it must be named {expected}");
            manifests.Add(manifest);
        }
        if (manifests.Count == 0)
            throw new ManifestException($"manifest directory '{path}' holds no *.json manifest");
        return new ManifestSet(manifests);
    }
}
