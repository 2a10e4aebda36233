using System.Text;
using CriRuntime.Hosting.Http2;

namespace CriRuntime.Tests.Http2;

/// <summary>
/// A test-side HPACK encoder with its own model of the peer's dynamic table: every representation
/// (indexed, literal with incremental indexing, without indexing, never indexed, size updates),
/// names by index or literal, strings raw or Huffman. Header names and values are Latin-1 strings,
/// so any octet can be tested.
/// </summary>
internal sealed class TestHpackEncoder(int maxTableSize = 4096)
{
    private readonly List<(string Name, string Value)> table = []; // newest first
    private int size;

    public int MaxTableSize { get; private set; } = maxTableSize;
    public IReadOnlyList<(string Name, string Value)> Table => table;
    public int TableSize => size;

    private static readonly (string, string)[] Static = BuildStatic();

    private static (string, string)[] BuildStatic()
    {
        var result = new (string, string)[HpackStaticTable.Count];
        for (int i = 1; i <= HpackStaticTable.Count; i++)
            result[i - 1] = (Encoding.Latin1.GetString(HpackStaticTable.Name(i)), Encoding.Latin1.GetString(HpackStaticTable.Value(i)));
        return result;
    }

    /// <summary>Encodes as grpc-go does: indexed when the pair is in a table, else literal with incremental
    /// indexing (name indexed when known), Huffman when shorter.</summary>
    public byte[] EncodeGrpcGoStyle(IEnumerable<(string Name, string Value)> headers)
    {
        var output = new List<byte>();
        foreach (var (name, value) in headers)
        {
            int pair = FindPair(name, value);
            if (pair > 0)
            {
                WriteInteger(output, pair, 7, 0x80);
                continue;
            }
            WriteLiteral(output, name, value, 0x40, 6, FindName(name), huffman: null);
            Add(name, value);
        }
        return [.. output];
    }

    /// <summary>Encodes with random choices: size updates at the start, and for each field a random
    /// representation, name by index or literal, strings raw or Huffman.</summary>
    public byte[] EncodeRandomly(IEnumerable<(string Name, string Value)> headers, Random random, int tableSizeLimit)
    {
        var output = new List<byte>();
        int updates = random.Next(10) == 0 ? random.Next(1, 3) : 0;
        for (int i = 0; i < updates; i++)
        {
            int newSize = random.Next(3) == 0 ? 0 : random.Next(tableSizeLimit + 1);
            WriteInteger(output, newSize, 5, 0x20);
            SetMaxSize(newSize);
        }
        foreach (var (name, value) in headers)
        {
            int pair = FindPair(name, value);
            if (pair > 0 && random.Next(2) == 0)
            {
                WriteInteger(output, pair, 7, 0x80);
                continue;
            }
            int nameIndex = random.Next(3) == 0 ? 0 : FindName(name);
            bool huffman = random.Next(2) == 0;
            switch (random.Next(3))
            {
                case 0:
                    WriteLiteral(output, name, value, 0x40, 6, nameIndex, huffman);
                    Add(name, value);
                    break;
                case 1:
                    WriteLiteral(output, name, value, 0x00, 4, nameIndex, huffman);
                    break;
                default:
                    WriteLiteral(output, name, value, 0x10, 4, nameIndex, huffman);
                    break;
            }
        }
        return [.. output];
    }

    public void SetMaxSize(int newSize)
    {
        MaxTableSize = newSize;
        Evict(newSize);
    }

    private void Add(string name, string value)
    {
        int entry = Encoding.Latin1.GetByteCount(name) + Encoding.Latin1.GetByteCount(value) + 32;
        if (entry > MaxTableSize)
        {
            table.Clear();
            size = 0;
            return;
        }
        Evict(MaxTableSize - entry);
        table.Insert(0, (name, value));
        size += entry;
    }

    private void Evict(int target)
    {
        while (size > target)
        {
            var (n, v) = table[^1];
            table.RemoveAt(table.Count - 1);
            size -= n.Length + v.Length + 32;
        }
    }

    private int FindPair(string name, string value)
    {
        for (int i = 0; i < Static.Length; i++)
            if (Static[i].Item1 == name && Static[i].Item2 == value) return i + 1;
        for (int i = 0; i < table.Count; i++)
            if (table[i].Name == name && table[i].Value == value) return Static.Length + 1 + i;
        return 0;
    }

    private int FindName(string name)
    {
        for (int i = 0; i < Static.Length; i++)
            if (Static[i].Item1 == name) return i + 1;
        for (int i = 0; i < table.Count; i++)
            if (table[i].Name == name) return Static.Length + 1 + i;
        return 0;
    }

    private static void WriteLiteral(List<byte> output, string name, string value, byte flags, int prefix, int nameIndex, bool? huffman)
    {
        WriteInteger(output, nameIndex, prefix, flags);
        if (nameIndex == 0) WriteString(output, name, huffman);
        WriteString(output, value, huffman);
    }

    public static void WriteInteger(List<byte> output, int value, int prefixBits, byte flags)
    {
        Span<byte> buffer = stackalloc byte[HpackWriter.MaxIntegerLength];
        int n = HpackWriter.WriteInteger(buffer, value, prefixBits, flags);
        output.AddRange(buffer[..n]);
    }

    /// <summary>Writes a string literal; Huffman when asked, or (null) when it is shorter, as grpc-go does.</summary>
    public static void WriteString(List<byte> output, string value, bool? huffman)
    {
        byte[] raw = Encoding.Latin1.GetBytes(value);
        bool useHuffman = huffman ?? Huffman.GetEncodedLength(raw) < raw.Length;
        var buffer = new byte[HpackWriter.MaxIntegerLength + Math.Max(raw.Length, Huffman.GetEncodedLength(raw))];
        int n = HpackWriter.WriteString(buffer, raw, useHuffman);
        output.AddRange(buffer.AsSpan(0, n));
    }
}
