namespace CriRuntime.Hosting.Http2;

/// <summary>Writes HPACK primitives (RFC 7541 §5) into a span.</summary>
internal static class HpackWriter
{
    /// <summary>Most octets an integer below 2^31 can take with any prefix.</summary>
    public const int MaxIntegerLength = 6;

    /// <summary>Writes <paramref name="value"/> with an N-bit prefix, OR-ing <paramref name="firstByteFlags"/> into the first octet.</summary>
    public static int WriteInteger(Span<byte> destination, int value, int prefixBits, byte firstByteFlags)
    {
        int mask = (1 << prefixBits) - 1;
        if (value < mask)
        {
            destination[0] = (byte)(firstByteFlags | value);
            return 1;
        }
        destination[0] = (byte)(firstByteFlags | mask);
        value -= mask;
        int written = 1;
        while (value >= 0x80)
        {
            destination[written++] = (byte)((value & 0x7F) | 0x80);
            value >>= 7;
        }
        destination[written++] = (byte)value;
        return written;
    }

    /// <summary>Writes a string literal (§5.2), Huffman-encoded or raw.</summary>
    public static int WriteString(Span<byte> destination, ReadOnlySpan<byte> value, bool huffman)
    {
        if (!huffman)
        {
            int n = WriteInteger(destination, value.Length, 7, 0);
            value.CopyTo(destination[n..]);
            return n + value.Length;
        }
        int encodedLength = Huffman.GetEncodedLength(value);
        int written = WriteInteger(destination, encodedLength, 7, 0x80);
        return written + Huffman.Encode(value, destination[written..]);
    }

    /// <summary>Octets a field written by <see cref="WriteLiteralWithoutIndexing"/> can take at most.</summary>
    public static int MaxLiteralLength(int nameLength, int valueLength) => 3 * MaxIntegerLength + nameLength + valueLength;

    /// <summary>
    /// Writes a literal field that the receiver must not add to its dynamic table: without
    /// indexing (0000) or never indexed (0001), naming a static table entry when one has the name.
    /// </summary>
    public static int WriteLiteralWithoutIndexing(Span<byte> destination, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, bool neverIndexed)
    {
        byte flags = neverIndexed ? (byte)0x10 : (byte)0x00;
        int staticIndex = HpackStaticTable.IndexOfName(name);
        int written = WriteInteger(destination, staticIndex, 4, flags);
        if (staticIndex == 0) written += WriteString(destination[written..], name, huffman: false);
        return written + WriteString(destination[written..], value, huffman: false);
    }
}
