using System.Buffers;
using System.Buffers.Binary;

namespace CriRuntime.Hosting.Http2;

/// <summary>Limits the rewriter enforces, taken from what Kestrel advertises and enforces itself.</summary>
/// <param name="HeaderTableSize">SETTINGS_HEADER_TABLE_SIZE Kestrel advertises (Limits.Http2.HeaderTableSize).</param>
/// <param name="MaxFrameSize">SETTINGS_MAX_FRAME_SIZE Kestrel advertises (Limits.Http2.MaxFrameSize): the
/// largest frame a client may send and the largest frame the rewriter hands Kestrel.</param>
/// <param name="MaxHeaderListSize">Kestrel's Limits.MaxRequestHeadersTotalSize: most octets (name + value
/// + 32 per field) one decoded header block may hold; Kestrel refuses more with a connection error too.</param>
internal readonly record struct Http2RewriterLimits(int HeaderTableSize, int MaxFrameSize, int MaxHeaderListSize)
{
    /// <summary>Most compressed octets of one header block buffered across HEADERS + CONTINUATION frames.</summary>
    public long MaxCompressedBlockSize => (long)MaxHeaderListSize + MaxFrameSize;
}

/// <summary>What <see cref="Http2AuthorityRewriter.Process"/> left the stream in.</summary>
internal enum RewriteStatus
{
    /// <summary>All input consumed or buffered; feed more.</summary>
    NeedMoreInput,

    /// <summary>The client broke the protocol: a frame that Kestrel answers with GOAWAY PROTOCOL_ERROR was
    /// written in place of the rest; forward nothing more. <see cref="Http2AuthorityRewriter.Error"/> says why.</summary>
    Failed,
}

/// <summary>
/// Rewrites the client-to-server byte stream of one HTTP/2 connection so Kestrel accepts requests whose
/// <c>:authority</c> is not a host name, such as the socket path grpc-go sends over a unix socket.
/// The connection preface and every frame except HEADERS/CONTINUATION pass through byte for byte
/// without being buffered. Each request header block is decoded with the client's HPACK state and
/// re-encoded as literals without indexing (so Kestrel's own decoding table stays empty), with an
/// invalid <c>:authority</c> replaced by <c>localhost</c>, and split into frames Kestrel accepts.
/// </summary>
internal sealed partial class Http2AuthorityRewriter : IHpackHeaderSink, IDisposable
{
    public const int FrameHeaderLength = 9;
    private const byte TypeHeaders = 0x1, TypeContinuation = 0x9;
    private const byte FlagEndStream = 0x1, FlagEndHeaders = 0x4, FlagPadded = 0x8, FlagPriority = 0x20;
    private static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;
    private static ReadOnlySpan<byte> AuthorityName => ":authority"u8;
    private static ReadOnlySpan<byte> Localhost => "localhost"u8;

    private enum State { Preface, Opaque, FrameHeader, PassThrough, CollectPayload, Failed }

    private readonly Http2RewriterLimits limits;
    private readonly HpackDecoder decoder;
    private State state = State.Preface;
    private int prefaceMatched;

    // The frame being read: header fields, and bytes of payload still to pass through or collect.
    private readonly byte[] frameHeader = new byte[FrameHeaderLength];
    private int frameHeaderFilled;
    private int frameLength, payloadRemaining;
    private byte frameType, frameFlags;
    private int frameStreamId;

    // The header block being gathered: raw HEADERS/CONTINUATION payloads appended, HEADERS' padding
    // and priority stripped once its frame is complete.
    private byte[] block = [];
    private int blockLength, frameStartInBlock;
    private bool inHeaderBlock;
    private int blockStreamId;
    private byte blockFlags;
    private readonly byte[] priority = new byte[5];

    // Re-encoded block, and the decoded size of the fields so far (checked against MaxHeaderListSize).
    private byte[] encoded = [];
    private int encodedLength;
    private long headerListSize;

    public Http2AuthorityRewriter(Http2RewriterLimits limits)
    {
        this.limits = limits;
        decoder = new HpackDecoder(limits.HeaderTableSize);
    }

    /// <summary>Why the stream failed, once <see cref="RewriteStatus.Failed"/> was returned.</summary>
    public string? Error { get; private set; }

    /// <summary>The client has sent the whole HTTP/2 connection preface (or bytes that are not one, which Kestrel refuses).</summary>
    public bool PrefaceDone => state != State.Preface;

    /// <summary>Header blocks re-encoded so far, and how many had their :authority replaced.</summary>
    public long HeaderBlocks { get; private set; }
    public long AuthoritiesReplaced { get; private set; }

    /// <summary>
    /// Consumes all of <paramref name="input"/> (partial frames are kept inside) and writes what Kestrel
    /// should read to <paramref name="output"/>.
    /// </summary>
    public RewriteStatus Process(ReadOnlySequence<byte> input, IBufferWriter<byte> output)
    {
        foreach (var segment in input)
        {
            var span = segment.Span;
            while (!span.IsEmpty)
            {
                if (state == State.Failed) return RewriteStatus.Failed;
                span = Step(span, output);
            }
        }
        return state == State.Failed ? RewriteStatus.Failed : RewriteStatus.NeedMoreInput;
    }

