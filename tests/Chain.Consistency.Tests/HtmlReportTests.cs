using System.Diagnostics;
using System.Xml;
using System.Xml.Linq;
using Chain.Consistency.Report;
using static Chain.Consistency.Tests.Ops;

namespace Chain.Consistency.Tests;

public class HtmlReportTests
{
    private static readonly RunInfo Run = new("seed-42", "register, 3 keys", TimeSpan.FromSeconds(12.5))
    {
        TicksPerSecond = 1_000,
        Extra = new Dictionary<string, string> { ["cluster"] = "3 nodes, 1 chain" },
    };

    private static XDocument Parse(string html)
    {
        var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore };
        using var reader = XmlReader.Create(new StringReader(html), settings);
        return XDocument.Load(reader);
    }

    private static IEnumerable<XElement> All(XDocument doc, string name) => doc.Descendants().Where(e => e.Name.LocalName == name);

    private static List<Operation> BadHistory() =>
    [
        Write(1, "<k&>", "<script>alert(1)</script>", 0, 100, client: 1),
        Write(2, "<k&>", "b\"'", 200, 300, client: 2),
        Read(3, "<k&>", "<script>alert(1)</script>", 400, 500, client: 3), // stale
        Write(4, "calm", "x", 50, 60, client: 4),
        Read(5, "calm", "x", 70, 80, client: 4),
        Write(6, "calm", "y", 90, 5_000, OpStatus.Info, client: 5),
        Write(7, "calm", "z", 600, 700, OpStatus.Fail, client: 6),
    ];

    [Fact]
    public void ReportIsWellFormedSelfContainedAndEscapesKeysAndValues()
    {
        var history = BadHistory();
        var verdicts = HistoryCheckers.CheckAll(history, TimeSpan.FromSeconds(5));
        FaultPeriod[] faults = [new("pause node2 <tail>", 150, 450), new("kill master", 800, 900)];
        var html = HtmlReport.Render(Run, history, faults, verdicts);

        var doc = Parse(html); // throws if not well-formed
        Assert.StartsWith("<!DOCTYPE html>", html);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", html);
        Assert.Contains("&lt;k&amp;&gt;", html);
        Assert.DoesNotContain("<link", html);
        Assert.DoesNotContain("src=", html);
        Assert.DoesNotContain("@import", html);
        Assert.DoesNotContain("url(", html);
        // The only URL is the SVG namespace.
        Assert.All(System.Text.RegularExpressions.Regex.Matches(html, "https?://[^\"]*").Select(m => m.Value),
            url => Assert.Equal("http://www.w3.org/2000/svg", url));

        // Header: seed, workload, counts, faults.
        Assert.Contains("seed-42", html);
        Assert.Contains("register, 3 keys", html);
        Assert.Contains("7 total: 5 ok, 1 fail, 1 info", html);
        Assert.Equal(2, All(doc, "table").Single(t => (string?)t.Attribute("id") == "faults").Elements().Count(e => e.Name.LocalName == "tr") - 1);
        Assert.Contains("pause node2 &lt;tail&gt;", html);

        // Verdicts: overall and per checker.
        Assert.Equal("INVALID", All(doc, "span").Single(s => (string?)s.Attribute("id") == "overall").Value);
        var rows = All(doc, "tr").Where(r => (string?)r.Attribute("class") == "verdict").ToList();
        Assert.Equal(2, rows.Count);
        Assert.Contains(rows, r => r.Value.Contains("linearizability", StringComparison.Ordinal) && r.Value.Contains("INVALID", StringComparison.Ordinal));
        Assert.Contains(rows, r => r.Value.Contains("no-duplicates", StringComparison.Ordinal) && r.Value.Contains("VALID", StringComparison.Ordinal));

        // Charts: fault shading in both the timeline and the latency plot, one bar per drawn op with a hover title.
        var timeline = All(doc, "svg").Single(s => (string?)s.Attribute("id") == "timeline");
        var latency = All(doc, "svg").Single(s => (string?)s.Attribute("id") == "latency");
        Assert.Equal(2, timeline.Elements().Count(e => e.Name.LocalName == "rect" && (string?)e.Attribute("class") == "fault"));
        Assert.Equal(2, latency.Elements().Count(e => e.Name.LocalName == "rect" && (string?)e.Attribute("class") == "fault"));
        var bars = timeline.Elements().Where(e => e.Name.LocalName == "rect" && (string?)e.Attribute("class") != "fault").ToList();
        Assert.Equal(history.Count, bars.Count);
        Assert.Contains(bars, b => (string?)b.Attribute("class") == "info");
        Assert.Contains(bars, b => (string?)b.Attribute("class") == "fail");
        Assert.All(bars, b => Assert.Single(b.Elements(), e => e.Name.LocalName == "title"));

        // The witness of the invalid key: its three operations, the stale read marked as where the search got stuck.
        var witness = All(doc, "div").Single(d => (string?)d.Attribute("class") == "witness");
        Assert.Contains("<k&>", witness.Value);
        var witnessRows = witness.Descendants().Where(e => e.Name.LocalName == "tr").Skip(1).ToList();
        Assert.Equal(["1", "2", "3"], witnessRows.Select(r => r.Elements().First().Value));
        Assert.Equal("stuck", (string?)witnessRows[2].Attribute("class"));
        Assert.Null(witnessRows[0].Attribute("class"));
        var chart = witness.Descendants().Single(e => e.Name.LocalName == "svg");
        var stuckBars = chart.Elements().Where(e => e.Name.LocalName == "rect" && ((string?)e.Attribute("class") ?? "").Contains("stuck", StringComparison.Ordinal)).ToList();
        Assert.Single(stuckBars);
        Assert.Contains("op 3 ", stuckBars[0].Value);
    }

    [Fact]
    public void ValidRunHasNoWitnessSectionAndSaysNoFaults()
    {
        List<Operation> history = [Write(1, "k", "a", 0, 10), Read(2, "k", "a", 20, 30)];
        var html = HtmlReport.Render(Run, history, [], HistoryCheckers.CheckAll(history, TimeSpan.FromSeconds(5)));
        var doc = Parse(html);
        Assert.Equal("VALID", All(doc, "span").Single(s => (string?)s.Attribute("id") == "overall").Value);
        Assert.DoesNotContain("class=\"witness\"", html);
        Assert.Contains("No faults were injected.", html);
    }

    [Fact]
    public void DuplicateWitnessHighlightsTheEvidence()
    {
        List<Operation> history =
        [
            Write(1, "k", "a", 0, 1),
            Read(2, "k", "a", 2, 3),
            Write(3, "k", "b", 4, 5),
            Read(4, "k", "b", 6, 7),
            Read(5, "k", "a", 8, 9),
        ];
        var verdicts = new[] { CheckerVerdict.From(DuplicateChecker.Check(history)) };
        var doc = Parse(HtmlReport.Render(Run, history, [], verdicts));
        var witnessRows = All(doc, "div").Single(d => (string?)d.Attribute("class") == "witness")
            .Descendants().Where(e => e.Name.LocalName == "tr").Skip(1).ToList();
        Assert.Equal(["2", "4", "5"], witnessRows.Where(r => (string?)r.Attribute("class") == "hl").Select(r => r.Elements().First().Value));
    }

    [Fact]
    public void LargeRunsAreCappedAndSaySo()
    {
        var history = HistoryGenerator.Generate(new GeneratorOptions { Operations = 20_000, Seed = 3 });
        var verdicts = HistoryCheckers.CheckAll(history, TimeSpan.FromSeconds(30));
        var end = history.Max(o => o.ReturnTicks);
        var run = Run with { TicksPerSecond = 10_000 };
        var stopwatch = Stopwatch.StartNew();
        var html = HtmlReport.Render(run, history, [new FaultPeriod("partition", end / 3, end / 2)], verdicts);
        stopwatch.Stop();

        var doc = Parse(html);
        Assert.True(html.Length < 3_000_000, $"report is {html.Length} characters");
        Assert.Contains("id=\"timeline-capped\"", html);
        Assert.Contains("id=\"latency-sampled\"", html);
        var timeline = All(doc, "svg").Single(s => (string?)s.Attribute("id") == "timeline");
        Assert.Equal(HtmlReport.MaxTimelineOps, timeline.Elements().Count(e => e.Name.LocalName == "rect" && (string?)e.Attribute("class") != "fault"));
        var latency = All(doc, "svg").Single(s => (string?)s.Attribute("id") == "latency");
        Assert.InRange(latency.Elements().Count(e => e.Name.LocalName == "circle"), 1, HtmlReport.MaxScatterPoints);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10), $"rendering took {stopwatch.Elapsed}");
    }

    [Fact]
    public void SummaryIsOneLineWithEveryVerdict()
    {
        var history = BadHistory();
        var verdicts = HistoryCheckers.CheckAll(history, TimeSpan.FromSeconds(5));
        var line = HtmlReport.Summary(Run, history, [new FaultPeriod("pause", 1, 2)], verdicts);
        Assert.DoesNotContain('\n', line);
        Assert.StartsWith("INVALID: seed seed-42", line);
        Assert.Contains("7 ops (5 ok, 1 fail, 1 info), 1 faults", line);
        Assert.Contains("linearizability INVALID (key <k&>)", line);
        Assert.Contains("no-duplicates VALID", line);
    }

    [Fact]
    public void ControlCharactersInKeysStayWellFormed()
    {
        List<Operation> history = [Write(1, "k\u0001\n", "a\u0002", 0, 10)];
        var html = HtmlReport.Render(Run, history, [], HistoryCheckers.CheckAll(history, TimeSpan.FromSeconds(5)));
        Parse(html);
        Assert.DoesNotContain('\u0001', html);
    }
}
