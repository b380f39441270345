using Spectre.Console;

namespace Chain.Tools;

/// <summary>Console set-up shared by the benchmark programs.</summary>
internal static class BenchConsole
{
    /// <summary>When output goes to a file or pipe: no escape codes, and table rows on one line of this width.</summary>
    public static void PlainWhenRedirected(int width)
    {
        if (!Console.IsOutputRedirected)
            return;
        AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Console.Out),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        AnsiConsole.Profile.Width = width;
    }

    /// <summary>A source cancelled by the first Ctrl-C (the second one ends the process as usual).</summary>
    public static CancellationTokenSource CancelOnCtrlC()
    {
        var cancellation = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            if (cancellation.IsCancellationRequested)
                return;
            e.Cancel = true;
            cancellation.Cancel();
        };
        return cancellation;
    }
}
