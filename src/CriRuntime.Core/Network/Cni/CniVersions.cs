namespace CriRuntime.Network.Cni;

/// <summary>CNI spec versions: which network configs we accept and how they compare.</summary>
internal static class CniVersions
{
    /// <summary>Config versions we run. Older ones (0.1.0, 0.2.0) use a different result shape for the whole
    /// chain; they are only understood as results coming back from old plugins, and converted.</summary>
    public static readonly IReadOnlyList<string> Supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

    public static bool IsSupported(string version) => Supported.Contains(version);

    /// <summary>CHECK and prevResult on DEL came with 0.4.0.</summary>
    public static bool HasCheck(string version) => Compare(version, "0.4.0") >= 0;

    /// <summary>Results before 0.3.0 have ip4/ip6 objects instead of an ips list.</summary>
    public static bool IsLegacyResult(string version) => Compare(version, "0.3.0") < 0;

    /// <summary>0.3.x and 0.4.0 results tag each ip with "version"; 1.0.0 dropped the field.</summary>
    public static bool ResultIpsHaveVersion(string version) => Compare(version, "1.0.0") < 0;

    public static int Compare(string a, string b)
    {
        var x = Parse(a);
        var y = Parse(b);
        for (int i = 0; i < 3; i++)
        {
            int c = x[i].CompareTo(y[i]);
            if (c != 0) return c;
        }
        return 0;
    }

    private static int[] Parse(string version)
    {
        var parts = version.Split('.');
        var numbers = new int[3];
        for (int i = 0; i < 3; i++)
        {
            if (i < parts.Length && int.TryParse(parts[i], out int n) && n >= 0) numbers[i] = n;
            else if (i < parts.Length || i == 0) throw new FormatException($"'{version}' is not a CNI version (want MAJOR.MINOR.PATCH)");
        }
        return numbers;
    }
}
