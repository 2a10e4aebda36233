namespace CriRuntime.Images.Distribution;

/// <summary>One challenge of a WWW-Authenticate header: a scheme (lower case) and its parameters.</summary>
public sealed record AuthChallenge(string Scheme, IReadOnlyDictionary<string, string> Parameters)
{
    public string? this[string name] => Parameters.TryGetValue(name, out var value) ? value : null;

    /// <summary>
    /// Parses WWW-Authenticate header values (RFC 9110 §11.6.1). One value may hold several challenges
    /// (<c>Bearer realm="a",service="b", Basic realm="c"</c>) and quoted strings may hold commas and
    /// escaped quotes. Bearer comes first in the result, then Basic, then the rest, each in header order.
    /// </summary>
    public static IReadOnlyList<AuthChallenge> Parse(IEnumerable<string> headerValues)
    {
        var result = new List<AuthChallenge>();
        foreach (var value in headerValues) ParseOne(value, result);
        return result.OrderBy(c => c.Scheme switch { "bearer" => 0, "basic" => 1, _ => 2 }).ToList();
    }

    public static IReadOnlyList<AuthChallenge> Parse(string headerValue) => Parse([headerValue]);

    private static void ParseOne(string s, List<AuthChallenge> result)
    {
        int i = 0;
        while (true)
        {
            SkipSeparators(s, ref i);
            string scheme = ReadToken(s, ref i);
            if (scheme.Length == 0)
            {
                // Garbage: skip one character so a malformed header cannot loop forever.
                if (i >= s.Length) return;
                i++;
                continue;
            }
            var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
            result.Add(new AuthChallenge(scheme.ToLowerInvariant(), parameters));
            while (true)
            {
                SkipSpaces(s, ref i);
                int start = i;
                string name = ReadToken(s, ref i);
                SkipSpaces(s, ref i);
                if (name.Length == 0 || i >= s.Length || s[i] != '=')
                {
                    // Not "name=": the next challenge's scheme starts here.
                    i = start;
                    break;
                }
                i++; // '='
                SkipSpaces(s, ref i);
                string value = i < s.Length && s[i] == '"' ? ReadQuoted(s, ref i) : ReadToken(s, ref i);
                parameters[name.ToLowerInvariant()] = value;
                SkipSpaces(s, ref i);
                if (i < s.Length && s[i] == ',')
                {
                    i++;
                    continue;
                }
                break;
            }
            if (i >= s.Length) return;
        }
    }

    private static void SkipSpaces(string s, ref int i)
    {
        while (i < s.Length && s[i] is ' ' or '\t') i++;
    }

    private static void SkipSeparators(string s, ref int i)
    {
        while (i < s.Length && s[i] is ' ' or '\t' or ',') i++;
    }

    private static string ReadToken(string s, ref int i)
    {
        int start = i;
        while (i < s.Length && IsTokenChar(s[i])) i++;
        return s[start..i];
    }

    private static string ReadQuoted(string s, ref int i)
    {
        var sb = new System.Text.StringBuilder();
        i++; // opening quote
        while (i < s.Length)
        {
            char c = s[i++];
            if (c == '"') return sb.ToString();
            if (c == '\\' && i < s.Length) c = s[i++];
            sb.Append(c);
        }
        return sb.ToString(); // unterminated: take what there is
    }

    // RFC 9110 tchar.
    private static bool IsTokenChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || c is '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~'
        || c is '/' or ':'; // not tchar, but realms written unquoted (realm=https://x/token) are seen in the wild
}
