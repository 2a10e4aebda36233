using System.Buffers.Binary;
using CriRuntime.Native;
using CriRuntime.Streaming.Spdy;
using Xunit;

namespace CriRuntime.Tests.Streaming;

/// <summary>The SPDY/3 codec: dictionary, zlib with it, header blocks and frames, against bytes made elsewhere.</summary>
public class SpdyCodecTests
{
    // Two SYN_STREAM frames as moby/spdystream writes them (zlib level 9, SPDY/3 dictionary, one sync flush per
    // block, one compression stream for the connection), made with Python's zlib module: streams 1 and 3 with
    // "streamtype: error" and "streamtype: stdout". The second block reuses the first one's history.
    private const string SynStream1 = "80030001000000280000000100000000000078f9e3c6a7c202a62346703a2b294a4dcc851625aca9a08006000000ffff";
    private const string SynStream3 = "800300010000001900000003000000000000c22a054ccc29f9a52500000000ffff";

    [Fact]
    public void Dictionary_is_the_drafts_1423_bytes_with_adler32_e3c6a7c2()
    {
        var bytes = SpdyDictionary.Bytes;
        Assert.Equal(1423, bytes.Length);
        uint a = 1, b = 0;
        foreach (var x in bytes)
        {
            a = (a + x) % 65521;
            b = (b + a) % 65521;
        }
        Assert.Equal(0xe3c6a7c2u, b << 16 | a);
    }

    [Fact]
    public async Task Reads_syn_streams_compressed_by_another_zlib_with_shared_history()
    {
        var input = new MemoryStream(Convert.FromHexString(SynStream1 + SynStream3));
        using var reader = new SpdyFrameReader(input);
        var first = Assert.IsType<SpdySynStreamFrame>(await reader.ReadFrameAsync(default));
        Assert.Equal(1u, first.StreamId);
        Assert.Equal([new SpdyHeader("streamtype", "error")], first.Headers);
        var second = Assert.IsType<SpdySynStreamFrame>(await reader.ReadFrameAsync(default));
        Assert.Equal(3u, second.StreamId);
        Assert.Equal([new SpdyHeader("streamtype", "stdout")], second.Headers);
        Assert.Null(await reader.ReadFrameAsync(default));
    }

    [Fact]
    public async Task Written_frames_read_back_and_header_blocks_share_one_compression_stream()
    {
        var wire = new MemoryStream();
        using var writer = new SpdyFrameWriter(wire);
        IReadOnlyList<SpdyHeader> headers = [new("streamtype", "data"), new("port", "80"), new("requestid", "0"), new("x-multi", "a"), new("x-multi", "b")];
        await writer.WriteFrameAsync(new SpdySynStreamFrame(1, 0, 2, SpdyFlags.Fin, headers), default);
        var firstLength = wire.Length;
        await writer.WriteFrameAsync(new SpdySynReplyFrame(1, SpdyFlags.None, headers), default);
        // The same headers again compress to a few bytes: the second block refers back to the first.
        Assert.True(wire.Length - firstLength < firstLength - 10, $"second frame {wire.Length - firstLength} bytes, first {firstLength}");
        await writer.WriteFrameAsync(new SpdyHeadersFrame(1, SpdyFlags.Fin, [new("status", "ok")]), default);
        await writer.WriteFrameAsync(new SpdyDataFrame(1, SpdyFlags.Fin, new byte[] { 1, 2, 3 }), default);
        await writer.WriteFrameAsync(new SpdyRstStreamFrame(1, SpdyRstStatus.Cancel), default);
        await writer.WriteFrameAsync(new SpdySettingsFrame(0, [new SpdySetting(1, 7, 65536)]), default);
        await writer.WriteFrameAsync(new SpdyPingFrame(2), default);
        await writer.WriteFrameAsync(new SpdyGoAwayFrame(5, SpdyGoAwayStatus.ProtocolError), default);
        await writer.WriteFrameAsync(new SpdyWindowUpdateFrame(0, 1000), default);

        wire.Position = 0;
        using var reader = new SpdyFrameReader(wire);
        var syn = Assert.IsType<SpdySynStreamFrame>(await reader.ReadFrameAsync(default));
        Assert.Equal((1u, 2, SpdyFlags.Fin), (syn.StreamId, (int)syn.Priority, syn.Flags));
        Assert.Equal(headers, syn.Headers);
        Assert.Equal(headers, Assert.IsType<SpdySynReplyFrame>(await reader.ReadFrameAsync(default)).Headers);
        Assert.Equal([new SpdyHeader("status", "ok")], Assert.IsType<SpdyHeadersFrame>(await reader.ReadFrameAsync(default)).Headers);
        var data = Assert.IsType<SpdyDataFrame>(await reader.ReadFrameAsync(default));
        Assert.Equal((1u, SpdyFlags.Fin), (data.StreamId, data.Flags));
        Assert.Equal(new byte[] { 1, 2, 3 }, data.Data.ToArray());
        Assert.Equal(new SpdyRstStreamFrame(1, SpdyRstStatus.Cancel), await reader.ReadFrameAsync(default));
        var settings = Assert.IsType<SpdySettingsFrame>(await reader.ReadFrameAsync(default));
        Assert.Equal([new SpdySetting(1, 7, 65536)], settings.Settings);
        Assert.Equal(new SpdyPingFrame(2), await reader.ReadFrameAsync(default));
        Assert.Equal(new SpdyGoAwayFrame(5, SpdyGoAwayStatus.ProtocolError), await reader.ReadFrameAsync(default));
        Assert.Equal(new SpdyWindowUpdateFrame(0, 1000), await reader.ReadFrameAsync(default));
        Assert.Null(await reader.ReadFrameAsync(default));
    }

