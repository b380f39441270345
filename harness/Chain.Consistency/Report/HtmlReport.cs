using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;

namespace Chain.Consistency.Report;

/// <summary>A period during which a fault was in effect, on the history's clock (the harness maps its fault events to this).</summary>
public sealed record FaultPeriod(string Name, long StartTicks, long EndTicks);

/// <summary>What the report says about the run itself.</summary>
/// <param name="TicksPerSecond">Rate of the history's clock (default: <see cref="Stopwatch.Frequency"/>, for Stopwatch timestamps).</param>
public sealed record RunInfo(string Seed, string Workload, TimeSpan Duration)
{
    public long TicksPerSecond { get; init; } = Stopwatch.Frequency;
    public string Title { get; init; } = "Chain consistency run";
    /// <summary>Anything else worth a line in the header (cluster layout, commit, host).</summary>
    public IReadOnlyDictionary<string, string> Extra { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// A self-contained HTML report of one run: inline CSS and SVG, no scripts, fonts or external resources. Header with
/// run metadata, operation counts and faults; every checker's verdict; a per-client timeline of operations and a
/// latency scatter, both with fault periods shaded; and for every invalid verdict the operations of the failing key
/// around the failure with the witness highlighted. Bounded in size: at most <see cref="MaxTimelineOps"/> operations
/// on the timeline, <see cref="MaxScatterPoints"/> latency points and <see cref="MaxWitnessOps"/> per witness; the
/// report says when it left some out. The output is also well-formed XML.
/// </summary>
public static class HtmlReport
{
    public const int MaxTimelineOps = 2_000;
    public const int MaxTimelineClients = 60;
    public const int MaxScatterPoints = 4_000;
    public const int MaxWitnessOps = 40;
    /// <summary>Operations of the linearized prefix shown before a linearizability failure.</summary>
    public const int MaxPrefixOps = 12;
    public const int MaxDetailLines = 50;
    private const int ChartWidth = 1100;
    private const int LeftMargin = 70;
    private const int RowHeight = 12;

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>One line for stdout: seed, workload, counts, faults and every verdict.</summary>
    public static string Summary(RunInfo run, IReadOnlyList<Operation> history, IReadOnlyList<FaultPeriod> faults, IReadOnlyList<CheckerVerdict> verdicts)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(faults);
        ArgumentNullException.ThrowIfNull(verdicts);
        var overall = CheckerVerdict.ExitCode(verdicts) switch { 0 => "VALID", 1 => "INVALID", _ => "UNKNOWN" };
        var checks = string.Join(", ", verdicts.Select(v => $"{v.Checker} {v.Verdict.ToString().ToUpperInvariant()}"
            + (v.Verdict == Verdict.Invalid && v.InvalidKey is not null ? $" (key {v.InvalidKey})" : "")));
        return $"{overall}: seed {run.Seed}, {run.Workload}, {run.Duration.TotalSeconds.ToString("0.#", Inv)} s, " +
            $"{history.Count} ops ({Count(history, OpStatus.Ok)} ok, {Count(history, OpStatus.Fail)} fail, {Count(history, OpStatus.Info)} info), " +
            $"{faults.Count} faults; {checks}";
    }

    public static void Save(string path, RunInfo run, IReadOnlyList<Operation> history, IReadOnlyList<FaultPeriod> faults, IReadOnlyList<CheckerVerdict> verdicts) =>
        File.WriteAllText(path, Render(run, history, faults, verdicts), new UTF8Encoding(false));

    public static string Render(RunInfo run, IReadOnlyList<Operation> history, IReadOnlyList<FaultPeriod> faults, IReadOnlyList<CheckerVerdict> verdicts)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(faults);
        ArgumentNullException.ThrowIfNull(verdicts);
        if (run.TicksPerSecond <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(run), "ticks per second must be positive");
        }

