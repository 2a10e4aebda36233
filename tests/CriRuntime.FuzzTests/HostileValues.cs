namespace CriRuntime.FuzzTests;

/// <summary>
/// The values a hostile client puts into fields: empty, huge, path-like, control characters, ids of the wrong
/// kind, numeric extremes. Every path that does not exist on the host carries <see cref="Token"/>, so whatever the
/// daemon makes of it can be found afterwards; every path that does exist is a directory, a /proc/self file or a
/// character device, never a regular file a write could damage (a fuzzed log path must not append to /etc/passwd).
/// </summary>
public sealed class HostileValues
{
    public const int Huge = 1024 * 1024;

    /// <summary>Entries in a repeated or map field blown up to "thousands".</summary>
    public const int ManyEntries = 3000;

    private readonly string[] fixedStrings;
    private readonly Func<IReadOnlyList<string>> liveIds;

    /// <param name="token">A marker unique to this run ("fz" + seed) that names every made-up path.</param>
    /// <param name="scratchDir">An absolute directory this run owns (/tmp/TOKEN): absolute made-up paths go below it.</param>
    /// <param name="liveIds">Ids of live objects of every kind (pods, containers, images): the wrong-kind ids.</param>
    public HostileValues(string token, string scratchDir, Func<IReadOnlyList<string>> liveIds)
    {
        Token = token;
        ScratchDir = scratchDir;
        this.liveIds = liveIds;
        fixedStrings =
        [
            "",
            " ",
            "a",
            "../../etc",
            "..",
            ".",
            "/",
            "/etc",
            "/proc/self/status",
            "/proc/self/fd/0",
            "/proc/self/root",
            "/sys/kernel",
            "/dev/null",
            "/dev/zero",
            $"../../../../../../../..{scratchDir}/up",
            $"{scratchDir}/abs",
            $"{token}-relative/x",
            "a\0b",
            "\0",
            "a\nb",
            "\n",
            "x\r\ny: z",
            "-",
            "--help",
            "*",
            "%s%n%x",
            "\u202e\U0001F600ü",
            "\uFFFF",
            "a=b",
            "=",
            "0",
            "-1",
            "18446744073709551616",
            "sha256:" + new string('0', 64),
            new string('f', 64),
            "/" + string.Join('/', Enumerable.Repeat("d", 2200)),
            $"{scratchDir}/{new string('n', 300)}",
        ];
    }

    public string Token { get; }

    public string ScratchDir { get; }

    /// <summary>A hostile string: one of the fixed ones, a 1 MiB one (only if <paramref name="allowHuge"/>), or a live id.</summary>
    public (string Value, string Description) String(Random rng, bool allowHuge)
    {
        int pick = rng.Next(100);
        if (allowHuge && pick < 8)
        {
            string huge = rng.Next(2) == 0 ? new string('a', Huge) : "/" + new string('p', Huge);
            return (huge, $"<{huge.Length} chars of '{huge[^1]}'>");
        }
        if (pick < 30)
        {
            var ids = liveIds();
            if (ids.Count > 0)
            {
                string id = ids[rng.Next(ids.Count)];
                // A unique prefix is how crictl names objects; a prefix of the wrong kind must not match either.
                if (rng.Next(3) == 0 && id.Length > 6) id = id[..6];
                return (id, Describe(id));
            }
        }
        string s = fixedStrings[rng.Next(fixedStrings.Length)];
        return (s, Describe(s));
    }

    public static string Describe(string s)
    {
        if (s.Length > 120) return $"<{s.Length} chars starting {Quote(s[..40])}>";
        return Quote(s);
    }

    private static string Quote(string s) =>
        "\"" + s.Replace("\\", "\\\\").Replace("\0", "\\0").Replace("\n", "\\n").Replace("\r", "\\r") + "\"";

    public static readonly long[] Int64s = [0, -1, 1, long.MinValue, long.MaxValue, int.MaxValue + 1L, -4096];
    public static readonly int[] Int32s = [0, -1, 1, int.MinValue, int.MaxValue, 65536];
    public static readonly ulong[] UInt64s = [0, 1, ulong.MaxValue, (ulong)long.MaxValue + 1];
    public static readonly uint[] UInt32s = [0, 1, uint.MaxValue, 65536];
    public static readonly double[] Doubles = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, -1, 1e308, 0];
    public static readonly int[] EnumValues = [-1, 1234, int.MaxValue, int.MinValue];
}
