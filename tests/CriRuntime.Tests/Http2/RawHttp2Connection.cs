using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using CriRuntime.Hosting.Http2;

namespace CriRuntime.Tests.Http2;

/// <summary>One HTTP/2 frame as read off the wire.</summary>
internal sealed record Http2Frame(byte Type, byte Flags, int StreamId, byte[] Payload)
{
    public const byte Data = 0x0, Headers = 0x1, RstStream = 0x3, Settings = 0x4, Ping = 0x6, GoAway = 0x7, WindowUpdate = 0x8, Continuation = 0x9;
    public const byte EndStream = 0x1, Ack = 0x1, EndHeaders = 0x4, Padded = 0x8, Priority = 0x20;

    public uint GoAwayErrorCode => BinaryPrimitives.ReadUInt32BigEndian(Payload.AsSpan(4));
    public uint RstStreamErrorCode => BinaryPrimitives.ReadUInt32BigEndian(Payload);
}

/// <summary>A hand-driven HTTP/2 client connection over a unix socket: raw frames in and out.</summary>
internal sealed class RawHttp2Connection : IAsyncDisposable
{
    public static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();

    private readonly Socket socket;
    private readonly NetworkStream stream;

    private RawHttp2Connection(Socket socket)
    {
        this.socket = socket;
        stream = new NetworkStream(socket, ownsSocket: false);
    }

    /// <summary>Decodes the server's response header blocks (Kestrel indexes some response fields).</summary>
    public HpackDecoder ResponseDecoder { get; } = new(4096);

    public static async Task<RawHttp2Connection> ConnectAsync(string socketPath, bool sendPrefaceAndSettings = true)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
        var connection = new RawHttp2Connection(socket);
        if (sendPrefaceAndSettings)
        {
            await connection.WriteAsync(Preface);
            await connection.WriteFrameAsync(Http2Frame.Settings, 0, 0, []);
        }
        return connection;
    }

    public async Task WriteAsync(byte[] bytes) => await stream.WriteAsync(bytes);

    public Task WriteFrameAsync(byte type, byte flags, int streamId, ReadOnlySpan<byte> payload) => WriteAsync(Frame(type, flags, streamId, payload));

    public static byte[] Frame(byte type, byte flags, int streamId, ReadOnlySpan<byte> payload, int? declaredLength = null)
    {
        var frame = new byte[9 + payload.Length];
        int length = declaredLength ?? payload.Length;
        frame[0] = (byte)(length >> 16);
        frame[1] = (byte)(length >> 8);
        frame[2] = (byte)length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(5), (uint)streamId);
        payload.CopyTo(frame.AsSpan(9));
        return frame;
    }

    /// <summary>Stops sending (half-close), so the server sees end of input.</summary>
    public void ShutdownSend() => socket.Shutdown(SocketShutdown.Send);

    /// <summary>Reads the next frame, acknowledging SETTINGS and PING; null when the server closed the connection.</summary>
    public async Task<Http2Frame?> ReadFrameAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var header = new byte[9];
            if (!await ReadExactlyOrEofAsync(header, cancellationToken)) return null;
            int length = (header[0] << 16) | (header[1] << 8) | header[2];
            var payload = new byte[length];
            if (!await ReadExactlyOrEofAsync(payload, cancellationToken)) return null;
            var frame = new Http2Frame(header[3], header[4], (int)(BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(5)) & 0x7FFFFFFF), payload);
            if (frame.Type == Http2Frame.Settings && (frame.Flags & Http2Frame.Ack) == 0)
                await TryWriteAsync(Frame(Http2Frame.Settings, Http2Frame.Ack, 0, []));
            else if (frame.Type == Http2Frame.Ping && (frame.Flags & Http2Frame.Ack) == 0)
                await TryWriteAsync(Frame(Http2Frame.Ping, Http2Frame.Ack, 0, payload));
            return frame;
        }
    }

    private async Task TryWriteAsync(byte[] bytes)
    {
        try
        {
            await stream.WriteAsync(bytes);
        }
        catch (IOException)
        {
            // The server may already have closed; what it sent is still read.
        }
    }

    private async Task<bool> ReadExactlyOrEofAsync(byte[] buffer, CancellationToken cancellationToken)
    {
        int filled = 0;
        while (filled < buffer.Length)
        {
            int n;
            try
            {
                n = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken);
            }
            catch (IOException)
            {
                return false; // reset by the server: closed
            }
            if (n == 0) return false;
            filled += n;
        }
        return true;
    }

    /// <summary>
    /// Reads until the server ends the connection: the GOAWAY it sent (null if it closed without one).
    /// Throws TimeoutException if neither happens within <paramref name="timeout"/>.
    /// </summary>
    public async Task<Http2Frame?> ReadUntilConnectionEndsAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        Http2Frame? goAway = null;
        try
        {
            while (await ReadFrameAsync(cts.Token) is { } frame)
            {
                if (frame.Type == Http2Frame.GoAway)
                {
                    goAway = frame;
                    // Kestrel closes right after a GOAWAY for a connection error; read on to see it close.
                }
            }
            return goAway;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the server neither closed the connection nor sent GOAWAY within {timeout} (GOAWAY seen: {goAway is not null})");
        }
    }

    /// <summary>A response on one stream: decoded header blocks (headers, then trailers) and DATA bytes.</summary>
    public sealed record Response(List<List<(string Name, string Value)>> HeaderBlocks, byte[] Data, Http2Frame? Reset);

    /// <summary>Reads frames until <paramref name="streamId"/> ends (END_STREAM or RST_STREAM).</summary>
    public async Task<Response> ReadResponseAsync(int streamId, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var blocks = new List<List<(string, string)>>();
        var data = new MemoryStream();
        var pendingBlock = new MemoryStream();
        while (true)
        {
            var frame = await ReadFrameAsync(cts.Token) ?? throw new IOException($"connection closed before stream {streamId} ended");
            if (frame.Type == Http2Frame.GoAway)
                throw new IOException($"GOAWAY with error code {frame.GoAwayErrorCode}: {Encoding.ASCII.GetString(frame.Payload.AsSpan(8))}");
            if (frame.Type is Http2Frame.Headers or Http2Frame.Continuation)
            {
                // Decode every block, whatever its stream: they all move the server's HPACK state.
                pendingBlock.Write(frame.Payload);
                if ((frame.Flags & Http2Frame.EndHeaders) != 0)
                {
                    var sink = new ListSink();
                    ResponseDecoder.Decode(pendingBlock.ToArray(), sink);
                    pendingBlock.SetLength(0);
                    if (frame.StreamId == streamId || frame.Type == Http2Frame.Continuation) blocks.Add(sink.Fields);
                }
            }
            if (frame.StreamId != streamId) continue;
            if (frame.Type == Http2Frame.Data) data.Write(frame.Payload);
            if (frame.Type == Http2Frame.RstStream) return new Response(blocks, data.ToArray(), frame);
            if (frame.Type is Http2Frame.Data or Http2Frame.Headers && (frame.Flags & Http2Frame.EndStream) != 0)
                return new Response(blocks, data.ToArray(), null);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stream.DisposeAsync();
        socket.Dispose();
    }

    /// <summary>Collects decoded fields as Latin-1 strings.</summary>
    internal sealed class ListSink : IHpackHeaderSink
    {
        public List<(string Name, string Value)> Fields { get; } = [];

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, HpackRepresentation representation) =>
            Fields.Add((Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));
    }
}
