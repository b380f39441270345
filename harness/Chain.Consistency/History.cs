using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Chain.Consistency;

/// <summary>Loads and saves histories as JSON lines, one <see cref="Operation"/> per line.</summary>
public static class History
{
    private static readonly JsonSerializerOptions Options = new()
    {
        Converters = { new JsonStringEnumConverter() },
        WriteIndented = false,
    };

    public static string Serialize(Operation operation) => JsonSerializer.Serialize(operation, Options);

    public static Operation Deserialize(string line) =>
        JsonSerializer.Deserialize<Operation>(line, Options)
        ?? throw new JsonException("history line deserialized to null");

    public static void Write(TextWriter writer, IEnumerable<Operation> history)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(history);
        foreach (var operation in history)
        {
            writer.Write(Serialize(operation));
            writer.Write('\n');
        }
    }

    public static List<Operation> Read(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var result = new List<Operation>();
        string? line;
        var lineNumber = 0;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            try
            {
                result.Add(Deserialize(line));
            }
            catch (JsonException ex)
            {
                throw new JsonException($"history line {lineNumber}: {ex.Message}", ex);
            }
        }

        return result;
    }

    public static void Save(string path, IEnumerable<Operation> history)
    {
        using var writer = new StreamWriter(path, append: false, new UTF8Encoding(false));
        Write(writer, history);
    }

    public static List<Operation> Load(string path)
    {
        using var reader = new StreamReader(path, Encoding.UTF8);
        return Read(reader);
    }
}
