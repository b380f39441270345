using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Chain.Harness;

namespace Chain.ScaleBench;

/// <summary>
/// Peak resident memory of one process of the proof; null bytes when it could not be read. <paramref name="StartBytes"/>:
/// a server's peak once the cluster was up, before the proof's transfers (null for the commands).
/// </summary>
public sealed record PeakMemory(string Process, int Pid, long? PeakBytes, long? StartBytes = null);

/// <summary>One run of the <c>chain</c> command.</summary>
public sealed record CommandRun(string CommandLine, int ExitCode, TimeSpan Elapsed, long? PeakBytes, string Stdout, string Stderr);

/// <summary>What the big-object proof found.</summary>
public sealed record ProofResult(long Size, string InputSha256, string? OutputSha256, Transfer Generate, Transfer? Put, Transfer? Get,
    IReadOnlyList<PeakMemory> Peaks, long LimitBytes, IReadOnlyList<string> Problems)
{
    public bool Passed => Problems.Count == 0;

    /// <summary>The problems with a set of results: failed commands, digests that differ, peaks unknown or over the limit.</summary>
    public static List<string> Judge(long limitBytes, string inputSha256, string? outputSha256, IEnumerable<CommandRun> runs, IEnumerable<PeakMemory> peaks)
    {
        var problems = new List<string>();
        foreach (CommandRun run in runs.Where(r => r.ExitCode != 0))
            problems.Add($"'{run.CommandLine}' exited with code {run.ExitCode}: {LastLine(run.Stderr)}");
        if (outputSha256 is null)
            problems.Add("no output file to compare");
        else if (!string.Equals(inputSha256, outputSha256, StringComparison.OrdinalIgnoreCase))
            problems.Add($"SHA-256 of the output {outputSha256} differs from the input's {inputSha256}");
        foreach (PeakMemory peak in peaks)
        {
            if (peak.PeakBytes is not { } bytes)
                problems.Add($"peak RSS of {peak.Process} (pid {peak.Pid}) unknown");
            else if (bytes >= limitBytes)
                problems.Add($"peak RSS of {peak.Process} is {ByteSize.Format(bytes)}, not below {ByteSize.Format(limitBytes)}");
        }
        return problems;
    }

    private static string LastLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "(no stderr)";
}

/// <summary>
/// The large-object memory proof: a cluster of real processes, an input file of random bytes streamed to disk, then
/// <c>chain put</c> and <c>chain get</c> as separate processes; the files are compared by SHA-256 (streamed) and the peak
/// RSS of both commands (reported by <c>chain</c> itself through <see cref="ProcessMemory.ReportPeakEnvironmentVariable"/>)
/// and of the master and every node (VmHWM, read while they still run) must stay below the limit.
/// </summary>
public static class BigProof
{
    private const int CopyBufferBytes = 1024 * 1024;
    private const string Bucket = "proof";
    private const string Key = "big/object.bin";
    /// <summary>Building the solution through ./chain may take this long on a busy machine.</summary>
    private static readonly TimeSpan PrepareTimeout = TimeSpan.FromMinutes(20);

    /// <summary>
    /// The <c>chain</c> command: <paramref name="explicitPath"/> (the script, or chain.dll itself), else the <c>chain</c>
    /// script at the root of the repository this program was built from.
    /// </summary>
    public static string LocateChainCommand(string? explicitPath)
    {
        if (explicitPath is not null)
            return File.Exists(explicitPath) ? Path.GetFullPath(explicitPath) : throw new FileNotFoundException($"--chain: no file '{explicitPath}'");
        string? root = ServerLocator.FindRepositoryRoot(AppContext.BaseDirectory);
        string? script = root is null ? null : Path.Combine(root, "chain");
        return script is not null && File.Exists(script)
            ? script
            : throw new FileNotFoundException($"cannot find the 'chain' script above {AppContext.BaseDirectory}; pass --chain PATH");
    }