        var clock = Clock.For(run, history, faults);
        var html = new StringBuilder(64 * 1024);
        html.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n<title>")
            .Append(E(run.Title)).Append(" — seed ").Append(E(run.Seed)).Append("</title>\n<style>\n").Append(Css).Append("</style>\n</head>\n<body>\n");
        Header(html, run, history, faults, verdicts, clock);
        Verdicts(html, verdicts);
        Timeline(html, history, faults, clock);
        Latency(html, history, faults, clock);
        Witnesses(html, history, verdicts, clock);
        html.Append("<p class=\"foot\">Generated ").Append(E(DateTimeOffset.UtcNow.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", Inv)))
            .Append(". Times are seconds since the first event of the run.</p>\n</body>\n</html>\n");
        return html.ToString();
    }

    private const string Css = """
        body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1200px; }
        h1 { font-size: 1.4em; margin-bottom: 0.2em; }
        h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
        table { border-collapse: collapse; margin: 0.5em 0; }
        td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; font-size: 0.9em; }
        th { background: #f0f0f0; }
        .Valid { color: #1a7f37; font-weight: bold; }
        .Invalid { color: #cf222e; font-weight: bold; }
        .Unknown { color: #9a6700; font-weight: bold; }
        .note { color: #666; font-size: 0.85em; }
        .foot { color: #888; font-size: 0.8em; margin-top: 2em; }
        .mono { font-family: monospace; }
        tr.hl td { background: #ffe0e0; }
        tr.stuck td { background: #ffb0b0; font-weight: bold; }
        svg { border: 1px solid #ddd; background: #fff; }
        svg text { font-size: 10px; fill: #444; }
        rect.fault { fill: #f4a261; fill-opacity: 0.25; }
        rect.ok { fill: #2da44e; }
        rect.fail { fill: #cf222e; }
        rect.info { fill: #bf8700; }
        rect.hl { stroke: #000; stroke-width: 1.5; }
        rect.stuck { stroke: #cf222e; stroke-width: 3; }
        circle.ok { fill: #2da44e; fill-opacity: 0.6; }
        circle.fail { fill: #cf222e; fill-opacity: 0.8; }
        circle.info { fill: #bf8700; fill-opacity: 0.8; }
        line.axis { stroke: #999; stroke-width: 1; }
        .legend span { display: inline-block; padding: 0 6px; margin-right: 6px; color: #fff; font-size: 0.8em; }

        """;

    /// <summary>Maps the history's ticks to seconds since the first event and to x coordinates.</summary>
    private sealed record Clock(long Origin, long End, long TicksPerSecond)
    {
        public static Clock For(RunInfo run, IReadOnlyList<Operation> history, IReadOnlyList<FaultPeriod> faults)
        {
            var starts = history.Select(o => o.CallTicks).Concat(faults.Select(f => f.StartTicks)).ToList();
            var ends = history.Select(o => o.ReturnTicks).Where(t => t != long.MaxValue)
                .Concat(history.Select(o => o.CallTicks)).Concat(faults.Select(f => f.EndTicks)).ToList();
            var origin = starts.Count > 0 ? starts.Min() : 0;
            var end = ends.Count > 0 ? Math.Max(ends.Max(), origin + 1) : origin + 1;
            return new Clock(origin, end, run.TicksPerSecond);
        }

        public double Seconds(long ticks) => (double)(ticks - Origin) / TicksPerSecond;

        public double Millis(long ticks) => ticks * 1000.0 / TicksPerSecond;

        public double X(long ticks, long from, long to)
        {
            var t = Math.Clamp(ticks, from, to);
            return LeftMargin + (double)(t - from) / Math.Max(1, to - from) * (ChartWidth - LeftMargin - 10);
        }
    }

    private static void Header(StringBuilder html, RunInfo run, IReadOnlyList<Operation> history, IReadOnlyList<FaultPeriod> faults,
        IReadOnlyList<CheckerVerdict> verdicts, Clock clock)
    {
        var exit = CheckerVerdict.ExitCode(verdicts);
        var overall = exit switch { 0 => Verdict.Valid, 1 => Verdict.Invalid, _ => Verdict.Unknown };
        html.Append("<h1>").Append(E(run.Title)).Append(": <span class=\"").Append(overall).Append("\" id=\"overall\">")
            .Append(overall.ToString().ToUpperInvariant()).Append("</span></h1>\n");
        html.Append("<table id=\"run\">\n");
        Row(html, "seed", run.Seed);
        Row(html, "workload", run.Workload);
        Row(html, "duration", run.Duration.TotalSeconds.ToString("0.###", Inv) + " s");
        foreach (var (name, value) in run.Extra.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            Row(html, name, value);
        }

        Row(html, "operations", $"{history.Count} total: {Count(history, OpStatus.Ok)} ok, {Count(history, OpStatus.Fail)} fail, {Count(history, OpStatus.Info)} info");
        Row(html, "by kind", string.Join(", ", Enum.GetValues<OpKind>().Select(k => $"{history.Count(o => o.Kind == k)} {k.ToString().ToLowerInvariant()}")));
        Row(html, "keys / clients", $"{history.Select(o => o.Key).Distinct(StringComparer.Ordinal).Count()} keys, {history.Select(o => o.Client).Distinct().Count()} client ids");
        Row(html, "exit code", exit.ToString(Inv));
        html.Append("</table>\n");

        html.Append("<h2>Faults</h2>\n");
        if (faults.Count == 0)
        {
            html.Append("<p class=\"note\">No faults were injected.</p>\n");
            return;
        }

        html.Append("<table id=\"faults\">\n<tr><th>fault</th><th>start (s)</th><th>end (s)</th><th>length (s)</th></tr>\n");
        foreach (var fault in faults.OrderBy(f => f.StartTicks))
        {
            html.Append("<tr><td>").Append(E(fault.Name)).Append("</td><td>").Append(S(clock.Seconds(fault.StartTicks)))
                .Append("</td><td>").Append(S(clock.Seconds(fault.EndTicks))).Append("</td><td>")
                .Append(S((double)(fault.EndTicks - fault.StartTicks) / clock.TicksPerSecond)).Append("</td></tr>\n");
        }

        html.Append("</table>\n");
    }

    private static void Verdicts(StringBuilder html, IReadOnlyList<CheckerVerdict> verdicts)
    {
        html.Append("<h2>Verdicts</h2>\n<table id=\"verdicts\">\n<tr><th>checker</th><th>verdict</th><th>summary</th></tr>\n");
        foreach (var verdict in verdicts)
        {
            html.Append("<tr class=\"verdict\"><td>").Append(E(verdict.Checker)).Append("</td><td class=\"").Append(verdict.Verdict).Append("\">")
                .Append(verdict.Verdict.ToString().ToUpperInvariant()).Append("</td><td>").Append(E(verdict.Summary));
            var details = verdict.Details.Take(MaxDetailLines).ToList();
            if (details.Count > 0)
            {
                html.Append("<ul>");
                foreach (var line in details)
                {
                    html.Append("<li class=\"mono\">").Append(E(line)).Append("</li>");
                }

                html.Append("</ul>");
                if (verdict.Details.Count > details.Count)
                {
                    html.Append("<p class=\"note\">").Append(verdict.Details.Count - details.Count).Append(" more lines not shown.</p>");
                }
            }

            html.Append("</td></tr>\n");
        }

        html.Append("</table>\n");
    }

    private static void Timeline(StringBuilder html, IReadOnlyList<Operation> history, IReadOnlyList<FaultPeriod> faults, Clock clock)
    {
        html.Append("<h2>Operations per client</h2>\n")
            .Append("<p class=\"legend\"><span style=\"background:#2da44e\">ok</span><span style=\"background:#cf222e\">fail</span>")
            .Append("<span style=\"background:#bf8700\">info</span><span style=\"background:#f4a261\">fault in effect</span>")
            .Append(" Hover over a bar for the operation.</p>\n");
        var ordered = history.OrderBy(o => o.CallTicks).ThenBy(o => o.Id).ToList();
        if (ordered.Count == 0)
        {
            html.Append("<p class=\"note\">The history is empty.</p>\n");
            return;
        }

        var drawn = ordered.Take(MaxTimelineOps).ToList();
        var clients = drawn.Select(o => o.Client).Distinct().Order().Take(MaxTimelineClients).ToList();
        var row = clients.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i);
        drawn = drawn.Where(o => row.ContainsKey(o.Client)).ToList();
        var from = clock.Origin;
        var to = ordered.Count > MaxTimelineOps
            ? drawn.Max(o => Finite(o.ReturnTicks, o.CallTicks))
            : clock.End;
        var omitted = history.Count - drawn.Count;
        if (omitted > 0)
        {
            html.Append("<p class=\"note\" id=\"timeline-capped\">Showing the first ").Append(drawn.Count)
                .Append(" operations (up to ").Append(S(clock.Seconds(to))).Append(" s, at most ").Append(MaxTimelineClients)
                .Append(" clients); ").Append(omitted).Append(" operations are not drawn to keep this report small.</p>\n");
        }

        var height = clients.Count * RowHeight + 30;
        html.Append("<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"").Append(ChartWidth).Append("\" height=\"").Append(height).Append("\">\n");
        FaultShading(html, faults, clock, from, to, 0, height - 20);
        for (var i = 0; i < clients.Count; i++)
        {
            html.Append("<text x=\"2\" y=\"").Append(i * RowHeight + 9).Append("\">client ").Append(clients[i]).Append("</text>\n");
        }

        foreach (var op in drawn)
        {
            var x1 = clock.X(op.CallTicks, from, to);
            var x2 = Math.Max(x1 + 1, clock.X(Finite(op.ReturnTicks, to), from, to));
            html.Append("<rect class=\"").Append(StatusClass(op.Status)).Append("\" x=\"").Append(N(x1)).Append("\" y=\"").Append(row[op.Client] * RowHeight + 1)
                .Append("\" width=\"").Append(N(x2 - x1)).Append("\" height=\"").Append(RowHeight - 3).Append("\"><title>")
                .Append(E(Describe(op, clock))).Append("</title></rect>\n");
        }

        Axis(html, clock, from, to, height - 20);
        html.Append("</svg>\n");
    }

