using System.Runtime.InteropServices;
using Chain.Cli;

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

return await CliApp.RunAsync(args, CliIo.FromSystemConsole(cancellation.Token));
