namespace CriRuntime.Hosting.Http2;

/// <summary>How a field was represented in the header block (RFC 7541 §6).</summary>
internal enum HpackRepresentation
{
    Indexed,
    IncrementalIndexing,
    WithoutIndexing,
    NeverIndexed,
}

/// <summary>Receives the fields of a header block in order.</summary>
internal interface IHpackHeaderSink
{
    void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, HpackRepresentation representation);
}

/// <summary>A header block that is not valid HPACK: a connection error (COMPRESSION_ERROR) in HTTP/2.</summary>
internal sealed class HpackDecodingException(string message) : Exception(message);

/// <summary>
/// Decodes HPACK header blocks (RFC 7541) with one connection's decoding state: the static table,
/// a dynamic table bounded by the SETTINGS_HEADER_TABLE_SIZE the server advertised, Huffman
/// strings. Integers and string lengths are checked against the bytes at hand before anything is
/// allocated, so a peer's numbers never size a buffer.
/// </summary>
internal sealed class HpackDecoder
{
    private readonly int maxTableSizeLimit;
    private byte[] nameScratch = [];
    private byte[] valueScratch = [];

    /// <param name="maxTableSizeLimit">The SETTINGS_HEADER_TABLE_SIZE advertised to the peer: the
    /// initial table size and the most a size update may ask for.</param>
    public HpackDecoder(int maxTableSizeLimit)
    {
        this.maxTableSizeLimit = maxTableSizeLimit;
        Table = new HpackDynamicTable(maxTableSizeLimit);
    }

    public HpackDynamicTable Table { get; }

    /// <summary>Decodes one complete header block, calling <paramref name="sink"/> for each field.</summary>
    /// <exception cref="HpackDecodingException">The block is malformed; the decoder's state is then undefined.</exception>
    public void Decode(ReadOnlySpan<byte> block, IHpackHeaderSink sink)
    {
        int pos = 0;
        bool fieldSeen = false;
        while (pos < block.Length)
        {
            byte b = block[pos];
            if ((b & 0x80) != 0)
            {
                int index = ReadInteger(block, ref pos, 7);
                if (index == 0) throw new HpackDecodingException("indexed header field with index 0");
                GetEntry(index, out var name, out var value);
                sink.OnHeader(name, value, HpackRepresentation.Indexed);
                fieldSeen = true;
            }
            else if ((b & 0xC0) == 0x40)
            {
                ReadLiteral(block, ref pos, 6, out var name, out var value);
                sink.OnHeader(name, value, HpackRepresentation.IncrementalIndexing);
                Table.Add(name, value);
                fieldSeen = true;
            }
            else if ((b & 0xE0) == 0x20)
            {
                // §4.2: a size update may only open a header block.
                if (fieldSeen) throw new HpackDecodingException("dynamic table size update after a header field");
                int size = ReadInteger(block, ref pos, 5);
                if (size > maxTableSizeLimit)
                    throw new HpackDecodingException($"dynamic table size update to {size} above the advertised {maxTableSizeLimit}");
                Table.SetMaxSize(size);
            }
            else
            {
                var representation = (b & 0x10) != 0 ? HpackRepresentation.NeverIndexed : HpackRepresentation.WithoutIndexing;
                ReadLiteral(block, ref pos, 4, out var name, out var value);
                sink.OnHeader(name, value, representation);
                fieldSeen = true;
            }
        }
    }

    private void GetEntry(int index, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        if (index <= HpackStaticTable.Count)
        {
            name = HpackStaticTable.Name(index);
            value = HpackStaticTable.Value(index);
            return;
        }
        int dynamicIndex = index - HpackStaticTable.Count - 1;
        if (dynamicIndex >= Table.Count)
            throw new HpackDecodingException($"header index {index} beyond the {Table.Count} dynamic table entries");
        name = Table.Name(dynamicIndex);
        value = Table.Value(dynamicIndex);
    }

    private void ReadLiteral(ReadOnlySpan<byte> block, ref int pos, int prefixBits, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        int nameIndex = ReadInteger(block, ref pos, prefixBits);
        if (nameIndex == 0)
            name = ReadString(block, ref pos, ref nameScratch);
        else
            GetEntry(nameIndex, out name, out _);
        value = ReadString(block, ref pos, ref valueScratch);
    }

    private static ReadOnlySpan<byte> ReadString(ReadOnlySpan<byte> block, ref int pos, ref byte[] scratch)
    {
        if (pos >= block.Length) throw new HpackDecodingException("header block ends before a string literal");
        bool huffman = (block[pos] & 0x80) != 0;
        int length = ReadInteger(block, ref pos, 7);
        if (length > block.Length - pos)
            throw new HpackDecodingException($"string literal of {length} octets with {block.Length - pos} left in the header block");
        var raw = block.Slice(pos, length);
        pos += length;
        if (!huffman) return raw;

        // The shortest Huffman code is 5 bits; the bound comes from bytes we hold, not from the peer.
        int maxDecoded = (int)((long)length * 8 / 5);
        if (scratch.Length < maxDecoded) scratch = new byte[Math.Max(maxDecoded, Math.Min(2 * scratch.Length, 64 * 1024))];
        int decoded = Huffman.Decode(raw, scratch);
        if (decoded < 0) throw new HpackDecodingException("invalid Huffman-encoded string");
        return scratch.AsSpan(0, decoded);
    }

    /// <summary>Reads an HPACK integer (§5.1) with an N-bit prefix; values above 2^28 are refused.</summary>
    internal static int ReadInteger(ReadOnlySpan<byte> block, ref int pos, int prefixBits)
    {
        if (pos >= block.Length) throw new HpackDecodingException("header block ends inside an integer");
        int mask = (1 << prefixBits) - 1;
        int value = block[pos++] & mask;
        if (value < mask) return value;
        int shift = 0;
        while (true)
        {
            if (pos >= block.Length) throw new HpackDecodingException("header block ends inside an integer");
            byte b = block[pos++];
            // Past 21 bits of continuation the value would exceed 2^28: no legitimate length or index is that big.
            if (shift > 21) throw new HpackDecodingException("integer too large");
            value += (b & 0x7F) << shift;
            shift += 7;
            if ((b & 0x80) == 0) return value;
        }
    }
}
