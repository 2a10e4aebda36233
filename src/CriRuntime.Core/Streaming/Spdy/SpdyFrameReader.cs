using System.Buffers.Binary;
using CriRuntime.Native;

namespace CriRuntime.Streaming.Spdy;

/// <summary>
/// Reads SPDY/3.1 frames from a byte stream, inflating header blocks with the connection's shared zlib state.
/// Every bound in <see cref="SpdyLimits"/> is checked before anything is allocated for it. Malformed input is a
/// <see cref="SpdyProtocolException"/> (a session error); a stream that ends inside a frame is an
/// <see cref="EndOfStreamException"/>. Not thread-safe: one reader loop per connection.
/// </summary>
public sealed class SpdyFrameReader(Stream input, SpdyLimits? limits = null) : IDisposable
{
    public const ushort Version = 3;

    private readonly SpdyLimits limits = limits ?? SpdyLimits.Default;
    private readonly byte[] head = new byte[8];
    private readonly ByteBuffer inflated = new(1024);
    private ZlibDictionaryStream? decompressor;
    private byte[] payload = new byte[256];

    /// <summary>The next frame, or null when the stream ends cleanly between frames.</summary>
    public async ValueTask<SpdyFrame?> ReadFrameAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var got = await ReadAtLeastAsync(head, 8, cancellationToken).ConfigureAwait(false);
            if (got == 0) return null;
            if (got < 8) throw new EndOfStreamException("the connection ended inside a SPDY frame header");
            var first = BinaryPrimitives.ReadUInt32BigEndian(head);
            var flags = head[4];
            var length = (int)(BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(4)) & 0xffffff);
            if (length > limits.MaxFramePayload)
                throw new SpdyProtocolException($"a frame of {length} bytes exceeds the limit of {limits.MaxFramePayload}");

            if ((first & 0x80000000) == 0)
            {
                var streamId = first & 0x7fffffff;
                if (streamId == 0) throw new SpdyProtocolException("a DATA frame has stream id 0");
                if ((flags & ~(byte)SpdyFlags.Fin) != 0) throw new SpdyProtocolException($"a DATA frame has unknown flags 0x{flags:x2}");
                // DATA is handed to the stream's reader, so it gets its own array.
                var data = length == 0 ? [] : new byte[length];
                await ReadExactAsync(data, cancellationToken).ConfigureAwait(false);
                return new SpdyDataFrame(streamId, (SpdyFlags)flags, data);
            }

            var version = (ushort)((first >> 16) & 0x7fff);
            var type = (ushort)(first & 0xffff);
            if (payload.Length < length) payload = new byte[Math.Max(length, payload.Length * 2)];
            var body = payload.AsMemory(0, length);
            await ReadExactAsync(body, cancellationToken).ConfigureAwait(false);
            if (version != Version) throw new SpdyProtocolException($"a control frame has SPDY version {version}; only version 3 is spoken");
            var frame = ParseControl((SpdyFrameType)type, flags, body.Span);
            // Unknown control frame types (NOOP, CREDENTIAL, future ones) are skipped, as the draft requires.
            if (frame != null) return frame;
        }
    }

    private SpdyFrame? ParseControl(SpdyFrameType type, byte flags, ReadOnlySpan<byte> body)
    {
        switch (type)
        {
            case SpdyFrameType.SynStream:
            {
                RequireAtLeast(type, body, 10);
                CheckFlags(type, flags, SpdyFlags.Fin | SpdyFlags.Unidirectional);
                var streamId = StreamId(type, body);
                var associated = BinaryPrimitives.ReadUInt32BigEndian(body[4..]) & 0x7fffffff;
                var priority = (byte)(body[8] >> 5);
                var headers = InflateHeaders(type, body[10..]);
                return new SpdySynStreamFrame(streamId, associated, priority, (SpdyFlags)flags, headers);
            }
            case SpdyFrameType.SynReply:
            {
                RequireAtLeast(type, body, 4);
                CheckFlags(type, flags, SpdyFlags.Fin);
                var streamId = StreamId(type, body);
                return new SpdySynReplyFrame(streamId, (SpdyFlags)flags, InflateHeaders(type, body[4..]));
            }
            case SpdyFrameType.Headers:
            {
                RequireAtLeast(type, body, 4);
                CheckFlags(type, flags, SpdyFlags.Fin);
                var streamId = StreamId(type, body);
                return new SpdyHeadersFrame(streamId, (SpdyFlags)flags, InflateHeaders(type, body[4..]));
            }
            case SpdyFrameType.RstStream:
            {
                RequireExactly(type, body, 8);
                CheckFlags(type, flags, SpdyFlags.None);
                var status = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
                if (status == 0) throw new SpdyProtocolException("a RST_STREAM frame has status 0");
                return new SpdyRstStreamFrame(StreamId(type, body), (SpdyRstStatus)status);
            }
            case SpdyFrameType.Settings:
            {
                RequireAtLeast(type, body, 4);
                var count = BinaryPrimitives.ReadUInt32BigEndian(body);
                if (count > limits.MaxSettings || (long)count * 8 != body.Length - 4)
                    throw new SpdyProtocolException($"a SETTINGS frame of {body.Length} bytes claims {count} entries (at most {limits.MaxSettings})");
                var settings = new SpdySetting[count];
                for (var i = 0; i < count; i++)
                {
                    var entry = body.Slice(4 + i * 8, 8);
                    var flagAndId = BinaryPrimitives.ReadUInt32BigEndian(entry);
                    settings[i] = new SpdySetting((byte)(flagAndId >> 24), flagAndId & 0xffffff, BinaryPrimitives.ReadUInt32BigEndian(entry[4..]));
                }
                return new SpdySettingsFrame(flags, settings);
            }
            case SpdyFrameType.Ping:
                RequireExactly(type, body, 4);
                CheckFlags(type, flags, SpdyFlags.None);
                return new SpdyPingFrame(BinaryPrimitives.ReadUInt32BigEndian(body));
            case SpdyFrameType.GoAway:
                RequireExactly(type, body, 8);
                CheckFlags(type, flags, SpdyFlags.None);
                return new SpdyGoAwayFrame(BinaryPrimitives.ReadUInt32BigEndian(body) & 0x7fffffff,
                    (SpdyGoAwayStatus)BinaryPrimitives.ReadUInt32BigEndian(body[4..]));
            case SpdyFrameType.WindowUpdate:
            {
                RequireExactly(type, body, 8);
                CheckFlags(type, flags, SpdyFlags.None);
                // Stream 0 is the SPDY/3.1 session window.
                var streamId = BinaryPrimitives.ReadUInt32BigEndian(body) & 0x7fffffff;
                var delta = BinaryPrimitives.ReadUInt32BigEndian(body[4..]) & 0x7fffffff;
                if (delta == 0) throw new SpdyProtocolException("a WINDOW_UPDATE frame has delta 0");
                return new SpdyWindowUpdateFrame(streamId, delta);
            }
            default:
                return null;
        }
    }

    private List<SpdyHeader> InflateHeaders(SpdyFrameType type, ReadOnlySpan<byte> compressed)
    {
        decompressor ??= ZlibDictionaryStream.CreateDecompressor(SpdyDictionary.Bytes);
        inflated.Clear();
        try
        {
            decompressor.Decompress(compressed, inflated, limits.MaxHeaderBlockBytes);
        }
        catch (InvalidDataException e)
        {
            throw new SpdyProtocolException($"{type} header block: {e.Message}", e);
        }
        return SpdyHeaderBlock.Decode(inflated.Span, limits);
    }

    private static uint StreamId(SpdyFrameType type, ReadOnlySpan<byte> body)
    {
        var id = BinaryPrimitives.ReadUInt32BigEndian(body) & 0x7fffffff;
        if (id == 0) throw new SpdyProtocolException($"a {type} frame has stream id 0");
        return id;
    }

    private static void RequireAtLeast(SpdyFrameType type, ReadOnlySpan<byte> body, int min)
    {
        if (body.Length < min) throw new SpdyProtocolException($"a {type} frame of {body.Length} bytes is shorter than {min}");
    }

    private static void RequireExactly(SpdyFrameType type, ReadOnlySpan<byte> body, int size)
    {
        if (body.Length != size) throw new SpdyProtocolException($"a {type} frame has {body.Length} bytes, not {size}");
    }

    private static void CheckFlags(SpdyFrameType type, byte flags, SpdyFlags allowed)
    {
        if ((flags & ~(byte)allowed) != 0) throw new SpdyProtocolException($"a {type} frame has unknown flags 0x{flags:x2}");
    }

    private async ValueTask<int> ReadAtLeastAsync(Memory<byte> buffer, int min, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < min)
        {
            var n = await input.ReadAsync(buffer[total..], cancellationToken).ConfigureAwait(false);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    private async ValueTask ReadExactAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (await ReadAtLeastAsync(buffer, buffer.Length, cancellationToken).ConfigureAwait(false) < buffer.Length)
            throw new EndOfStreamException("the connection ended inside a SPDY frame");
    }

    public void Dispose() => decompressor?.Dispose();
}