    private ReadOnlySpan<byte> Step(ReadOnlySpan<byte> span, IBufferWriter<byte> output)
    {
        switch (state)
        {
            case State.Preface:
            {
                int n = Math.Min(span.Length, Preface.Length - prefaceMatched);
                if (!span[..n].SequenceEqual(Preface.Slice(prefaceMatched, n)))
                {
                    // Not HTTP/2 with prior knowledge: hand Kestrel the bytes unchanged and let it refuse them.
                    output.Write(Preface[..prefaceMatched]);
                    state = State.Opaque;
                    return span;
                }
                prefaceMatched += n;
                if (prefaceMatched == Preface.Length)
                {
                    output.Write(Preface);
                    state = State.FrameHeader;
                }
                return span[n..];
            }
            case State.Opaque:
                output.Write(span);
                return [];
            case State.FrameHeader:
            {
                int n = Math.Min(span.Length, FrameHeaderLength - frameHeaderFilled);
                span[..n].CopyTo(frameHeader.AsSpan(frameHeaderFilled));
                frameHeaderFilled += n;
                if (frameHeaderFilled == FrameHeaderLength)
                {
                    frameHeaderFilled = 0;
                    OnFrameHeader(output);
                }
                return span[n..];
            }
            case State.PassThrough:
            {
                int n = Math.Min(span.Length, payloadRemaining);
                output.Write(span[..n]);
                payloadRemaining -= n;
                if (payloadRemaining == 0) state = State.FrameHeader;
                return span[n..];
            }
            case State.CollectPayload:
            {
                int n = Math.Min(span.Length, payloadRemaining);
                span[..n].CopyTo(block.AsSpan(blockLength));
                blockLength += n;
                payloadRemaining -= n;
                if (payloadRemaining == 0) OnHeaderFramePayload(output);
                return span[n..];
            }
            default:
                return [];
        }
    }

    private void OnFrameHeader(IBufferWriter<byte> output)
    {
        frameLength = (frameHeader[0] << 16) | (frameHeader[1] << 8) | frameHeader[2];
        frameType = frameHeader[3];
        frameFlags = frameHeader[4];
        frameStreamId = (int)(BinaryPrimitives.ReadUInt32BigEndian(frameHeader.AsSpan(5)) & 0x7FFF_FFFF);

        if (inHeaderBlock && (frameType != TypeContinuation || frameStreamId != blockStreamId))
        {
            Fail(output, $"frame of type {frameType} on stream {frameStreamId} inside the header block of stream {blockStreamId}");
            return;
        }
        if (frameType != TypeHeaders && frameType != TypeContinuation)
        {
            // Kestrel checks these frames itself (including their length); they need no buffering here.
            output.Write(frameHeader);
            payloadRemaining = frameLength;
            state = frameLength == 0 ? State.FrameHeader : State.PassThrough;
            return;
        }
        if (frameType == TypeContinuation && !inHeaderBlock)
        {
            Fail(output, $"CONTINUATION on stream {frameStreamId} without a HEADERS frame before it");
            return;
        }
        if (frameType == TypeHeaders && frameStreamId == 0)
        {
            Fail(output, "HEADERS on stream 0");
            return;
        }
        if (frameLength > limits.MaxFrameSize)
        {
            Fail(output, $"frame of {frameLength} octets, above the advertised SETTINGS_MAX_FRAME_SIZE {limits.MaxFrameSize}");
            return;
        }
        if ((long)blockLength + frameLength > limits.MaxCompressedBlockSize)
        {
            Fail(output, $"header block of stream {frameStreamId} larger than {limits.MaxCompressedBlockSize} octets");
            return;
        }
        if (frameType == TypeHeaders)
        {
            inHeaderBlock = true;
            blockStreamId = frameStreamId;
            blockFlags = frameFlags;
            blockLength = 0;
        }
        EnsureCapacity(ref block, blockLength + frameLength, blockLength);
        frameStartInBlock = blockLength;
        payloadRemaining = frameLength;
        state = State.CollectPayload;
        if (frameLength == 0) OnHeaderFramePayload(output);
    }

    private void OnHeaderFramePayload(IBufferWriter<byte> output)
    {
        state = State.FrameHeader;
        if (frameType == TypeHeaders && !StripPaddingAndPriority(output)) return;
        if ((frameFlags & FlagEndHeaders) == 0) return;

        inHeaderBlock = false;
        try
        {
            encodedLength = 0;
            headerListSize = 0;
            decoder.Decode(block.AsSpan(0, blockLength), this);
        }
        catch (HpackDecodingException e)
        {
            Fail(output, $"header block of stream {blockStreamId}: {e.Message}");
            return;
        }
        catch (HeaderListTooLargeException e)
        {
            Fail(output, e.Message);
            return;
        }
        blockLength = 0;
        HeaderBlocks++;
        WriteHeaderFrames(output);
    }

