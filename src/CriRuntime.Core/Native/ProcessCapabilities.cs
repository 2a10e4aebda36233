using System.Globalization;

namespace CriRuntime.Native;

/// <summary>The capability sets of the calling process, as /proc/self/status reports them.</summary>
public static class ProcessCapabilities
{
    /// <summary>
    /// The daemon's effective set (CapEff), one bit per capability number. What a privileged container can be
    /// given is bounded by it: runc fails with "unable to apply caps: operation not permitted" on any other bit.
    /// </summary>
    public static ulong Effective() => ParseStatusField(File.ReadAllText("/proc/self/status"), "CapEff");

    /// <summary>The hex mask of one Cap* line ("CapEff:\t000001fffeffffff") of a /proc/PID/status text.</summary>
    public static ulong ParseStatusField(string status, string field)
    {
        foreach (string line in status.Split('\n'))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 || !line.AsSpan(0, colon).SequenceEqual(field)) continue;
            if (ulong.TryParse(line.AsSpan(colon + 1).Trim(), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong mask))
                return mask;
            throw new FormatException($"/proc status line '{line}' has no hex capability mask");
        }
        throw new FormatException($"/proc status has no {field} line");
    }
}
