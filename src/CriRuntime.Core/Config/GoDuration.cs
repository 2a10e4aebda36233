using System.Globalization;

namespace CriRuntime.Config;

/// <summary>
/// Durations written as Go's time.ParseDuration reads them ("4h", "4h0m0s", "90m", "1.5h", "500ms"), the spelling
/// containerd's and the kubelet's configs use for the same timeouts, so a value copied from either reads the same.
/// </summary>
public static class GoDuration
{
    /// <summary>The duration <paramref name="text"/> names, or null (with <paramref name="problem"/>) when it is not one.</summary>
    public static TimeSpan? Parse(string text, out string? problem)
    {
        problem = null;
        if (text.Length == 0 || text.Length > 64)
        {
            problem = "is not a duration; write it as Go does, such as \"4h\", \"30s\" or \"1h30m\"";
            return null;
        }
        if (text == "0") return TimeSpan.Zero;
        double totalSeconds = 0;
        int i = 0;
        while (i < text.Length)
        {
            int start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.')) i++;
            if (i == start || !double.TryParse(text.AsSpan(start, i - start), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double number))
            {
                problem = $"is not a duration at '{text[start..]}'; write it as Go does, such as \"4h\", \"30s\" or \"1h30m\"";
                return null;
            }
            int unitStart = i;
            while (i < text.Length && char.IsAsciiLetter(text[i])) i++;
            double unitSeconds = text[unitStart..i] switch
            {
                "h" => 3600,
                "m" => 60,
                "s" => 1,
                "ms" => 0.001,
                "us" or "µs" => 0.000001,
                "ns" => 0.000000001,
                _ => double.NaN,
            };
            if (double.IsNaN(unitSeconds))
            {
                problem = $"has unit '{text[unitStart..i]}', which is none of h, m, s, ms, us, ns";
                return null;
            }
            totalSeconds += number * unitSeconds;
        }
        if (totalSeconds > TimeSpan.MaxValue.TotalSeconds / 2)
        {
            problem = "is too long";
            return null;
        }
        return TimeSpan.FromSeconds(totalSeconds);
    }

    /// <summary>Go's spelling of <paramref name="value"/> ("4h0m0s", "30s"), as the default config writes it.</summary>
    public static string Format(TimeSpan value)
    {
        if (value < TimeSpan.FromMinutes(1)) return $"{value.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s";
        if (value < TimeSpan.FromHours(1)) return $"{value.Minutes}m{value.Seconds}s";
        return $"{(long)value.TotalHours}h{value.Minutes}m{value.Seconds}s";
    }
}