    [Theory]
    // Known wire forms from the draft's layouts: C bit, version 3, type, flags, 24-bit length, body.
    [InlineData("ping", "80030006000000040000000b")]
    [InlineData("rst", "800300030000000800000005" + "00000005")]
    [InlineData("goaway", "80030007000000080000000300000000")]
    [InlineData("window", "80030009000000080000000700001000")]
    [InlineData("data", "00000007010000026869")]
    public void Writes_frames_byte_for_byte(string kind, string hex)
    {
        SpdyFrame frame = kind switch
        {
            "ping" => new SpdyPingFrame(11),
            "rst" => new SpdyRstStreamFrame(5, SpdyRstStatus.Cancel),
            "goaway" => new SpdyGoAwayFrame(3, SpdyGoAwayStatus.Ok),
            "window" => new SpdyWindowUpdateFrame(7, 4096),
            _ => new SpdyDataFrame(7, SpdyFlags.Fin, "hi"u8.ToArray()),
        };
        using var writer = new SpdyFrameWriter(Stream.Null);
        var buffer = new ByteBuffer();
        writer.Serialize(frame, buffer);
        Assert.Equal(hex, Convert.ToHexString(buffer.Span).ToLowerInvariant());
    }

    [Fact]
    public async Task Unknown_control_frame_types_are_skipped()
    {
        // A NOOP (type 5, removed in SPDY/3) with 4 bytes, then a PING.
        var input = new MemoryStream(Convert.FromHexString("8003000500000004deadbeef" + "800300060000000400000001"));
        using var reader = new SpdyFrameReader(input);
        Assert.Equal(new SpdyPingFrame(1), await reader.ReadFrameAsync(default));
    }

