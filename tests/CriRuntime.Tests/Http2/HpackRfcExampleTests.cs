using CriRuntime.Hosting.Http2;
using Xunit;

namespace CriRuntime.Tests.Http2;

/// <summary>The examples of RFC 7541 Appendix C: decoded fields and the dynamic table after each block.</summary>
public sealed class HpackRfcExampleTests
{
    [Theory]
    [InlineData(10, 5, "0a")]            // C.1.1
    [InlineData(1337, 5, "1f9a0a")]      // C.1.2
    [InlineData(42, 8, "2a")]            // C.1.3
    public void C1_Integers(int value, int prefixBits, string hex)
    {
        byte[] encoded = Convert.FromHexString(hex);
        int pos = 0;
        Assert.Equal(value, HpackDecoder.ReadInteger(encoded, ref pos, prefixBits));
        Assert.Equal(encoded.Length, pos);
        var written = new byte[HpackWriter.MaxIntegerLength];
        int n = HpackWriter.WriteInteger(written, value, prefixBits, 0);
        Assert.Equal(hex, Convert.ToHexString(written, 0, n).ToLowerInvariant());
    }

    [Fact]
    public void C1_IntegerOverflowAndTruncation_AreErrors()
    {
        Assert.Throws<HpackDecodingException>(() => { int p = 0; HpackDecoder.ReadInteger(Convert.FromHexString("1fffffffff7f"), ref p, 5); });
        Assert.Throws<HpackDecodingException>(() => { int p = 0; HpackDecoder.ReadInteger(Convert.FromHexString("1f9a"), ref p, 5); });
    }

    [Theory]
    [InlineData("400a637573746f6d2d6b65790d637573746f6d2d686561646572", "custom-key", "custom-header", 1, 55)] // C.2.1
    [InlineData("040c2f73616d706c652f70617468", ":path", "/sample/path", 0, 0)]                               // C.2.2
    [InlineData("100870617373776f726406736563726574", "password", "secret", 0, 0)]                              // C.2.3
    [InlineData("82", ":method", "GET", 0, 0)]                                                                  // C.2.4
    public void C2_HeaderFieldRepresentations(string hex, string name, string value, int tableCount, int tableSize)
    {
        var decoder = new HpackDecoder(4096);
        var fields = Decode(decoder, hex);
        Assert.Equal([(name, value)], fields);
        Assert.Equal(tableCount, decoder.Table.Count);
        Assert.Equal(tableSize, decoder.Table.Size);
    }

    private static readonly (string, string)[] Request1 = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
    private static readonly (string, string)[] Request2 = [.. Request1, ("cache-control", "no-cache")];
    private static readonly (string, string)[] Request3 = [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"), ("custom-key", "custom-value")];
    private static readonly (string, string)[] Table1 = [(":authority", "www.example.com")];
    private static readonly (string, string)[] Table2 = [("cache-control", "no-cache"), (":authority", "www.example.com")];
    private static readonly (string, string)[] Table3 = [("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")];

    [Fact]
    public void C3_RequestsWithoutHuffman() => CheckSequence(4096,
        ("828684410f7777772e6578616d706c652e636f6d", Request1, Table1, 57),
        ("828684be58086e6f2d6361636865", Request2, Table2, 110),
        ("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565", Request3, Table3, 164));

    [Fact]
    public void C4_RequestsWithHuffman() => CheckSequence(4096,
        ("828684418cf1e3c2e5f23a6ba0ab90f4ff", Request1, Table1, 57),
        ("828684be5886a8eb10649cbf", Request2, Table2, 110),
        ("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf", Request3, Table3, 164));

    private const string Date1 = "Mon, 21 Oct 2013 20:13:21 GMT", Date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
    private const string Location = "https://www.example.com", Cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
    private static readonly (string, string)[] Response1 = [(":status", "302"), ("cache-control", "private"), ("date", Date1), ("location", Location)];
    private static readonly (string, string)[] Response2 = [(":status", "307"), ("cache-control", "private"), ("date", Date1), ("location", Location)];
    private static readonly (string, string)[] Response3 = [(":status", "200"), ("cache-control", "private"), ("date", Date2), ("location", Location), ("content-encoding", "gzip"), ("set-cookie", Cookie)];
    private static readonly (string, string)[] ResponseTable1 = [("location", Location), ("date", Date1), ("cache-control", "private"), (":status", "302")];
    private static readonly (string, string)[] ResponseTable2 = [(":status", "307"), ("location", Location), ("date", Date1), ("cache-control", "private")];
    private static readonly (string, string)[] ResponseTable3 = [("set-cookie", Cookie), ("content-encoding", "gzip"), ("date", Date2)];

    [Fact]
    public void C5_ResponsesWithoutHuffman_EvictAtTableSize256() => CheckSequence(256,
        ("4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d", Response1, ResponseTable1, 222),
        ("4803333037c1c0bf", Response2, ResponseTable2, 222),
        ("88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31", Response3, ResponseTable3, 215));

    [Fact]
    public void C6_ResponsesWithHuffman_EvictAtTableSize256() => CheckSequence(256,
        ("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3", Response1, ResponseTable1, 222),
        ("4883640effc1c0bf", Response2, ResponseTable2, 222),
        ("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007", Response3, ResponseTable3, 215));

    [Fact]
    public void HuffmanEncoder_ReproducesTheRfcExamples()
    {
        var output = new byte[64];
        int n = Huffman.Encode("www.example.com"u8, output);
        Assert.Equal("f1e3c2e5f23a6ba0ab90f4ff", Convert.ToHexString(output, 0, n).ToLowerInvariant());
        n = Huffman.Encode("custom-value"u8, output);
        Assert.Equal("25a849e95bb8e8b4bf", Convert.ToHexString(output, 0, n).ToLowerInvariant());
    }

    [Theory]
    [InlineData("00", "padding of zeros")]
    [InlineData("ffffffff", "EOS or 8+ bits of padding")]
    public void InvalidHuffman_IsRefused(string hex, string why)
    {
        var output = new byte[16];
        Assert.True(Huffman.Decode(Convert.FromHexString(hex), output) < 0, why);
    }

    private static void CheckSequence(int tableSize, params (string Hex, (string, string)[] Fields, (string, string)[] Table, int Size)[] blocks)
    {
        var decoder = new HpackDecoder(tableSize);
        foreach (var (hex, fields, table, size) in blocks)
        {
            Assert.Equal(fields, Decode(decoder, hex));
            Assert.Equal(table, TableOf(decoder));
            Assert.Equal(size, decoder.Table.Size);
        }
    }

    internal static List<(string, string)> Decode(HpackDecoder decoder, string hex)
    {
        var sink = new RawHttp2Connection.ListSink();
        decoder.Decode(Convert.FromHexString(hex), sink);
        return sink.Fields;
    }

    internal static List<(string, string)> TableOf(HpackDecoder decoder)
    {
        var entries = new List<(string, string)>();
        for (int i = 0; i < decoder.Table.Count; i++)
            entries.Add((System.Text.Encoding.Latin1.GetString(decoder.Table.Name(i)), System.Text.Encoding.Latin1.GetString(decoder.Table.Value(i))));
        return entries;
    }
}
