using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace CriRuntime.Cdi;

/// <summary>
/// Turns a YAML CDI spec into the JSON tree its JSON form would be, as the CDI library does (sigs.k8s.io/yaml:
/// YAML 1.1 scalars, then encoding/json). YamlDotNet supplies only the event parser, which uses no reflection and
/// so works in the Native AOT daemon; the tree is built here, within limits: one document, no anchors or aliases
/// (a spec has no use for them, and aliases are how a small file becomes a huge tree), bounded depth and node count.
/// </summary>
internal static class CdiYaml
{
    public const int MaxDepth = 32;
    public const int MaxNodes = 200_000;

    /// <exception cref="FormatException">Not YAML, or YAML outside those limits.</exception>
    public static JsonNode? ToJson(string text)
    {
        var parser = new Parser(new StringReader(text));
        int nodes = 0;
        JsonNode? root = null;
        bool haveDocument = false;
        try
        {
            while (parser.MoveNext())
            {
                switch (parser.Current)
                {
                    case StreamStart or StreamEnd or DocumentEnd:
                        break;
                    case DocumentStart:
                        if (haveDocument) throw new FormatException("holds more than one YAML document; a CDI spec is one");
                        haveDocument = true;
                        break;
                    default:
                        root = ReadNode(parser, 0, ref nodes);
                        break;
                }
            }
        }
        catch (YamlException e)
        {
            throw new FormatException($"is not valid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.Message}", e);
        }
        return root;
    }

    private static JsonNode? ReadNode(Parser parser, int depth, ref int nodes)
    {
        if (depth > MaxDepth) throw new FormatException($"nests deeper than {MaxDepth} levels");
        if (++nodes > MaxNodes) throw new FormatException($"holds more than {MaxNodes} YAML nodes");
        var current = parser.Current!;
        if (current is AnchorAlias) throw new FormatException($"uses a YAML alias at line {current.Start.Line}; CDI specs are read without anchors and aliases");
        if (current is NodeEvent { Anchor.IsEmpty: false })
            throw new FormatException($"uses a YAML anchor at line {current.Start.Line}; CDI specs are read without anchors and aliases");
        switch (current)
        {
            case Scalar scalar:
                return ScalarValue(scalar);
            case SequenceStart:
            {
                var array = new JsonArray();
                while (parser.MoveNext() && parser.Current is not SequenceEnd)
                    array.Add(ReadNode(parser, depth + 1, ref nodes));
                return array;
            }
            case MappingStart:
            {
                var map = new JsonObject();
                while (parser.MoveNext() && parser.Current is not MappingEnd)
                {
                    if (parser.Current is not Scalar key)
                        throw new FormatException($"has a mapping key that is not a plain value at line {parser.Current!.Start.Line}");
                    if (++nodes > MaxNodes) throw new FormatException($"holds more than {MaxNodes} YAML nodes");
                    if (!parser.MoveNext()) throw new FormatException("ends inside a mapping");
                    var value = ReadNode(parser, depth + 1, ref nodes);
                    if (map.ContainsKey(key.Value)) throw new FormatException($"repeats the key '{Echo.Of(key.Value)}' at line {key.Start.Line}");
                    map[key.Value] = value;
                }
                return map;
            }
            default:
                throw new FormatException($"has an unexpected YAML element at line {current.Start.Line}");
        }
    }

    /// <summary>A plain scalar is typed as YAML 1.1 types it (null, booleans, integers with 0x/0 octal, floats); a quoted one is a string.</summary>
    private static JsonNode? ScalarValue(Scalar scalar)
    {
        string v = scalar.Value;
        if (scalar.Style is not ScalarStyle.Plain || !scalar.Tag.IsEmpty) return JsonValue.Create(v);
        switch (v)
        {
            case "" or "~" or "null" or "Null" or "NULL": return null;
            case "true" or "True" or "TRUE" or "yes" or "Yes" or "YES" or "on" or "On" or "ON": return JsonValue.Create(true);
            case "false" or "False" or "FALSE" or "no" or "No" or "NO" or "off" or "Off" or "OFF": return JsonValue.Create(false);
        }
        string digits = v.Replace("_", "", StringComparison.Ordinal);
        bool negative = digits.StartsWith('-');
        string unsigned = digits.TrimStart('+', '-');
        if (unsigned.Length > 0 && unsigned.Length <= 24)
        {
            if (unsigned.StartsWith("0x", StringComparison.Ordinal) &&
                long.TryParse(unsigned.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long hex))
                return JsonValue.Create(negative ? -hex : hex);
            if (unsigned.Length > 1 && unsigned[0] == '0' && unsigned.All(c => c is >= '0' and <= '7'))
            {
                long octal = 0;
                foreach (char c in unsigned) octal = checked(octal * 8 + (c - '0'));
                return JsonValue.Create(negative ? -octal : octal);
            }
            if (unsigned.All(char.IsAsciiDigit) && long.TryParse(digits, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long integer))
                return JsonValue.Create(integer);
            // A float keeps its text ("1.0" stays "1.0" where a string is wanted, as sigs.k8s.io/yaml does).
            if (unsigned.Any(char.IsAsciiDigit) && unsigned.All(c => char.IsAsciiDigit(c) || c is '.' or 'e' or 'E' or '+' or '-'))
            {
                try { return JsonNode.Parse(digits); }
                catch (System.Text.Json.JsonException) { return JsonValue.Create(v); }
            }
        }
        return JsonValue.Create(v);
    }
}