    /// <summary>
    /// Runs the script once with 'help', so that the build it does when a source changed happens now, and returns the
    /// command line the script execs (<c>dotnet artifacts/bin/Chain.Cli/release/chain.dll</c>): the proof runs that
    /// directly, the same process as <c>./chain</c> minus the rebuild check, so an edit during the proof cannot start a
    /// build in the middle of a measured command. A chain.dll given with --chain is used as it is.
    /// </summary>
    public static async Task<IReadOnlyList<string>> PrepareAsync(string chain, Action<string> log, CancellationToken ct)
    {
        string dotnet = Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
        if (chain.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
            return [dotnet, chain];
        log($"preparing {chain} (it builds the solution first if a source changed) ...");
        CommandRun run = await RunCommandAsync([chain], ["help"], PrepareTimeout, ct).ConfigureAwait(false);
        if (run.ExitCode != 0)
            throw new InvalidOperationException($"'{run.CommandLine}' exited with code {run.ExitCode}: {run.Stderr.Trim()}");
        string dll = Path.Combine(Path.GetDirectoryName(chain)!, "artifacts", "bin", "Chain.Cli", "release", "chain.dll");
        return File.Exists(dll) ? [dotnet, dll] : throw new FileNotFoundException($"{chain} did not leave {dll}");
    }

    public static async Task<ProofResult> RunAsync(LocalCluster cluster, IReadOnlyList<string> chain, string workDirectory, long size, long limitBytes,
        Action<string> log, CancellationToken ct)
    {
        string input = Path.Combine(workDirectory, "input.bin");
        string output = Path.Combine(workDirectory, "output.bin");
        await using (var admin = cluster.CreateClient())
            await admin.CreateBucketAsync(Bucket, ct).ConfigureAwait(false);

        Dictionary<string, long?> atStart = cluster.Processes.ToDictionary(p => p.Name, p => ProcessMemory.PeakResidentBytes(p.Pid), StringComparer.Ordinal);
        log($"writing {ByteSize.Format(size)} of random bytes to {input} (streamed, SHA-256 on the way) ...");
        (Transfer generate, string inputSha) = await WriteInputAsync(input, size, ct).ConfigureAwait(false);
        log(RawDisk.Describe(generate) + $", sha256 {inputSha}");

        // A slow disk must not fail the proof: allow 2 MB/s plus a minute of start-up.
        TimeSpan commandTimeout = TimeSpan.FromSeconds(60 + size / 2e6);
        string master = cluster.MasterAddress.ToString();
        var runs = new List<CommandRun>();
        log($"chain put {Bucket}/{Key} {input} ...");
        CommandRun put = await RunCommandAsync(chain, ["--master", master, "put", $"{Bucket}/{Key}", input], commandTimeout, ct).ConfigureAwait(false);
        runs.Add(put);
        log($"put: exit {put.ExitCode}, {put.Elapsed.TotalSeconds:0.0} s, client peak RSS {FormatPeak(put.PeakBytes)}");
        CommandRun? get = null;
        string? outputSha = null;
        if (put.ExitCode == 0)
        {
            log($"chain get {Bucket}/{Key} {output} ...");
            get = await RunCommandAsync(chain, ["--master", master, "get", $"{Bucket}/{Key}", output], commandTimeout, ct).ConfigureAwait(false);
            runs.Add(get);
            log($"get: exit {get.ExitCode}, {get.Elapsed.TotalSeconds:0.0} s, client peak RSS {FormatPeak(get.PeakBytes)}");
            if (get.ExitCode == 0 && File.Exists(output))
            {
                log("hashing the output (streamed) ...");
                outputSha = await HashFileAsync(output, ct).ConfigureAwait(false);
            }
        }

        // Server peaks while the processes are still alive: VmHWM is gone with the process.
        var peaks = new List<PeakMemory>
        {
            new("chain put (client)", 0, put.PeakBytes),
        };
        if (get is not null)
            peaks.Add(new PeakMemory("chain get (client)", 0, get.PeakBytes));
        foreach (ServerProcess process in cluster.Processes)
            peaks.Add(new PeakMemory(process.Name, process.Pid, process.IsRunning ? ProcessMemory.PeakResidentBytes(process.Pid) : null, atStart.GetValueOrDefault(process.Name)));

        List<string> problems = ProofResult.Judge(limitBytes, inputSha, outputSha, runs, peaks);
        foreach (ServerProcess process in cluster.Processes.Where(p => !p.IsRunning))
            problems.Add($"{process.Name} is not running (exit code {process.LastExitCode?.ToString(CultureInfo.InvariantCulture) ?? "?"})");
        File.Delete(input);
        File.Delete(output);
        return new ProofResult(size, inputSha, outputSha, generate,
            new Transfer("chain put (CLI process)", size, put.Elapsed, double.NaN),
            get is null ? null : new Transfer("chain get (CLI process)", size, get.Elapsed, double.NaN),
            peaks, limitBytes, problems);
    }

    internal static string FormatPeak(long? bytes) => bytes is { } b ? ByteSize.Format(b) : "unknown";

    private static async Task<(Transfer, string)> WriteInputAsync(string path, long size, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var source = new PatternStream(size, (ulong)Random.Shared.NextInt64());
        var buffer = new byte[CopyBufferBytes];
        long start = Stopwatch.GetTimestamp();
        await using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous))
        {
            int read;
            while ((read = source.Read(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                await file.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
            }
            file.Flush(flushToDisk: true);
        }
        return (new Transfer("input file write (generate + fsync)", size, Stopwatch.GetElapsedTime(start), double.NaN),
            Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    private static async Task<string> HashFileAsync(string path, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, CopyBufferBytes, FileOptions.SequentialScan | FileOptions.Asynchronous);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(file, ct).ConfigureAwait(false));
    }

    /// <summary>Runs the command with the peak-RSS switch on, bounded by <paramref name="timeout"/> (then it is killed).</summary>
    private static async Task<CommandRun> RunCommandAsync(IReadOnlyList<string> command, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken ct)
    {
        var info = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string argument in command.Skip(1).Concat(arguments))
            info.ArgumentList.Add(argument);
        info.Environment[ProcessMemory.ReportPeakEnvironmentVariable] = "1";
        string commandLine = string.Join(' ', command.Concat(arguments));
        long start = Stopwatch.GetTimestamp();
        using Process process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {command[0]}");
        process.StandardInput.Close();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(ct);
        Task<string> stderr = process.StandardError.ReadToEndAsync(ct);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            if (ct.IsCancellationRequested)
                throw;
            throw new TimeoutException($"'{commandLine}' did not finish within {timeout.TotalSeconds:0} s");
        }
        TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
        string err = await stderr.ConfigureAwait(false);
        return new CommandRun(commandLine, process.ExitCode, elapsed, ProcessMemory.FindPeakLine(err), await stdout.ConfigureAwait(false), err);
    }
}
