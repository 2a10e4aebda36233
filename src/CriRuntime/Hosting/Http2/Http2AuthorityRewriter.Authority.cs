namespace CriRuntime.Hosting.Http2;

internal sealed partial class Http2AuthorityRewriter
{
    /// <summary>
    /// Whether Kestrel takes <paramref name="authority"/> as a host. This accepts a subset of what
    /// Kestrel's host check accepts: a name of letters, digits, '-', '.', '_', '~', or an IP literal
    /// in brackets, each with an optional ":port" of digits. Anything else (a socket path with '/',
    /// an empty value, user info) is replaced; replacing a value Kestrel would also have taken is
    /// harmless because the CRI services never read the authority.
    /// </summary>
    internal static bool IsValidAuthority(ReadOnlySpan<byte> authority)
    {
        if (authority.IsEmpty) return false;
        int i = 0;
        if (authority[0] == (byte)'[')
        {
            int close = authority.IndexOf((byte)']');
            if (close < 2) return false;
            foreach (byte b in authority[1..close])
                if (!(IsHexDigit(b) || b == ':' || b == '.')) return false;
            i = close + 1;
        }
        else
        {
            while (i < authority.Length && IsNameChar(authority[i])) i++;
            if (i == 0) return false;
        }
        if (i == authority.Length) return true;
        if (authority[i] != (byte)':') return false;
        foreach (byte b in authority[(i + 1)..])
            if (b is < (byte)'0' or > (byte)'9') return false;
        return true;
    }

    private static bool IsNameChar(byte b) =>
        b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9'
            or (byte)'-' or (byte)'.' or (byte)'_' or (byte)'~';

    private static bool IsHexDigit(byte b) =>
        b is >= (byte)'0' and <= (byte)'9' or >= (byte)'a' and <= (byte)'f' or >= (byte)'A' and <= (byte)'F';
}
