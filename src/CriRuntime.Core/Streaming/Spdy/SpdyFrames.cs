namespace CriRuntime.Streaming.Spdy;

// SPDY/3.1 frames (draft-mbelshe-httpbis-spdy-00 with the 3.1 session window). Every control frame starts
// with C=1, version 3, a 16-bit type, 8 bits of flags and a 24-bit length; a data frame with C=0 and a 31-bit
// stream id, then the same flags and length.

public enum SpdyFrameType : ushort
{
    SynStream = 1,
    SynReply = 2,
    RstStream = 3,
    Settings = 4,
    Ping = 6,
    GoAway = 7,
    Headers = 8,
    WindowUpdate = 9,
}

/// <summary>Flags of SYN_STREAM, SYN_REPLY, HEADERS and DATA frames.</summary>
[Flags]
public enum SpdyFlags : byte
{
    None = 0,
    Fin = 0x01,
    Unidirectional = 0x02,
}

/// <summary>RST_STREAM status codes.</summary>
public enum SpdyRstStatus : uint
{
    ProtocolError = 1,
    InvalidStream = 2,
    RefusedStream = 3,
    UnsupportedVersion = 4,
    Cancel = 5,
    InternalError = 6,
    FlowControlError = 7,
    StreamInUse = 8,
    StreamAlreadyClosed = 9,
    FrameTooLarge = 11,
}

/// <summary>GOAWAY status codes.</summary>
public enum SpdyGoAwayStatus : uint
{
    Ok = 0,
    ProtocolError = 1,
    InternalError = 2,
}

/// <summary>SETTINGS ids this implementation acts on (others are read and ignored).</summary>
public enum SpdySettingId : uint
{
    MaxConcurrentStreams = 4,
    InitialWindowSize = 7,
}

public readonly record struct SpdySetting(byte Flags, uint Id, uint Value);

/// <summary>One header name with its value (several values travel NUL-separated in one entry).</summary>
public readonly record struct SpdyHeader(string Name, string Value);

public abstract record SpdyFrame;

public sealed record SpdyDataFrame(uint StreamId, SpdyFlags Flags, ReadOnlyMemory<byte> Data) : SpdyFrame;

public sealed record SpdySynStreamFrame(uint StreamId, uint AssociatedStreamId, byte Priority, SpdyFlags Flags,
    IReadOnlyList<SpdyHeader> Headers) : SpdyFrame;

public sealed record SpdySynReplyFrame(uint StreamId, SpdyFlags Flags, IReadOnlyList<SpdyHeader> Headers) : SpdyFrame;

public sealed record SpdyRstStreamFrame(uint StreamId, SpdyRstStatus Status) : SpdyFrame;

public sealed record SpdySettingsFrame(byte Flags, IReadOnlyList<SpdySetting> Settings) : SpdyFrame;

public sealed record SpdyPingFrame(uint Id) : SpdyFrame;

public sealed record SpdyGoAwayFrame(uint LastGoodStreamId, SpdyGoAwayStatus Status) : SpdyFrame;

public sealed record SpdyHeadersFrame(uint StreamId, SpdyFlags Flags, IReadOnlyList<SpdyHeader> Headers) : SpdyFrame;

public sealed record SpdyWindowUpdateFrame(uint StreamId, uint Delta) : SpdyFrame;

/// <summary>
/// The peer broke the protocol in a way that ends the whole connection (a session error: GOAWAY PROTOCOL_ERROR).
/// InvalidArgument: what the peer sent is wrong; the message says what.
/// </summary>
public sealed class SpdyProtocolException(string message, Exception? inner = null)
    : CriException(CriErrorKind.InvalidArgument, $"SPDY protocol error: {message}", inner);

/// <summary>A stream was reset (by the peer or by this side) or its connection ended before the stream did.</summary>
public sealed class SpdyStreamClosedException(string message)
    : CriException(CriErrorKind.Unavailable, message);

/// <summary>Bounds on what a peer may make this side read and hold. Defaults fit every Kubernetes client.</summary>
public sealed record SpdyLimits
{
    /// <summary>Largest frame payload accepted (DATA or control). spdystream sends data in its writers' chunks, 32 KiB for io.Copy.</summary>
    public int MaxFramePayload { get; init; } = 1 << 20;

    /// <summary>Largest decompressed header block: refuses zlib bombs before they inflate.</summary>
    public int MaxHeaderBlockBytes { get; init; } = 256 * 1024;

    /// <summary>Most name/value pairs in one header block.</summary>
    public int MaxHeaderPairs { get; init; } = 1024;

    /// <summary>Most SETTINGS entries in one frame.</summary>
    public int MaxSettings { get; init; } = 64;

    public static SpdyLimits Default { get; } = new();
}
