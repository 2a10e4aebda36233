using System.Text;

namespace CriRuntime;

/// <summary>
/// How error messages and log lines quote a value a request supplied: control characters escaped, so one value
/// cannot forge log lines, and cut to <see cref="MaxChars"/> characters, so a 1 MB id gives a short message (a
/// default gRPC client refuses a status over its metadata limit and would see RESOURCE_EXHAUSTED instead of the real code).
/// </summary>
public static class Echo
{
    /// <summary>How many characters of a value are quoted before it is cut.</summary>
    public const int MaxChars = 256;

    /// <summary>The value as it may appear in a message: escaped, and cut with "…(N characters)" when longer than <see cref="MaxChars"/>.</summary>
    public static string Of(string? value)
    {
        if (value is null) return "";
        bool tooLong = value.Length > MaxChars;
        var shown = tooLong ? value.AsSpan(0, MaxChars) : value.AsSpan();
        // A surrogate pair cut in two would be an invalid string.
        if (tooLong && char.IsHighSurrogate(shown[^1])) shown = shown[..^1];
        bool clean = true;
        foreach (char c in shown)
            if (NeedsEscape(c)) { clean = false; break; }
        if (clean && !tooLong) return value;

        var sb = new StringBuilder(shown.Length + 32);
        foreach (char c in shown)
        {
            switch (c)
            {
                case '\\': sb.Append(@"\\"); break;
                case '\n': sb.Append(@"\n"); break;
                case '\r': sb.Append(@"\r"); break;
                case '\t': sb.Append(@"\t"); break;
                case '\0': sb.Append(@"\0"); break;
                default:
                    if (char.IsControl(c)) sb.Append(@"\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        if (tooLong) sb.Append("…(").Append(value.Length).Append(" characters)");
        return sb.ToString();
    }

    /// <summary>A message cut to <paramref name="maxChars"/> characters, marked as cut: the last guard before a message leaves the daemon.</summary>
    public static string Capped(string message, int maxChars)
    {
        if (message.Length <= maxChars) return message;
        const string marker = "…(message cut)";
        int keep = Math.Max(0, maxChars - marker.Length);
        if (keep > 0 && char.IsHighSurrogate(message[keep - 1])) keep--;
        return string.Concat(message.AsSpan(0, keep), marker);
    }

    private static bool NeedsEscape(char c) => c == '\\' || char.IsControl(c);
}
