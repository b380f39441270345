using System.Globalization;
using System.Net;
using System.Text;

namespace Chain.Harness.BellJar;

/// <summary>The report of a drill run: a Markdown and an HTML file with one row per scenario and role, then each scenario's figures.</summary>
public static class DrillReport
{
    private static readonly string[] Columns =
        { "scenario", "role", "declared dependencies", "undeclared attempts", "time to serve", "data verified", "result" };

    /// <summary>The rows of the table as cells (shared by both formats).</summary>
    private static IEnumerable<string[]> Rows(IReadOnlyList<ScenarioResult> results) =>
        results.SelectMany(r => r.Roles).Select(row => new[]
        {
            row.Scenario,
            row.Role,
            row.Declared,
            row.Attempts.Count == 0 ? "none" : string.Join("; ", row.Attempts.Select(a => a.ToString())),
            row.TimeToServe,
            row.DataVerified,
            Status(row.Status),
        });

    public static string Status(DrillStatus status) => status switch
    {
        DrillStatus.Pass => "PASS",
        _ => "FAIL",
    };

    /// <summary>The Markdown table alone (printed to stdout too).</summary>
    public static string MarkdownTable(IReadOnlyList<ScenarioResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var text = new StringBuilder();
        text.AppendLine("| " + string.Join(" | ", Columns) + " |");
        text.AppendLine("|" + string.Concat(Columns.Select(_ => "---|")));
        foreach (string[] cells in Rows(results))
            text.AppendLine("| " + string.Join(" | ", cells.Select(c => c.Replace("|", "\\|", StringComparison.Ordinal))) + " |");
        return text.ToString();
    }

    public static string Markdown(IReadOnlyList<ScenarioResult> results, long seed, DateTimeOffset started)
    {
        ArgumentNullException.ThrowIfNull(results);
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# BellJar drill report — {started:yyyy-MM-dd HH:mm:ss} UTC, seed {seed}");
        text.AppendLine();
        text.Append(MarkdownTable(results));
        foreach (ScenarioResult result in results)
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"## {result.Name}: {Status(result.Status)} ({result.Elapsed.TotalSeconds:0.0} s of {result.Budget.TotalSeconds:0} s)");
            text.AppendLine();
            text.AppendLine(result.Description);
            text.AppendLine();
            if (result.Failure is not null)
                text.AppendLine(CultureInfo.InvariantCulture, $"- **why**: {result.Failure}");
            foreach ((string name, string value) in result.Measurements)
                text.AppendLine(CultureInfo.InvariantCulture, $"- {name}: {value}");
            foreach (string finding in result.Findings)
                text.AppendLine(CultureInfo.InvariantCulture, $"- finding: {finding}");
        }
        return text.ToString();
    }

    public static string Html(IReadOnlyList<ScenarioResult> results, long seed, DateTimeOffset started)
    {
        ArgumentNullException.ThrowIfNull(results);
        static string E(string s) => WebUtility.HtmlEncode(s);
        var html = new StringBuilder();
        html.AppendLine("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>BellJar drill report</title>");
        html.AppendLine("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px;vertical-align:top}" +
                        ".PASS{background:#d8f5d8}.FAIL{background:#f8d0d0}.NA{background:#eee}</style></head><body>");
        html.AppendLine(CultureInfo.InvariantCulture, $"<h1>BellJar drill report — {E(started.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture))} UTC, seed {seed}</h1>");
        html.AppendLine("<table><tr>" + string.Concat(Columns.Select(c => $"<th>{E(c)}</th>")) + "</tr>");
        foreach (string[] cells in Rows(results))
        {
            string css = cells[^1] switch { "PASS" => "PASS", "FAIL" => "FAIL", _ => "NA" };
            html.AppendLine("<tr class=\"" + css + "\">" + string.Concat(cells.Select(c => "<td>" + E(c) + "</td>")) + "</tr>");
        }
        html.AppendLine("</table>");
        foreach (ScenarioResult result in results)
        {
            html.AppendLine(CultureInfo.InvariantCulture, $"<h2>{E(result.Name)}: {Status(result.Status)} ({result.Elapsed.TotalSeconds:0.0} s of {result.Budget.TotalSeconds:0} s)</h2><p>{E(result.Description)}</p><ul>");
            if (result.Failure is not null)
                html.AppendLine(CultureInfo.InvariantCulture, $"<li><b>why</b>: {E(result.Failure)}</li>");
            foreach ((string name, string value) in result.Measurements)
                html.AppendLine(CultureInfo.InvariantCulture, $"<li>{E(name)}: {E(value)}</li>");
            foreach (string finding in result.Findings)
                html.AppendLine(CultureInfo.InvariantCulture, $"<li>finding: {E(finding)}</li>");
            html.AppendLine("</ul>");
        }
        html.AppendLine("</body></html>");
        return html.ToString();
    }

    /// <summary>Writes report.md and report.html into <paramref name="directory"/>; returns their paths.</summary>
    public static (string Markdown, string Html) Write(string directory, IReadOnlyList<ScenarioResult> results, long seed, DateTimeOffset started)
    {
        Directory.CreateDirectory(directory);
        string md = Path.Combine(directory, "report.md");
        string html = Path.Combine(directory, "report.html");
        File.WriteAllText(md, Markdown(results, seed, started));
        File.WriteAllText(html, Html(results, seed, started));
        return (md, html);
    }
}
