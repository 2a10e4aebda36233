namespace CriRuntime.Hosting.Http2;

/// <summary>
/// The HPACK Huffman code (RFC 7541 Appendix B). The code is canonical, so the table below holds only
/// each symbol's code length; the codes themselves are assigned at start-up in (length, symbol) order,
/// which reproduces Appendix B exactly (checked by the RFC's C.4/C.6 examples in the tests).
/// </summary>
internal static class Huffman
{
    private const int EosSymbol = 256;

    // Code length in bits of symbols 0..255, then EOS (RFC 7541 Appendix B).
    private static ReadOnlySpan<byte> CodeLengths =>
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
        30,
    ];

    private static readonly uint[] Codes = new uint[257];

    // Binary decoding tree: node n has children Tree[2n] (bit 0) and Tree[2n+1] (bit 1). A child
    // >= 0 is an inner node index; a child < 0 is a leaf holding ~symbol. 256 inner nodes suffice
    // for 257 leaves; 0 marks "no child" only transiently while building (node 0 is the root and
    // never anyone's child).
    private static readonly short[] Tree = new short[2 * 256];

    static Huffman()
    {
        Span<short> order = stackalloc short[257];
        for (short s = 0; s < 257; s++) order[s] = s;
        // Stable sort by length: insertion sort keeps symbol order within a length.
        for (int i = 1; i < 257; i++)
        {
            short s = order[i];
            int j = i - 1;
            while (j >= 0 && CodeLengths[order[j]] > CodeLengths[s])
            {
                order[j + 1] = order[j];
                j--;
            }
            order[j + 1] = s;
        }

        uint code = 0;
        int previousLength = CodeLengths[order[0]];
        int nodes = 1;
        for (int i = 0; i < 257; i++)
        {
            int symbol = order[i];
            int length = CodeLengths[symbol];
            code <<= length - previousLength;
            previousLength = length;
            Codes[symbol] = code;

            int node = 0;
            for (int bit = length - 1; bit > 0; bit--)
            {
                int slot = 2 * node + (int)((code >> bit) & 1);
                if (Tree[slot] == 0) Tree[slot] = (short)nodes++;
                node = Tree[slot];
            }
            Tree[2 * node + (int)(code & 1)] = (short)~symbol;
            code++;
        }
    }

    /// <summary>
    /// Decodes <paramref name="source"/> into <paramref name="destination"/> and returns the decoded
    /// length, or -1 when the input is not a valid HPACK Huffman string (EOS inside, padding longer
    /// than 7 bits or not all ones) or the destination is too small. A valid string decodes to at
    /// most <c>source.Length * 8 / 5</c> bytes (the shortest code is 5 bits).
    /// </summary>
    public static int Decode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        int written = 0;
        int node = 0;
        int bitsSinceSymbol = 0;
        bool onesSinceSymbol = true;
        foreach (byte b in source)
        {
            for (int bit = 7; bit >= 0; bit--)
            {
                int value = (b >> bit) & 1;
                int next = Tree[2 * node + value];
                bitsSinceSymbol++;
                onesSinceSymbol &= value == 1;
                if (next < 0)
                {
                    int symbol = ~next;
                    if (symbol == EosSymbol || written == destination.Length) return -1;
                    destination[written++] = (byte)symbol;
                    node = 0;
                    bitsSinceSymbol = 0;
                    onesSinceSymbol = true;
                }
                else
                {
                    node = next;
                }
            }
        }
        // What is left must be a prefix of EOS (all ones) shorter than a byte.
        return bitsSinceSymbol <= 7 && onesSinceSymbol ? written : -1;
    }

    /// <summary>Length in bytes of <paramref name="source"/> Huffman-encoded.</summary>
    public static int GetEncodedLength(ReadOnlySpan<byte> source)
    {
        long bits = 0;
        foreach (byte b in source) bits += CodeLengths[b];
        return (int)((bits + 7) / 8);
    }

    /// <summary>Huffman-encodes <paramref name="source"/>, padding with EOS bits; returns bytes written.</summary>
    public static int Encode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        ulong accumulator = 0;
        int pending = 0;
        int written = 0;
        foreach (byte b in source)
        {
            accumulator = (accumulator << CodeLengths[b]) | Codes[b];
            pending += CodeLengths[b];
            while (pending >= 8)
            {
                pending -= 8;
                destination[written++] = (byte)(accumulator >> pending);
            }
        }
        if (pending > 0)
            destination[written++] = (byte)((accumulator << (8 - pending)) | (0xFFu >> pending));
        return written;
    }
}
