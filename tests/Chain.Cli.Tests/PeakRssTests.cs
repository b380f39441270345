using System.Diagnostics;
using Chain.Harness;
using Xunit;

namespace Chain.Cli.Tests;

/// <summary>Peak RSS from /proc and the hidden CHAIN_REPORT_PEAK_RSS switch of the chain command (used by Chain.ScaleBench --big-proof).</summary>
public class PeakRssTests
{
    private const string Status = "Name:\tdotnet\nVmPeak:\t 3000000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t   65432 kB\n";

    [Fact]
    public void Status_fields_are_read_in_bytes()
    {
        Assert.Equal(123456L * 1024, ProcessMemory.ParseStatusField(Status, "VmHWM"));
        Assert.Equal(65432L * 1024, ProcessMemory.ParseStatusField(Status, "VmRSS"));
    }

    [Theory]
    [InlineData("Name:\tx\n")]
    [InlineData("VmHWM:\t 12 MB\n")]
    [InlineData("VmHWM:\t -12 kB\n")]
    [InlineData("VmHWM:\t\n")]
    [InlineData("VmHWMX:\t 12 kB\n")]
    public void Missing_or_malformed_fields_are_null(string status) =>
        Assert.Null(ProcessMemory.ParseStatusField(status, "VmHWM"));

    [Fact]
    public void This_process_has_a_peak_at_least_its_current_resident_size()
    {
        // One snapshot for both fields: the resident size may grow between two reads.
        string status = File.ReadAllText($"/proc/{Environment.ProcessId}/status");
        long? peak = ProcessMemory.ParseStatusField(status, "VmHWM");
        long? resident = ProcessMemory.ParseStatusField(status, "VmRSS");
        Assert.NotNull(peak);
        Assert.NotNull(resident);
        Assert.True(peak >= resident, $"VmHWM {peak} < VmRSS {resident}");
        long? read = ProcessMemory.PeakResidentBytes(Environment.ProcessId);
        Assert.True(read >= peak, $"the peak read by pid ({read}) is below an earlier snapshot's ({peak})");
        Assert.True(ProcessMemory.OwnPeakResidentBytes() >= read);
    }

    [Fact]
    public void The_last_peak_line_of_stderr_wins_and_other_lines_are_ignored()
    {
        string stderr = "error: something\npeak-rss-bytes 12\r\npeak-rss-bytes nonsense\npeak-rss-bytes 345\ntrailing\n";
        Assert.Equal(345, ProcessMemory.FindPeakLine(stderr));
        Assert.Null(ProcessMemory.FindPeakLine("no such line\npeak-rss-bytes\n"));
        Assert.Equal(77, ProcessMemory.FindPeakLine(ProcessMemory.FormatPeakLine(77)));
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("0", false)]
    [InlineData("yes", false)]
    [InlineData("1", true)]
    public void The_report_is_written_only_when_the_switch_is_1(string? value, bool written)
    {
        var error = new StringWriter();
        Assert.Equal(written, ProcessMemory.ReportOwnPeakIfRequested(error, value));
        long? peak = ProcessMemory.FindPeakLine(error.ToString());
        if (written)
            Assert.True(peak > 0, $"expected a peak line, got '{error}'");
        else
            Assert.Equal("", error.ToString());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task The_chain_command_prints_its_peak_on_stderr_only_with_the_switch(bool on)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "chain.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing");
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var info = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        info.ArgumentList.Add("help");
        info.Environment.Remove(ProcessMemory.ReportPeakEnvironmentVariable);
        if (on)
            info.Environment[ProcessMemory.ReportPeakEnvironmentVariable] = "1";
        using Process process = Process.Start(info)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        Assert.Equal(0, process.ExitCode);
        Assert.Contains("usage: chain", await stdout);
        long? peak = ProcessMemory.FindPeakLine(await stderr);
        if (on)
            Assert.True(peak > 1024 * 1024, $"expected a peak above 1 MiB on stderr, got '{await stderr}'");
        else
            Assert.Null(peak);
    }
}
