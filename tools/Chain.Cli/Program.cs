using System.Runtime.InteropServices;
using Chain.Cli;
using Chain.Harness;

using var cancellation = new CancellationTokenSource();
// First Ctrl-C or SIGTERM: cancel the operation (or stop 'up' cleanly); a second Ctrl-C ends the process.
Console.CancelKeyPress += (_, e) =>
{
    if (cancellation.IsCancellationRequested)
        return;
    e.Cancel = true;
    cancellation.Cancel();
};
using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    cancellation.Cancel();
});

int exitCode = await CliApp.RunAsync(args, CliIo.FromSystemConsole(cancellation.Token));
// Hidden switch for the scale benchmark's memory proof: CHAIN_REPORT_PEAK_RSS=1 prints 'peak-rss-bytes N' on stderr.
ProcessMemory.ReportOwnPeakIfRequested(Console.Error, Environment.GetEnvironmentVariable(ProcessMemory.ReportPeakEnvironmentVariable));
return exitCode;
