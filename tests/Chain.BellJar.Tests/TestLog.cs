using System.Text;
using Xunit.Abstractions;

namespace Chain.BellJar.Tests;

/// <summary>A TextWriter that hands whole lines to xunit's test output.</summary>
internal sealed class TestLog : TextWriter
{
    private readonly ITestOutputHelper _output;
    private readonly StringBuilder _line = new();

    public TestLog(ITestOutputHelper output) => _output = output;

    public override Encoding Encoding => Encoding.UTF8;

    public override void Write(char value)
    {
        lock (_line)
        {
            if (value == '\n')
            {
                try
                {
                    _output.WriteLine(_line.ToString().TrimEnd('\r'));
                }
                catch (InvalidOperationException)
                {
                    // The test already ended (a background writer after the fact).
                }
                _line.Clear();
            }
            else
            {
                _line.Append(value);
            }
        }
    }
}

internal static class Root
{
    /// <summary>Fails (never silently passes) when not root: CI runs as root, so these tests always run there.</summary>
    public static void Require()
    {
        if (Chain.Harness.BellJar.SealedNetwork.Unavailable() is { } reason)
            Assert.Fail($"the BellJar tests need root with ip, iptables and ip6tables installed (scripts/setup-deps.sh): {reason}");
    }
}
