using Chain.Client;
using Spectre.Console;

namespace Chain.Cli;

/// <summary>Everything the commands touch outside themselves, so tests can run them against string writers.</summary>
public sealed class CliIo
{
    /// <summary>Plain text output (listings, results).</summary>
    public required TextWriter Out { get; init; }

    /// <summary>Errors, warnings, usage.</summary>
    public required TextWriter Err { get; init; }

    /// <summary>Rich output (tables, progress bars) on the same stream as <see cref="Out"/>.</summary>
    public required IAnsiConsole Console { get; init; }

    /// <summary>Raw standard output for 'get KEY -'.</summary>
    public required Func<Stream> OpenStandardOutput { get; init; }

    /// <summary>Whether standard output is a terminal.</summary>
    public bool OutputIsTerminal { get; init; }

    /// <summary>Rich output on standard error: progress bars, which never go to standard output.</summary>
    public IAnsiConsole? ErrorConsole { get; init; }

    /// <summary>Whether standard error is a terminal (progress bars only then).</summary>
    public bool ErrorIsTerminal { get; init; }

    /// <summary>$CHAIN_MASTER.</summary>
    public string? EnvironmentMaster { get; init; }

    /// <summary>Print stack traces of failures ($CHAIN_DEBUG=1).</summary>
    public bool Debug { get; init; }

    /// <summary>Cancelled by Ctrl-C or SIGTERM.</summary>
    public CancellationToken Cancellation { get; init; }

    public Func<Uri, ChainClient> ClientFactory { get; init; } = master => new ChainClient(new ChainClientOptions { Master = master });

    /// <summary>The real console.</summary>
    public static CliIo FromSystemConsole(CancellationToken cancellation)
    {
        bool redirected = System.Console.IsOutputRedirected;
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(System.Console.Out),
            // No escape codes in files and pipes.
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Detect,
        });
        if (redirected)
        {
            // Logs and pipes: wide enough that tables do not wrap addresses.
            console.Profile.Width = 200;
        }
        bool errorRedirected = System.Console.IsErrorRedirected;
        IAnsiConsole errorConsole = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(System.Console.Error),
            Ansi = errorRedirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = errorRedirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = errorRedirected ? InteractionSupport.No : InteractionSupport.Detect,
        });
        return new CliIo
        {
            Out = System.Console.Out,
            Err = System.Console.Error,
            Console = console,
            OpenStandardOutput = System.Console.OpenStandardOutput,
            OutputIsTerminal = !redirected,
            ErrorConsole = errorConsole,
            ErrorIsTerminal = !errorRedirected,
            EnvironmentMaster = Environment.GetEnvironmentVariable(CommandLine.MasterEnvironmentVariable),
            Debug = Environment.GetEnvironmentVariable("CHAIN_DEBUG") is "1" or "true",
            Cancellation = cancellation,
        };
    }

    /// <summary>A console that renders plain text into <paramref name="writer"/> (tests).</summary>
    public static IAnsiConsole PlainConsole(TextWriter writer, int width = 200)
    {
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = width;
        return console;
    }
}
