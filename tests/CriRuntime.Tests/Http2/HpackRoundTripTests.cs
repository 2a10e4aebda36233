using System.Buffers;
using System.Text;
using CriRuntime.Hosting.Http2;
using Xunit;

namespace CriRuntime.Tests.Http2;

/// <summary>
/// Random header lists encoded every way HPACK allows on one connection state: the decoder must give
/// them back exactly, and the rewriter's output, decoded with a fresh decoder, must be the same lists
/// with only an invalid :authority replaced, in frames Kestrel accepts and without indexing.
/// </summary>
public sealed class HpackRoundTripTests
{
    private static readonly string[] CommonNames = [":method", ":scheme", ":path", ":authority", "content-type", "te", "user-agent", "grpc-timeout", "grpc-encoding", "x-custom", "cookie", "host"];
    private static readonly string[] Authorities = ["run/criruntime/criruntime.sock", "/tmp/x.sock", "localhost", "example.com:443", "[::1]:80", "", "a b", "user@host", "h\u00e9"];

    [Theory]
    [InlineData("localhost", true)]
    [InlineData("example.com:443", true)]
    [InlineData("[::1]:10010", true)]
    [InlineData("run/criruntime/criruntime.sock", false)]
    [InlineData("/tmp/x.sock", false)]
    [InlineData("", false)]
    [InlineData("user@host", false)]
    [InlineData("host:port", false)]
    [InlineData("[::1", false)]
    public void IsValidAuthority_ReplacesSocketPathsAndKeepsHosts(string authority, bool valid) =>
        Assert.Equal(valid, Http2AuthorityRewriter.IsValidAuthority(Encoding.Latin1.GetBytes(authority)));

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void DecoderReturnsWhatTheEncoderEncoded(int seed)
    {
        var random = new Random(seed);
        var encoder = new TestHpackEncoder(4096);
        var decoder = new HpackDecoder(4096);
        for (int i = 0; i < 3000; i++)
        {
            var headers = RandomHeaders(random);
            byte[] block = encoder.EncodeRandomly(headers, random, 4096);
            var sink = new RawHttp2Connection.ListSink();
            decoder.Decode(block, sink);
            Assert.Equal(headers, sink.Fields);
            Assert.Equal(encoder.Table, HpackRfcExampleTests.TableOf(decoder));
            Assert.Equal(encoder.TableSize, decoder.Table.Size);
        }
    }

