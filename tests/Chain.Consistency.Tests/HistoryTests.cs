namespace Chain.Consistency.Tests;

public class HistoryTests
{
    [Fact]
    public void RoundTripsThroughJsonLines()
    {
        Operation[] history =
        [
            new(1, "k", 3, OpKind.Write, "a", null, null, 10, 20, OpStatus.Ok),
            new(2, "k", 4, OpKind.Read, null, null, null, 11, 21, OpStatus.Info),
            new(3, "k\n\"x", 5, OpKind.Cas, "b", "a", "ok", 12, long.MaxValue, OpStatus.Fail),
        ];

        var writer = new StringWriter();
        History.Write(writer, history);
        var text = writer.ToString();
        Assert.Equal(3, text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Contains("\"Cas\"", text);

        var loaded = History.Read(new StringReader(text + "\n\n"));
        Assert.Equal(history, loaded);
    }

    [Fact]
    public void SavesAndLoadsFiles()
    {
        var path = Path.Combine(Path.GetTempPath(), $"chain-history-{Guid.NewGuid():N}.jsonl");
        try
        {
            Operation[] history = [new(7, "key", 1, OpKind.Write, "v", null, null, 1, 2, OpStatus.Ok)];
            History.Save(path, history);
            Assert.Equal(history, History.Load(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ReportsTheBadLine()
    {
        var ex = Assert.ThrowsAny<System.Text.Json.JsonException>(() => History.Read(new StringReader("{\"Id\":1}\nnot json\n")));
        Assert.Contains("line 2", ex.Message);
    }
}
