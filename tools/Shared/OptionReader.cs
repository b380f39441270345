using System.Globalization;

namespace Chain.Tools;

/// <summary>
/// Reads "--name value", "--name=value" and bare flags from a command line, one option at a time; compiled
/// into each benchmark program. Bad input becomes the program's own usage exception.
/// </summary>
internal sealed class OptionReader
{
    private readonly IReadOnlyList<string> _args;
    private readonly Func<string, Exception> _usage;
    private int _index = -1;

    public OptionReader(IReadOnlyList<string> args, Func<string, Exception> usage)
    {
        _args = args;
        _usage = usage;
    }

    /// <summary>The whole current argument.</summary>
    public string Argument { get; private set; } = "";
    /// <summary>The option name, without any "=value" part.</summary>
    public string Name { get; private set; } = "";
    /// <summary>The value given with "=", if any.</summary>
    public string? Inline { get; private set; }

    public bool MoveNext()
    {
        if (++_index >= _args.Count)
            return false;
        Argument = _args[_index];
        Name = Argument;
        Inline = null;
        int eq = Argument.IndexOf('=');
        if (Argument.StartsWith("--", StringComparison.Ordinal) && eq > 0)
        {
            Name = Argument[..eq];
            Inline = Argument[(eq + 1)..];
        }
        return true;
    }

    public string Value()
    {
        if (Inline is not null)
            return Inline;
        if (_index + 1 >= _args.Count)
            throw _usage($"option {Name} needs a value");
        return _args[++_index];
    }

    public int Int(int min, int max)
    {
        string text = Value();
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max
            ? value
            : throw _usage($"{Name} must be an integer between {min} and {max}, not '{text}'");
    }

    public double Double(double min, double max)
    {
        string text = Value();
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && value >= min && value <= max
            ? value
            : throw _usage($"{Name} must be a number between {min} and {max}, not '{text}'");
    }

    public Exception Unknown() => _usage($"unknown argument '{Argument}'");
}
