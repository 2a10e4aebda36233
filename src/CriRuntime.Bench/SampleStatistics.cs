namespace CriRuntime.Bench;

/// <summary>Order statistics over a set of samples.</summary>
public static class SampleStatistics
{
    /// <summary>The <paramref name="p"/>-th percentile (0..100), linear between closest ranks (numpy's default).</summary>
    public static double Percentile(IReadOnlyList<double> samples, double p)
    {
        if (samples.Count == 0) throw new ArgumentException("no samples", nameof(samples));
        ArgumentOutOfRangeException.ThrowIfLessThan(p, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(p, 100);
        var sorted = samples.Order().ToArray();
        double rank = p / 100 * (sorted.Length - 1);
        int lo = (int)Math.Floor(rank);
        int hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    public static double Median(IReadOnlyList<double> samples) => Percentile(samples, 50);

    public static double P90(IReadOnlyList<double> samples) => Percentile(samples, 90);
}
