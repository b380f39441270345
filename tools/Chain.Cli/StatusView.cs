using System.Globalization;
using Chain.Client;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Chain.Cli;

/// <summary>Renders a <see cref="ClusterStatus"/>: a summary line, then chains, nodes and buckets as tables.</summary>
public static class StatusView
{
    public static string Summary(ClusterStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        int alive = status.Nodes.Count(n => n.Alive);
        return $"config version {status.ConfigVersion}: {status.Chains.Count} chains, {status.Replicas} replicas, " +
               $"{alive}/{status.Nodes.Count} nodes alive, {status.Buckets.Count} buckets";
    }

    public static void Render(IAnsiConsole console, ClusterStatus status, DateTimeOffset now, bool includeBuckets)
    {
        ArgumentNullException.ThrowIfNull(console);
        ArgumentNullException.ThrowIfNull(status);
        var alive = status.Nodes.ToDictionary(n => n.NodeId, n => n.Alive, StringComparer.Ordinal);

        console.WriteLine(Summary(status));

        var chains = new Table().Title("Chains").Border(TableBorder.Rounded);
        chains.AddColumn("chain", c => c.RightAligned());
        chains.AddColumn("epoch", c => c.RightAligned());
        chains.AddColumn("head");
        chains.AddColumn("middle");
        chains.AddColumn("tail");
        foreach (ChainView chain in status.Chains.OrderBy(c => c.ChainId))
        {
            IReadOnlyList<string> ids = chain.NodeIds;
            IRenderable head = ids.Count > 0 ? NodeCell(ids[0], alive) : new Text("-");
            IRenderable middle = ids.Count > 2 ? NodeCells(ids.Skip(1).Take(ids.Count - 2), alive) : new Text("-");
            IRenderable tail = ids.Count > 0 ? NodeCell(ids[^1], alive) : new Text("-");
            chains.AddRow(
                new Text(chain.ChainId.ToString(CultureInfo.InvariantCulture)),
                new Text(chain.Epoch.ToString(CultureInfo.InvariantCulture)),
                head, middle, tail);
        }
        if (status.Chains.Count == 0)
            chains.AddRow(new Text("-"), new Text("-"), new Text("(no chains yet)"), new Text(""), new Text(""));
        console.Write(chains);

        // The zone column only when some node has a zone, so zoneless clusters look as before.
        bool zoned = status.Nodes.Any(n => n.Zone.Length > 0);
        var nodes = new Table().Title("Nodes").Border(TableBorder.Rounded);
        nodes.AddColumn("node");
        if (zoned)
            nodes.AddColumn("zone");
        nodes.AddColumn("address");
        nodes.AddColumn("alive");
        nodes.AddColumn("last heartbeat");
        foreach (NodeView node in status.Nodes.OrderBy(n => n.NodeId, StringComparer.Ordinal))
        {
            var cells = new List<IRenderable> { new Text(node.NodeId) };
            if (zoned)
                cells.Add(new Text(node.Zone.Length > 0 ? node.Zone : "-"));
            cells.Add(new Text(node.Address));
            cells.Add(node.Alive ? new Markup("[green]yes[/]") : new Markup("[red]no[/]"));
            cells.Add(new Text(FormatHeartbeat(node.LastHeartbeat, now)));
            nodes.AddRow(cells);
        }
        if (status.Nodes.Count == 0)
            nodes.AddRow(new Text("(none registered)"), new Text(""), new Text(""), new Text(""));
        console.Write(nodes);

        if (!includeBuckets)
            return;
        var buckets = new Table().Title("Buckets").Border(TableBorder.Rounded);
        buckets.AddColumn("bucket");
        buckets.AddColumn("created");
        foreach (BucketInfo bucket in status.Buckets.OrderBy(b => b.Name, StringComparer.Ordinal))
            buckets.AddRow(new Text(bucket.Name), new Text(CliApp.FormatTime(bucket.Created)));
        if (status.Buckets.Count == 0)
            buckets.AddRow(new Text("(no buckets)"), new Text(""));
        console.Write(buckets);
    }

    public static string FormatHeartbeat(DateTimeOffset? heartbeat, DateTimeOffset now)
    {
        if (heartbeat is not { } at)
            return "never";
        TimeSpan age = now - at;
        string ago = age < TimeSpan.Zero ? "just now"
            : age.TotalSeconds < 60 ? age.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + "s ago"
            : age.TotalMinutes < 60 ? age.TotalMinutes.ToString("0", CultureInfo.InvariantCulture) + "m ago"
            : age.TotalHours.ToString("0", CultureInfo.InvariantCulture) + "h ago";
        return $"{CliApp.FormatTime(at)} ({ago})";
    }

    private static IRenderable NodeCell(string id, IReadOnlyDictionary<string, bool> alive) =>
        alive.TryGetValue(id, out bool up) && up
            ? new Text(id)
            : new Markup($"[red]{Markup.Escape(id)} (down)[/]");

    private static IRenderable NodeCells(IEnumerable<string> ids, IReadOnlyDictionary<string, bool> alive) =>
        new Markup(string.Join(", ", ids.Select(id =>
            alive.TryGetValue(id, out bool up) && up ? Markup.Escape(id) : $"[red]{Markup.Escape(id)} (down)[/]")));
}
