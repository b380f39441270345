using Microsoft.Extensions.Logging;

namespace Chain.Simulation.Runtime;

/// <summary>
/// The run's event log: harness events always (faults, operations), and the nodes' and master's own log lines
/// when <see cref="Verbose"/> (replaying one seed). Every line carries the virtual time and the process. Bounded.
/// </summary>
public sealed class SimLog : ILoggerFactory, ILoggerProvider
{
    private const int LinesMax = 200_000;
    private readonly SimExecutor _executor;
    private readonly List<string> _lines = new();

    public SimLog(SimExecutor executor, bool verbose, LogLevel level = LogLevel.Debug)
    {
        _executor = executor;
        Verbose = verbose;
        Level = level;
    }

    public bool Verbose { get; }
    public LogLevel Level { get; }
    public IReadOnlyList<string> Lines => _lines;

    public void Event(string text)
    {
        _executor.Mix((ulong)text.Length);
        Add("harness", text);
    }

    private void Add(string source, string text)
    {
        if (_lines.Count >= LinesMax)
            return;
        _lines.Add($"{_executor.Elapsed.TotalSeconds,10:F4}s {source,-10} {text}");
    }

    private string CurrentProcess() => Current?.Name ?? "harness";

    /// <summary>The process whose work item is running (set by the executor).</summary>
    internal SimProcess? Current => _executor.CurrentProcess;

    public ILogger CreateLogger(string categoryName) => Verbose ? new Logger(this, categoryName) : Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Logger(SimLog log, string category) : ILogger
    {
        private readonly string _short = category[(category.LastIndexOf('.') + 1)..];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= log.Level;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
                return;
            string text = $"{logLevel.ToString()[..4].ToLowerInvariant()} {_short}: {formatter(state, exception)}";
            if (exception is not null)
                text += " | " + exception.GetType().Name + ": " + exception.Message;
            log.Add(log.CurrentProcess(), text);
        }
    }
}