    private static void Latency(StringBuilder html, IReadOnlyList<Operation> history, IReadOnlyList<FaultPeriod> faults, Clock clock)
    {
        html.Append("<h2>Latency over time</h2>\n");
        var points = history.Where(o => o.ReturnTicks != long.MaxValue).OrderBy(o => o.CallTicks).ThenBy(o => o.Id).ToList();
        if (points.Count == 0)
        {
            html.Append("<p class=\"note\">No completed operations.</p>\n");
            return;
        }

        if (points.Count > MaxScatterPoints)
        {
            // Every k-th point over the whole run, plus every fail and info so that none of those is hidden.
            var stride = (points.Count + MaxScatterPoints - 1) / MaxScatterPoints;
            var sampled = points.Where((o, i) => i % stride == 0 || o.Status != OpStatus.Ok).Take(MaxScatterPoints).ToList();
            html.Append("<p class=\"note\" id=\"latency-sampled\">Showing ").Append(sampled.Count).Append(" of ").Append(points.Count)
                .Append(" operations (every ").Append(stride).Append("th ok one, all fail and info ones up to the cap).</p>\n");
            points = sampled;
        }

        var latencies = points.Select(o => clock.Millis(o.ReturnTicks - o.CallTicks)).ToList();
        var max = Math.Max(1e-3, latencies.Max());
        const int height = 260, plotTop = 10, plotBottom = 230;
        var from = clock.Origin;
        var to = clock.End;
        html.Append("<svg id=\"latency\" xmlns=\"http://www.w3.org/2000/svg\" width=\"").Append(ChartWidth).Append("\" height=\"").Append(height).Append("\">\n");
        FaultShading(html, faults, clock, from, to, plotTop, plotBottom);
        for (var tick = 0; tick <= 4; tick++)
        {
            var value = max * tick / 4;
            var y = plotBottom - (plotBottom - plotTop) * tick / 4.0;
            html.Append("<line class=\"axis\" x1=\"").Append(LeftMargin - 4).Append("\" x2=\"").Append(LeftMargin).Append("\" y1=\"").Append(N(y)).Append("\" y2=\"").Append(N(y)).Append("\" />")
                .Append("<text x=\"2\" y=\"").Append(N(y + 3)).Append("\">").Append(value.ToString("0.#", Inv)).Append(" ms</text>\n");
        }

        for (var i = 0; i < points.Count; i++)
        {
            var op = points[i];
            var y = plotBottom - (plotBottom - plotTop) * latencies[i] / max;
            html.Append("<circle class=\"").Append(StatusClass(op.Status)).Append("\" cx=\"").Append(N(clock.X(op.CallTicks, from, to)))
                .Append("\" cy=\"").Append(N(y)).Append("\" r=\"2\"><title>").Append(E(Describe(op, clock))).Append("</title></circle>\n");
        }

        Axis(html, clock, from, to, plotBottom);
        html.Append("</svg>\n");
    }

