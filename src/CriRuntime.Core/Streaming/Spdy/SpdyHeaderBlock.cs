using System.Buffers.Binary;
using System.Text;
using CriRuntime.Native;

namespace CriRuntime.Streaming.Spdy;

/// <summary>
/// The uncompressed SPDY/3 name/value header block: a 32-bit pair count, then per pair a 32-bit name length,
/// the name (lower case), a 32-bit value length and the value, several values joined by NUL.
/// </summary>
public static class SpdyHeaderBlock
{
    /// <summary>Appends the block for <paramref name="headers"/>; repeated names are joined into one NUL-separated entry.</summary>
    public static void Encode(IReadOnlyList<SpdyHeader> headers, ByteBuffer output)
    {
        var merged = new List<(string Name, StringBuilder Value)>();
        foreach (var h in headers)
        {
            var name = h.Name.ToLowerInvariant();
            if (name.Length == 0) throw new ArgumentException("a SPDY header name cannot be empty");
            var existing = merged.FindIndex(m => m.Name == name);
            if (existing >= 0) merged[existing].Value.Append('\0').Append(h.Value);
            else merged.Add((name, new StringBuilder(h.Value)));
        }
        WriteUInt32(output, (uint)merged.Count);
        foreach (var (name, value) in merged)
        {
            WriteString(output, name);
            WriteString(output, value.ToString());
        }
    }

    /// <summary>
    /// Parses one whole block. Every byte must belong to a pair; names must be non-empty, lower case and unique;
    /// values are split at NUL. Throws <see cref="SpdyProtocolException"/> otherwise.
    /// </summary>
    public static List<SpdyHeader> Decode(ReadOnlySpan<byte> block, SpdyLimits limits)
    {
        var pos = 0;
        var count = ReadUInt32(block, ref pos, "pair count");
        // Each pair takes at least 8 bytes, so a count larger than that can fit is a lie: refuse it before allocating.
        if (count > limits.MaxHeaderPairs || count > (uint)(block.Length - pos) / 8)
            throw new SpdyProtocolException($"a header block claims {count} pairs (at most {limits.MaxHeaderPairs}, and {block.Length} bytes cannot hold that many)");
        var headers = new List<SpdyHeader>((int)count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            var name = ReadString(block, ref pos, "name");
            if (name.Length == 0) throw new SpdyProtocolException("a header name is empty");
            foreach (var c in name)
                if (c is >= 'A' and <= 'Z' || c < 0x21 || c > 0x7e)
                    throw new SpdyProtocolException($"header name '{Printable(name)}' is not lower-case printable ASCII");
            if (!seen.Add(name)) throw new SpdyProtocolException($"header '{name}' appears twice in one block");
            var value = ReadString(block, ref pos, "value");
            foreach (var part in value.Split('\0')) headers.Add(new SpdyHeader(name, part));
        }
        if (pos != block.Length) throw new SpdyProtocolException($"{block.Length - pos} bytes follow the last header pair");
        return headers;
    }

    private static void WriteUInt32(ByteBuffer output, uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(output.Reserve(4), value);
        output.Commit(4);
    }

    private static void WriteString(ByteBuffer output, string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        WriteUInt32(output, (uint)length);
        Encoding.UTF8.GetBytes(value, output.Reserve(length));
        output.Commit(length);
    }

    private static uint ReadUInt32(ReadOnlySpan<byte> block, ref int pos, string what)
    {
        if (block.Length - pos < 4) throw new SpdyProtocolException($"a header block ends inside a {what} length");
        var value = BinaryPrimitives.ReadUInt32BigEndian(block[pos..]);
        pos += 4;
        return value;
    }

    private static string ReadString(ReadOnlySpan<byte> block, ref int pos, string what)
    {
        var length = ReadUInt32(block, ref pos, what);
        if (length > (uint)(block.Length - pos))
            throw new SpdyProtocolException($"a header {what} of {length} bytes runs past the end of its block");
        var value = Encoding.UTF8.GetString(block.Slice(pos, (int)length));
        pos += (int)length;
        return value;
    }

    private static string Printable(string s) => new(s.Take(64).Select(c => c is >= ' ' and <= '~' ? c : '?').ToArray());
}