    [Theory]
    [InlineData(11, 16384)]
    [InlineData(12, 100)]
    [InlineData(13, 16384)]
    public void RewriterOutput_IsTheInputWithOnlyInvalidAuthoritiesReplaced(int seed, int maxFrameSize)
    {
        var random = new Random(seed);
        var limits = new Http2RewriterLimits(4096, maxFrameSize, 32 * 1024);
        var encoder = new TestHpackEncoder(4096);
        using var rewriter = new Http2AuthorityRewriter(limits);
        var input = new MemoryStream();
        input.Write(RawHttp2Connection.Preface);
        var expected = new List<List<(string, string)>>();
        var expectedOther = new List<Http2Frame>();
        for (int i = 0; i < 2000; i++)
        {
            int streamId = 2 * i + 1;
            var headers = RandomHeaders(random);
            byte[] block = random.Next(2) == 0 ? encoder.EncodeRandomly(headers, random, 4096) : encoder.EncodeGrpcGoStyle(headers);
            WriteHeaderBlock(input, block, streamId, random, maxFrameSize);
            expected.Add([.. headers.Select(h => h.Name == ":authority" && !Http2AuthorityRewriter.IsValidAuthority(Encoding.Latin1.GetBytes(h.Value)) ? (h.Name, "localhost") : h)]);
            var data = RawHttp2Connection.Frame(Http2Frame.Data, Http2Frame.EndStream, streamId, RandomBytes(random, random.Next(0, Math.Min(maxFrameSize, 300))));
            input.Write(data);
            expectedOther.Add(new Http2Frame(Http2Frame.Data, Http2Frame.EndStream, streamId, data[9..]));
        }

        // Feed it in random-sized pieces, as a socket would deliver it.
        var output = new ArrayBufferWriter<byte>();
        byte[] all = input.ToArray();
        for (int pos = 0; pos < all.Length;)
        {
            int n = Math.Min(all.Length - pos, random.Next(1, 200));
            Assert.Equal(RewriteStatus.NeedMoreInput, rewriter.Process(new ReadOnlySequence<byte>(all, pos, n), output));
            pos += n;
        }

        var result = output.WrittenSpan.ToArray();
        Assert.True(result.AsSpan().StartsWith(RawHttp2Connection.Preface));
        var freshDecoder = new HpackDecoder(4096);
        var blocks = new List<List<(string, string)>>();
        var others = new List<Http2Frame>();
        var pending = new MemoryStream();
        foreach (var frame in ParseFrames(result.AsSpan(RawHttp2Connection.Preface.Length)))
        {
            Assert.True(frame.Payload.Length <= maxFrameSize, $"a {frame.Payload.Length}-octet frame exceeds {maxFrameSize}");
            if (frame.Type is Http2Frame.Headers or Http2Frame.Continuation)
            {
                Assert.Equal(0, frame.Flags & Http2Frame.Padded);
                pending.Write(frame.Type == Http2Frame.Headers && (frame.Flags & Http2Frame.Priority) != 0 ? frame.Payload[5..] : frame.Payload);
                if ((frame.Flags & Http2Frame.EndHeaders) == 0) continue;
                var sink = new RawHttp2Connection.ListSink();
                freshDecoder.Decode(pending.ToArray(), sink);
                pending.SetLength(0);
                Assert.Equal(0, freshDecoder.Table.Count);
                blocks.Add(sink.Fields);
            }
            else
            {
                others.Add(frame);
            }
        }
        Assert.Equal(expected.Count, blocks.Count);
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], blocks[i]);
        Assert.Equal(expectedOther.Count, others.Count);
        for (int i = 0; i < others.Count; i++)
        {
            Assert.Equal(expectedOther[i].StreamId, others[i].StreamId);
            Assert.Equal(expectedOther[i].Payload, others[i].Payload);
        }
        Assert.Equal(expected.Count, rewriter.HeaderBlocks);
    }

    /// <summary>Splits a block into HEADERS (random padding and priority) and CONTINUATION frames.</summary>
    private static void WriteHeaderBlock(Stream output, byte[] block, int streamId, Random random, int maxFrameSize)
    {
        bool padded = random.Next(3) == 0, priority = random.Next(3) == 0;
        int padLength = padded ? random.Next(0, Math.Min(50, maxFrameSize / 4)) : 0;
        int overhead = (padded ? 1 + padLength : 0) + (priority ? 5 : 0);
        int firstChunk = Math.Min(block.Length, Math.Min(maxFrameSize - overhead, random.Next(0, block.Length + 1)));
        var payload = new List<byte>();
        if (padded) payload.Add((byte)padLength);
        if (priority) payload.AddRange([0, 0, 0, 0, 16]);
        payload.AddRange(block.AsSpan(0, firstChunk));
        payload.AddRange(new byte[padLength]);
        bool endHeaders = firstChunk == block.Length;
        byte flags = (byte)((endHeaders ? Http2Frame.EndHeaders : 0) | (padded ? Http2Frame.Padded : 0) | (priority ? Http2Frame.Priority : 0));
        output.Write(RawHttp2Connection.Frame(Http2Frame.Headers, flags, streamId, payload.ToArray()));
        for (int pos = firstChunk; pos < block.Length;)
        {
            int n = Math.Min(block.Length - pos, random.Next(1, maxFrameSize + 1));
            output.Write(RawHttp2Connection.Frame(Http2Frame.Continuation, pos + n == block.Length ? Http2Frame.EndHeaders : (byte)0, streamId, block.AsSpan(pos, n)));
            pos += n;
        }
    }

    internal static List<Http2Frame> ParseFrames(ReadOnlySpan<byte> bytes)
    {
        var frames = new List<Http2Frame>();
        while (bytes.Length > 0)
        {
            Assert.True(bytes.Length >= 9, "truncated frame header");
            int length = (bytes[0] << 16) | (bytes[1] << 8) | bytes[2];
            Assert.True(bytes.Length >= 9 + length, "truncated frame");
            frames.Add(new Http2Frame(bytes[3], bytes[4], (int)(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes[5..]) & 0x7FFFFFFF), bytes.Slice(9, length).ToArray()));
            bytes = bytes[(9 + length)..];
        }
        return frames;
    }

    private static List<(string Name, string Value)> RandomHeaders(Random random)
    {
        var headers = new List<(string, string)>();
        int count = random.Next(0, 12);
        for (int i = 0; i < count; i++)
        {
            string name = random.Next(3) > 0 ? CommonNames[random.Next(CommonNames.Length)] : RandomString(random, 1, 20);
            string value = name == ":authority" && random.Next(2) == 0 ? Authorities[random.Next(Authorities.Length)]
                : random.Next(4) == 0 ? RandomString(random, 0, 300) : RandomString(random, 0, 12);
            headers.Add((name, value));
        }
        return headers;
    }

    private static string RandomString(Random random, int min, int max) =>
        Encoding.Latin1.GetString(random.Next(4) == 0 ? RandomBytes(random, random.Next(min, max + 1))
            : [.. Enumerable.Range(0, random.Next(min, max + 1)).Select(_ => (byte)random.Next('a', 'z' + 1))]);

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }
}