    private static void Witnesses(StringBuilder html, IReadOnlyList<Operation> history, IReadOnlyList<CheckerVerdict> verdicts, Clock clock)
    {
        var invalid = verdicts.Where(v => v.Verdict == Verdict.Invalid && v.InvalidKey is not null).ToList();
        if (invalid.Count == 0)
        {
            return;
        }

        html.Append("<h2>Failure witnesses</h2>\n");
        foreach (var verdict in invalid)
        {
            var key = verdict.InvalidKey!;
            var keyOps = history.Where(o => string.Equals(o.Key, key, StringComparison.Ordinal) && o.Status != OpStatus.Fail)
                .OrderBy(o => o.CallTicks).ThenBy(o => o.Id).ToList();
            var witness = new HashSet<int>(verdict.WitnessIds ?? []);
            var (window, stuck) = verdict.Checker == "linearizability"
                ? LinearizabilityWindow(keyOps, witness)
                : EvidenceWindow(keyOps, witness);
            html.Append("<div class=\"witness\"><h3>").Append(E(verdict.Checker)).Append(": key <span class=\"mono\">").Append(E(key)).Append("</span></h3>\n");
            html.Append("<p class=\"note\">").Append(verdict.Checker == "linearizability"
                ? "Highlighted: operations of this key that could not be linearized after the longest linearizable prefix " +
                  "(the darkest one returned first: nothing consistent fits before its return). Plain rows: the end of that prefix, in time order."
                : "Highlighted: the operations that prove the violation; the others are this key's operations between them.")
                .Append(" Showing ").Append(window.Count).Append(" of ").Append(keyOps.Count).Append(" operations on the key (fail operations omitted).</p>\n");

            WitnessChart(html, window, witness, stuck, verdict.Checker == "linearizability", clock);
            html.Append("<table class=\"witness-ops\">\n<tr><th>id</th><th>client</th><th>kind</th><th>input</th><th>expected</th><th>output</th>")
                .Append("<th>status</th><th>call (s)</th><th>return (s)</th></tr>\n");
            foreach (var op in window)
            {
                var highlighted = verdict.Checker == "linearizability" ? !witness.Contains(op.Id) : witness.Contains(op.Id);
                var cls = op.Id == stuck ? " class=\"stuck\"" : highlighted ? " class=\"hl\"" : "";
                html.Append("<tr").Append(cls).Append("><td>").Append(op.Id).Append("</td><td>").Append(op.Client).Append("</td><td>").Append(op.Kind)
                    .Append("</td><td class=\"mono\">").Append(op.Kind == OpKind.Read ? "" : V(op.Input)).Append("</td><td class=\"mono\">").Append(op.Kind == OpKind.Cas ? V(op.ExpectedOld) : "")
                    .Append("</td><td class=\"mono\">").Append(op.Kind == OpKind.Write ? "" : V(op.Output)).Append("</td><td>").Append(op.Status)
                    .Append("</td><td>").Append(S(clock.Seconds(op.CallTicks))).Append("</td><td>")
                    .Append(op.ReturnTicks == long.MaxValue ? "∞" : S(clock.Seconds(op.ReturnTicks))).Append("</td></tr>\n");
            }

            html.Append("</table>\n</div>\n");
        }
    }