    public static TheoryData<string, string, string> Malformed => new()
    {
        { "version 2", "800200060000000400000001", "version 2" },
        { "ping of 5 bytes", "80030006000000050000000100", "not 4" },
        { "ping with flags", "800300060100000400000001", "flags" },
        { "rst status 0", "80030003000000080000000100000000", "status 0" },
        { "rst on stream 0", "80030003000000080000000000000001", "stream id 0" },
        { "settings count lies", "800300040000000c000000020000000700010000", "entries" },
        { "window delta 0", "80030009000000080000000100000000", "delta 0" },
        { "data on stream 0", "0000000000000001ff", "stream id 0" },
        { "frame longer than the limit", "00000001" + "00200000", "exceeds the limit" },
        { "syn_stream too short", "80030001000000040000000100", "shorter than 10" },
        { "header block not zlib", "8003000200000008000000010102030405", "header block" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task Malformed_frames_are_protocol_errors(string what, string hex, string messagePart)
    {
        using var reader = new SpdyFrameReader(new MemoryStream(Convert.FromHexString(hex)), new SpdyLimits { MaxFramePayload = 1 << 20 });
        var e = await Assert.ThrowsAsync<SpdyProtocolException>(async () => await reader.ReadFrameAsync(default));
        Assert.True(e.Message.Contains(messagePart, StringComparison.Ordinal), $"{what}: {e.Message}");
    }

    [Fact]
    public async Task A_stream_ending_inside_a_frame_is_end_of_stream_not_a_hang()
    {
        using var reader = new SpdyFrameReader(new MemoryStream(Convert.FromHexString("80030006000000040000")));
        await Assert.ThrowsAsync<EndOfStreamException>(async () => await reader.ReadFrameAsync(default));
        using var reader2 = new SpdyFrameReader(new MemoryStream(Convert.FromHexString("800300")));
        await Assert.ThrowsAsync<EndOfStreamException>(async () => await reader2.ReadFrameAsync(default));
    }

    [Fact]
    public async Task A_header_block_that_inflates_past_the_limit_is_refused_without_inflating_it()
    {
        // 16 MiB of one repeated header value compresses to about 16 KiB: a zlib bomb.
        using var compressor = ZlibDictionaryStream.CreateCompressor(SpdyDictionary.Bytes, level: 9);
        var block = new ByteBuffer();
        var value = new byte[16 << 20];
        Array.Fill(value, (byte)'a');
        var head = new byte[4 + 4 + 1 + 4];
        BinaryPrimitives.WriteUInt32BigEndian(head, 1);
        BinaryPrimitives.WriteUInt32BigEndian(head.AsSpan(4), 1);
        head[8] = (byte)'x';
        BinaryPrimitives.WriteUInt32BigEndian(head.AsSpan(9), (uint)value.Length);
        compressor.CompressAndFlush(head.Concat(value).ToArray(), block);
        Assert.True(block.Length < 1 << 20);

        var frame = new byte[8 + 4 + block.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, 0x80030002);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(4), (uint)(4 + block.Length));
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(8), 1);
        block.Span.CopyTo(frame.AsSpan(12));
        using var reader = new SpdyFrameReader(new MemoryStream(frame));
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = await Assert.ThrowsAsync<SpdyProtocolException>(async () => await reader.ReadFrameAsync(default));
        Assert.Contains("more than 262144 bytes", e.Message);
        // Far less than the 16 MiB the block claims was allocated to find that out.
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 8 << 20);
    }

    public static TheoryData<string, string> BadBlocks => new()
    {
        { "00000001" + "00000005" + "6162636465", "ends inside a value length" },
        { "7fffffff" + "00000001" + "61" + "00000000", "claims 2147483647 pairs" },            // a count that cannot fit
        { "00000001" + "00000001" + "41" + "00000000", "lower-case" },                         // upper-case name
        { "00000002" + "00000001" + "61" + "00000000" + "00000001" + "61" + "00000000", "twice" },
        { "00000001" + "00000000" + "00000000", "empty" },
        { "00000001" + "00000001" + "61" + "ffffffff", "runs past" },
        { "00000000" + "00", "follow the last" },
    };

    [Theory]
    [MemberData(nameof(BadBlocks))]
    public void Bad_header_blocks_are_protocol_errors(string hex, string messagePart)
    {
        var e = Assert.Throws<SpdyProtocolException>(() => SpdyHeaderBlock.Decode(Convert.FromHexString(hex), SpdyLimits.Default));
        Assert.Contains(messagePart, e.Message);
    }

    [Fact]
    public void Header_values_split_at_nul_and_names_are_lowered_on_encode()
    {
        var buffer = new ByteBuffer();
        SpdyHeaderBlock.Encode([new("X-Stream-Protocol-Version", "v4.channel.k8s.io"), new("x-stream-protocol-version", "v3.channel.k8s.io")], buffer);
        var headers = SpdyHeaderBlock.Decode(buffer.Span, SpdyLimits.Default);
        Assert.Equal([new SpdyHeader("x-stream-protocol-version", "v4.channel.k8s.io"), new SpdyHeader("x-stream-protocol-version", "v3.channel.k8s.io")], headers);
    }

    [Fact]
    public void A_block_compressed_without_the_dictionary_is_refused()
    {
        // zlib header 78 bb with FDICT and a different dictionary id: inflate asks for a dictionary that is not SPDY's.
        var other = ZlibDictionaryStream.CreateCompressor("not the spdy dictionary"u8.ToArray());
        var block = new ByteBuffer();
        other.CompressAndFlush(new byte[] { 0, 0, 0, 0 }, block);
        using var inflater = ZlibDictionaryStream.CreateDecompressor(SpdyDictionary.Bytes);
        var e = Assert.Throws<InvalidDataException>(() => inflater.Decompress(block.Span, new ByteBuffer(), 1024));
        Assert.Contains("dictionary", e.Message);
        other.Dispose();
    }
}
