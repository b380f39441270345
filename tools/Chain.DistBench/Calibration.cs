using System.Globalization;
using Chain.Harness;

namespace Chain.DistBench;

/// <summary>One calibration transfer: the shaped rate of a path and the TCP goodput measured over it.</summary>
public sealed record CalibrationResult(string Path, long RateBitsPerSecond, long Bytes, double GoodputBitsPerSecond)
{
    /// <summary>How far goodput may fall from the rate (TCP over Ethernet carries about 95% of a shaped link).</summary>
    public const double Tolerance = 0.10;

    public double Ratio => GoodputBitsPerSecond / RateBitsPerSecond;

    public bool Ok => Math.Abs(Ratio - 1) <= Tolerance;
}

/// <summary>
/// Checks the shaping before any way runs: a C# TCP sender in one namespace and a receiver in another
/// (<see cref="PeerCommands"/>), a few seconds' worth of bytes; the receiver's goodput must be within
/// <see cref="CalibrationResult.Tolerance"/> of the shaped rate.
/// </summary>
internal static class Calibration
{
    private const int Port = 5201;
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Bytes for about 1.5 s at <paramref name="rateBitsPerSecond"/>, at least 2 MiB.</summary>
    public static long BytesFor(long rateBitsPerSecond) => Math.Max(2L << 20, rateBitsPerSecond / 8 * 3 / 2);

    public static async Task<CalibrationResult> MeasureAsync(NamespaceNetwork network, int from, int to, string path, long rateBitsPerSecond,
        string logDirectory, CancellationToken ct)
    {
        long bytes = BytesFor(rateBitsPerSecond);
        string target = $"{network.AddressOf(to)}:{Port}";
        await using NetnsProcess receiver = NetnsProcess.Start("calibration receiver", network.LauncherFor(to),
            PeerCommands.Self(PeerCommands.Receive, "--listen", target), Path.Combine(logDirectory, "calibration.log"));
        await receiver.ExpectAsync("READY", ReadyTimeout, ct).ConfigureAwait(false);
        await using NetnsProcess sender = NetnsProcess.Start("calibration sender", network.LauncherFor(from),
            PeerCommands.Self(PeerCommands.Send, "--to", target, "--bytes", bytes.ToString(CultureInfo.InvariantCulture)),
            Path.Combine(logDirectory, "calibration.log"));
        TimeSpan bound = ReadyTimeout + TimeSpan.FromSeconds(bytes * 8.0 / rateBitsPerSecond * 3);
        var (_, line) = await receiver.ExpectAsync("RECEIVED", bound, ct).ConfigureAwait(false);
        string[] fields = line.Split(' ');
        long received = long.Parse(fields[1], CultureInfo.InvariantCulture);
        double seconds = double.Parse(fields[2], CultureInfo.InvariantCulture) / 1e9;
        if (received != bytes || seconds <= 0)
            throw new InvalidOperationException($"calibration {path}: received {received} of {bytes} bytes in {seconds:0.###} s");
        return new CalibrationResult(path, rateBitsPerSecond, bytes, received * 8 / seconds);
    }
}
