using System.Buffers.Binary;
using CriRuntime.Native;

namespace CriRuntime.Streaming.Spdy;

/// <summary>
/// Writes SPDY/3.1 frames, deflating header blocks into the connection's shared zlib stream (one sync flush per
/// block). Not thread-safe: the session serialises writes.
/// </summary>
public sealed class SpdyFrameWriter(Stream output) : IDisposable
{
    private readonly ByteBuffer frame = new(512);
    private readonly ByteBuffer block = new(256);
    private readonly ByteBuffer compressed = new(256);
    private ZlibDictionaryStream? compressor;

    /// <summary>Writes one frame and flushes the underlying stream.</summary>
    public async ValueTask WriteFrameAsync(SpdyFrame value, CancellationToken cancellationToken)
    {
        frame.Clear();
        if (value is SpdyDataFrame data)
        {
            WriteDataHeader(frame, data.StreamId, data.Flags, data.Data.Length);
            await output.WriteAsync(frame.Memory, cancellationToken).ConfigureAwait(false);
            if (!data.Data.IsEmpty) await output.WriteAsync(data.Data, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            Serialize(value, frame);
            await output.WriteAsync(frame.Memory, cancellationToken).ConfigureAwait(false);
        }
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Appends the wire form of <paramref name="value"/> to <paramref name="into"/>.</summary>
    public void Serialize(SpdyFrame value, ByteBuffer into)
    {
        switch (value)
        {
            case SpdyDataFrame d:
                WriteDataHeader(into, d.StreamId, d.Flags, d.Data.Length);
                into.Write(d.Data.Span);
                break;
            case SpdySynStreamFrame s:
            {
                var headers = Deflate(s.Headers);
                var body = Control(into, SpdyFrameType.SynStream, (byte)s.Flags, 10 + headers.Length);
                U32(body, 0, StreamIdOf(s.StreamId));
                U32(body, 4, s.AssociatedStreamId & 0x7fffffff);
                body[8] = (byte)((s.Priority & 7) << 5);
                body[9] = 0; // slot
                headers.CopyTo(body[10..]);
                break;
            }
            case SpdySynReplyFrame r:
            {
                var headers = Deflate(r.Headers);
                var body = Control(into, SpdyFrameType.SynReply, (byte)r.Flags, 4 + headers.Length);
                U32(body, 0, StreamIdOf(r.StreamId));
                headers.CopyTo(body[4..]);
                break;
            }
            case SpdyHeadersFrame h:
            {
                var headers = Deflate(h.Headers);
                var body = Control(into, SpdyFrameType.Headers, (byte)h.Flags, 4 + headers.Length);
                U32(body, 0, StreamIdOf(h.StreamId));
                headers.CopyTo(body[4..]);
                break;
            }
            case SpdyRstStreamFrame r:
            {
                var body = Control(into, SpdyFrameType.RstStream, 0, 8);
                U32(body, 0, StreamIdOf(r.StreamId));
                U32(body, 4, (uint)r.Status);
                break;
            }
            case SpdySettingsFrame s:
            {
                var body = Control(into, SpdyFrameType.Settings, s.Flags, 4 + 8 * s.Settings.Count);
                U32(body, 0, (uint)s.Settings.Count);
                for (var i = 0; i < s.Settings.Count; i++)
                {
                    U32(body, 4 + 8 * i, (uint)s.Settings[i].Flags << 24 | (s.Settings[i].Id & 0xffffff));
                    U32(body, 8 + 8 * i, s.Settings[i].Value);
                }
                break;
            }
            case SpdyPingFrame p:
                U32(Control(into, SpdyFrameType.Ping, 0, 4), 0, p.Id);
                break;
            case SpdyGoAwayFrame g:
            {
                var body = Control(into, SpdyFrameType.GoAway, 0, 8);
                U32(body, 0, g.LastGoodStreamId & 0x7fffffff);
                U32(body, 4, (uint)g.Status);
                break;
            }
            case SpdyWindowUpdateFrame w:
            {
                var body = Control(into, SpdyFrameType.WindowUpdate, 0, 8);
                U32(body, 0, w.StreamId & 0x7fffffff);
                U32(body, 4, w.Delta & 0x7fffffff);
                break;
            }
            default:
                throw new ArgumentException($"cannot write frame {value.GetType().Name}");
        }
    }

    private ReadOnlySpan<byte> Deflate(IReadOnlyList<SpdyHeader> headers)
    {
        block.Clear();
        SpdyHeaderBlock.Encode(headers, block);
        compressor ??= ZlibDictionaryStream.CreateCompressor(SpdyDictionary.Bytes);
        // The caller copies the result into the frame once it knows the frame's length.
        compressed.Clear();
        compressor.CompressAndFlush(block.Span, compressed);
        return compressed.Span;
    }

    private static Span<byte> Control(ByteBuffer into, SpdyFrameType type, byte flags, int length)
    {
        if (length > 0xffffff) throw new ArgumentException($"a {type} frame of {length} bytes does not fit SPDY's 24-bit length");
        var span = into.Reserve(8 + length);
        BinaryPrimitives.WriteUInt32BigEndian(span, 0x80000000u | (uint)SpdyFrameReader.Version << 16 | (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(span[4..], (uint)flags << 24 | (uint)length);
        into.Commit(8 + length);
        return span.Slice(8, length);
    }

    private static void WriteDataHeader(ByteBuffer into, uint streamId, SpdyFlags flags, int length)
    {
        if (length > 0xffffff) throw new ArgumentException($"a DATA frame of {length} bytes does not fit SPDY's 24-bit length");
        var span = into.Reserve(8);
        BinaryPrimitives.WriteUInt32BigEndian(span, StreamIdOf(streamId));
        BinaryPrimitives.WriteUInt32BigEndian(span[4..], (uint)flags << 24 | (uint)length);
        into.Commit(8);
    }

    private static uint StreamIdOf(uint id) =>
        id is 0 or > 0x7fffffff ? throw new ArgumentException($"stream id {id} is not in 1..2^31-1") : id;

    private static void U32(Span<byte> span, int offset, uint value) => BinaryPrimitives.WriteUInt32BigEndian(span[offset..], value);

    public void Dispose() => compressor?.Dispose();
}