    /// <summary>
    /// The failure of a linearizability search: the operation not in the linearized prefix that returns first (the
    /// search could not place anything consistent before that return), the operations not linearized that were called
    /// by then, and the last operations of the prefix.
    /// </summary>
    private static (List<Operation> Window, int? Stuck) LinearizabilityWindow(List<Operation> keyOps, HashSet<int> witness)
    {
        var pending = keyOps.Where(o => !witness.Contains(o.Id) && !(o.Kind == OpKind.Read && o.Status == OpStatus.Info)).ToList();
        if (pending.Count == 0)
        {
            return (keyOps.TakeLast(MaxWitnessOps).ToList(), null);
        }

        var stuck = pending.MinBy(o => o.Status == OpStatus.Info ? long.MaxValue : o.ReturnTicks)!;
        var stuckReturn = stuck.Status == OpStatus.Info ? stuck.CallTicks : stuck.ReturnTicks;
        var blocked = pending.Where(o => o.CallTicks <= stuckReturn).Take(MaxWitnessOps / 2).ToList();
        var prefix = keyOps.Where(o => witness.Contains(o.Id) && o.CallTicks <= stuckReturn)
            .TakeLast(Math.Min(MaxPrefixOps, MaxWitnessOps - blocked.Count)).ToList();
        var window = prefix.Concat(blocked).DistinctBy(o => o.Id).OrderBy(o => o.CallTicks).ThenBy(o => o.Id).ToList();
        return (window, stuck.Id);
    }

