namespace Chain.DistBench;

/// <summary>The arithmetic of the report: the Kumar–Ross lower bound, medians and spreads.</summary>
public static class Figures
{
    /// <summary>
    /// D = max{ F/u_s, F/d_min, N·F/(u_s + Σu_i) } in seconds, for a file of <paramref name="fileBytes"/> bytes from
    /// one source of upload <paramref name="originUpload"/> to peers of uploads <paramref name="peerUploads"/> and downloads
    /// <paramref name="peerDownloads"/> (all in bit/s): no schedule can make every peer hold the file sooner.
    /// </summary>
    public static double LowerBoundSeconds(long fileBytes, double originUpload, IReadOnlyList<double> peerUploads, IReadOnlyList<double> peerDownloads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fileBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(originUpload);
        if (peerUploads.Count == 0 || peerUploads.Count != peerDownloads.Count)
            throw new ArgumentException("one upload and one download rate per peer, at least one peer");
        if (peerUploads.Any(u => u < 0) || peerDownloads.Any(d => d <= 0))
            throw new ArgumentException("peer uploads must be non-negative and downloads positive");
        double bits = fileBytes * 8.0;
        double fromSource = bits / originUpload;
        double slowestDownload = bits / peerDownloads.Min();
        double aggregate = peerUploads.Count * bits / (originUpload + peerUploads.Sum());
        return Math.Max(fromSource, Math.Max(slowestDownload, aggregate));
    }

    /// <summary>The bound with every peer at <paramref name="peerRate"/> both ways (the benchmark's links).</summary>
    public static double LowerBoundSeconds(long fileBytes, double originUpload, int peers, double peerRate) =>
        LowerBoundSeconds(fileBytes, originUpload, Enumerable.Repeat(peerRate, peers).ToArray(), Enumerable.Repeat(peerRate, peers).ToArray());

    /// <summary>The median (mean of the two middle values for an even count); NaN for no values.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0)
            return double.NaN;
        double[] sorted = values.Order().ToArray();
        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    /// <summary>Smallest and largest value; NaNs for no values.</summary>
    public static (double Min, double Max) Spread(IReadOnlyList<double> values) =>
        values.Count == 0 ? (double.NaN, double.NaN) : (values.Min(), values.Max());

    /// <summary>a/b, NaN when either is unknown or b is zero.</summary>
    public static double Ratio(double a, double b) => double.IsNaN(a) || double.IsNaN(b) || b == 0 ? double.NaN : a / b;
}