    /// <summary>Removes HEADERS' pad length, padding and priority fields from the block buffer.</summary>
    private bool StripPaddingAndPriority(IBufferWriter<byte> output)
    {
        int start = frameStartInBlock, end = blockLength;
        if ((frameFlags & FlagPadded) != 0)
        {
            if (start == end)
            {
                Fail(output, $"PADDED HEADERS on stream {frameStreamId} without a pad length");
                return false;
            }
            int padLength = block[start++];
            if (padLength > end - start)
            {
                Fail(output, $"HEADERS on stream {frameStreamId} with {padLength} octets of padding in a {frameLength}-octet frame");
                return false;
            }
            end -= padLength;
        }
        if ((frameFlags & FlagPriority) != 0)
        {
            if (end - start < priority.Length)
            {
                Fail(output, $"HEADERS with PRIORITY on stream {frameStreamId} too short for the priority fields");
                return false;
            }
            block.AsSpan(start, priority.Length).CopyTo(priority);
            start += priority.Length;
        }
        block.AsSpan(start, end - start).CopyTo(block.AsSpan(frameStartInBlock));
        blockLength = frameStartInBlock + (end - start);
        return true;
    }

    void IHpackHeaderSink.OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, HpackRepresentation representation)
    {
        headerListSize += name.Length + value.Length + HpackDynamicTable.EntryOverhead;
        if (headerListSize > limits.MaxHeaderListSize)
            throw new HeaderListTooLargeException($"header list of stream {blockStreamId} larger than {limits.MaxHeaderListSize} octets");
        if (name.SequenceEqual(AuthorityName) && !IsValidAuthority(value))
        {
            value = Localhost;
            AuthoritiesReplaced++;
        }
        EnsureCapacity(ref encoded, encodedLength + HpackWriter.MaxLiteralLength(name.Length, value.Length), encodedLength);
        encodedLength += HpackWriter.WriteLiteralWithoutIndexing(encoded.AsSpan(encodedLength), name, value,
            neverIndexed: representation == HpackRepresentation.NeverIndexed);
    }

    /// <summary>Writes the re-encoded block as HEADERS + CONTINUATION frames no larger than MaxFrameSize.</summary>
    private void WriteHeaderFrames(IBufferWriter<byte> output)
    {
        bool withPriority = (blockFlags & FlagPriority) != 0;
        int offset = 0;
        bool first = true;
        do
        {
            int room = limits.MaxFrameSize - (first && withPriority ? priority.Length : 0);
            int chunk = Math.Min(room, encodedLength - offset);
            bool last = offset + chunk == encodedLength;
            byte type = first ? TypeHeaders : TypeContinuation;
            byte flags = (byte)((last ? FlagEndHeaders : 0) | (first ? blockFlags & (FlagEndStream | FlagPriority) : 0));
            int payload = chunk + (first && withPriority ? priority.Length : 0);
            var frame = output.GetSpan(FrameHeaderLength + payload);
            WriteFrameHeader(frame, payload, type, flags, blockStreamId);
            int pos = FrameHeaderLength;
            if (first && withPriority)
            {
                priority.CopyTo(frame[pos..]);
                pos += priority.Length;
            }
            encoded.AsSpan(offset, chunk).CopyTo(frame[pos..]);
            output.Advance(FrameHeaderLength + payload);
            offset += chunk;
            first = false;
        } while (offset < encodedLength);
    }

    private static void WriteFrameHeader(Span<byte> destination, int length, byte type, byte flags, int streamId)
    {
        destination[0] = (byte)(length >> 16);
        destination[1] = (byte)(length >> 8);
        destination[2] = (byte)length;
        destination[3] = type;
        destination[4] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(destination[5..], (uint)streamId);
    }

    /// <summary>
    /// Stops forwarding and writes a HEADERS frame on stream 0, which Kestrel must answer with GOAWAY
    /// PROTOCOL_ERROR (RFC 9113 §6.2) before closing the connection: the client sees a connection error.
    /// </summary>
    private void Fail(IBufferWriter<byte> output, string error)
    {
        Error = error;
        state = State.Failed;
        var frame = output.GetSpan(FrameHeaderLength);
        WriteFrameHeader(frame, 0, TypeHeaders, FlagEndHeaders, 0);
        output.Advance(FrameHeaderLength);
        ReturnBuffers();
    }

    private static void EnsureCapacity(ref byte[] buffer, int needed, int keep)
    {
        if (buffer.Length >= needed) return;
        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, Math.Min(2 * buffer.Length, needed + 16 * 1024)));
        buffer.AsSpan(0, keep).CopyTo(bigger);
        if (buffer.Length > 0) ArrayPool<byte>.Shared.Return(buffer);
        buffer = bigger;
    }

    private void ReturnBuffers()
    {
        if (block.Length > 0) ArrayPool<byte>.Shared.Return(block);
        if (encoded.Length > 0) ArrayPool<byte>.Shared.Return(encoded);
        block = [];
        encoded = [];
        blockLength = encodedLength = 0;
    }

    public void Dispose() => ReturnBuffers();

    private sealed class HeaderListTooLargeException(string message) : Exception(message);
}