    /// <summary>The evidence operations and the key's operations between the first and the last of them.</summary>
    private static (List<Operation> Window, int? Stuck) EvidenceWindow(List<Operation> keyOps, HashSet<int> evidence)
    {
        var marked = keyOps.Where(o => evidence.Contains(o.Id)).ToList();
        if (marked.Count == 0)
        {
            return (keyOps.Take(MaxWitnessOps).ToList(), null);
        }

        var start = marked.Min(o => o.CallTicks);
        var end = marked.Max(o => Finite(o.ReturnTicks, o.CallTicks));
        var between = keyOps.Where(o => !evidence.Contains(o.Id) && o.CallTicks >= start && o.CallTicks <= end)
            .Take(Math.Max(0, MaxWitnessOps - marked.Count));
        return (marked.Concat(between).OrderBy(o => o.CallTicks).ThenBy(o => o.Id).ToList(), null);
    }

    private static void WitnessChart(StringBuilder html, List<Operation> window, HashSet<int> witness, int? stuck, bool prefixIsWitness, Clock clock)
    {
        if (window.Count == 0)
        {
            return;
        }

        var from = window.Min(o => o.CallTicks);
        var to = Math.Max(from + 1, window.Max(o => Finite(o.ReturnTicks, o.CallTicks)));
        var pad = Math.Max(1, (to - from) / 20);
        from -= pad;
        to += pad;
        var height = window.Count * RowHeight + 30;
        html.Append("<svg class=\"witness-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"").Append(ChartWidth).Append("\" height=\"").Append(height).Append("\">\n");
        for (var i = 0; i < window.Count; i++)
        {
            var op = window[i];
            var highlighted = prefixIsWitness ? !witness.Contains(op.Id) : witness.Contains(op.Id);
            var x1 = clock.X(op.CallTicks, from, to);
            var x2 = Math.Max(x1 + 2, clock.X(Finite(op.ReturnTicks, to), from, to));
            html.Append("<text x=\"2\" y=\"").Append(i * RowHeight + 9).Append("\">op ").Append(op.Id).Append("</text>")
                .Append("<rect class=\"").Append(StatusClass(op.Status)).Append(op.Id == stuck ? " stuck" : highlighted ? " hl" : "").Append("\" x=\"").Append(N(x1)).Append("\" y=\"")
                .Append(i * RowHeight + 1).Append("\" width=\"").Append(N(x2 - x1)).Append("\" height=\"").Append(RowHeight - 3).Append('"')
                .Append("><title>").Append(E(Describe(op, clock))).Append("</title></rect>")
                .Append("<text x=\"").Append(N(x2 + 130 < ChartWidth ? x2 + 3 : x1 - 3)).Append("\" y=\"").Append(i * RowHeight + 9)
                .Append(x2 + 130 < ChartWidth ? "\">" : "\" text-anchor=\"end\">")
                .Append(E(Short(op))).Append("</text>\n");
        }

        Axis(html, clock, from, to, height - 20);
        html.Append("</svg>\n");
    }

    private static void FaultShading(StringBuilder html, IReadOnlyList<FaultPeriod> faults, Clock clock, long from, long to, int top, int bottom)
    {
        foreach (var fault in faults)
        {
            if (fault.EndTicks < from || fault.StartTicks > to)
            {
                continue;
            }

            var x1 = clock.X(fault.StartTicks, from, to);
            var x2 = Math.Max(x1 + 1, clock.X(fault.EndTicks, from, to));
            html.Append("<rect class=\"fault\" x=\"").Append(N(x1)).Append("\" y=\"").Append(top).Append("\" width=\"").Append(N(x2 - x1))
                .Append("\" height=\"").Append(bottom - top).Append("\"><title>").Append(E(fault.Name)).Append(": ")
                .Append(S(clock.Seconds(fault.StartTicks))).Append(" s – ").Append(S(clock.Seconds(fault.EndTicks))).Append(" s</title></rect>\n");
        }
    }

    private static void Axis(StringBuilder html, Clock clock, long from, long to, int y)
    {
        html.Append("<line class=\"axis\" x1=\"").Append(LeftMargin).Append("\" x2=\"").Append(ChartWidth - 10).Append("\" y1=\"").Append(y).Append("\" y2=\"").Append(y).Append("\" />\n");
        for (var tick = 0; tick <= 10; tick++)
        {
            var t = from + (long)((to - from) * (tick / 10.0));
            var x = clock.X(t, from, to);
            html.Append("<text x=\"").Append(N(x - 10)).Append("\" y=\"").Append(y + 14).Append("\">").Append(S(clock.Seconds(t))).Append(" s</text>\n");
        }
    }

    private static string Describe(Operation op, Clock clock)
    {
        var text = new StringBuilder();
        text.Append("op ").Append(op.Id).Append(" client ").Append(op.Client).Append(' ').Append(op.Kind.ToString().ToLowerInvariant())
            .Append(" key ").Append(op.Key);
        switch (op.Kind)
        {
            case OpKind.Read:
                text.Append(" → ").Append(op.Output ?? "(absent)");
                break;
            case OpKind.Write:
                text.Append(" ← ").Append(op.Input);
                break;
            case OpKind.Cas:
                text.Append(' ').Append(op.ExpectedOld ?? "(absent)").Append(" → ").Append(op.Input).Append(": ").Append(op.Output);
                break;
        }

        if (op.Version is { } version)
        {
            text.Append(" v").Append(version);
        }

        text.Append(" [").Append(op.Status.ToString().ToLowerInvariant()).Append("] ").Append(S(clock.Seconds(op.CallTicks))).Append(" s");
        if (op.ReturnTicks != long.MaxValue)
        {
            text.Append(", ").Append(clock.Millis(op.ReturnTicks - op.CallTicks).ToString("0.###", Inv)).Append(" ms");
        }

        return text.ToString();
    }

    /// <summary>A short label: "w v1", "r v1", "cas v1→v2 ok", with "?" for an unknown outcome.</summary>
    private static string Short(Operation op)
    {
        var label = op.Kind switch
        {
            OpKind.Read => "r " + (op.Output ?? "(absent)"),
            OpKind.Write => "w " + op.Input,
            _ => $"cas {op.ExpectedOld ?? "(absent)"}→{op.Input} {op.Output}",
        };
        label = op.Status == OpStatus.Info ? label + " ?" : label;
        return label.Length > 40 ? label[..39] + "…" : label;
    }

    private static void Row(StringBuilder html, string name, string value) =>
        html.Append("<tr><th>").Append(E(name)).Append("</th><td>").Append(E(value)).Append("</td></tr>\n");

    private static int Count(IReadOnlyList<Operation> history, OpStatus status) => history.Count(o => o.Status == status);

    private static long Finite(long ticks, long fallback) => ticks == long.MaxValue ? fallback : ticks;

    private static string StatusClass(OpStatus status) => status switch
    {
        OpStatus.Ok => "ok",
        OpStatus.Fail => "fail",
        _ => "info",
    };

    /// <summary>HTML/XML escape of text and attribute values.</summary>
    private static string E(string text)
    {
        // Control characters are not allowed in XML at all: show them as U+FFFD.
        if (text.Any(c => c < ' ' && c is not ('\t' or '\n' or '\r')))
        {
            text = new string(text.Select(c => c < ' ' && c is not ('\t' or '\n' or '\r') ? '\uFFFD' : c).ToArray());
        }

        return WebUtility.HtmlEncode(text);
    }

    private static string V(string? value) => value is null ? "<i>absent</i>" : E(value);

    private static string S(double seconds) => seconds.ToString("0.###", Inv);

    private static string N(double value) => value.ToString("0.#", Inv);
}
