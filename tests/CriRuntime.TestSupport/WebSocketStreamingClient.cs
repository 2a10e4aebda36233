using System.Net;
using System.Net.WebSockets;

namespace CriRuntime.TestSupport;

/// <summary>What a WebSocket upgrade to the streaming server gave: the socket, or the HTTP status it was refused with.</summary>
public sealed record WebSocketUpgradeResult(int StatusCode, ClientWebSocket? Socket)
{
    public string? Protocol => Socket?.SubProtocol;
}

/// <summary>Everything the server sent on a channel-multiplexed WebSocket, per channel, until it closed.</summary>
/// <param name="Bytes">Bytes received per channel (also for channels read with countOnly, whose data is not kept).</param>
public sealed record ChannelTranscript(IReadOnlyDictionary<byte, byte[]> Channels, IReadOnlyDictionary<byte, long> Bytes, int Messages, WebSocketCloseStatus? CloseStatus)
{
    public byte[] Of(byte channel) => Channels.TryGetValue(channel, out var data) ? data : [];
}

/// <summary>
/// A client of the streaming server's WebSocket transport as client-go's v5 WebSocket executor is: a GET upgrade
/// with Sec-WebSocket-Protocol, then binary messages of one channel byte and data (stdin 0, stdout 1, stderr 2,
/// error 3, resize 4; v5's close signal is [255, channel]). Built on System.Net.WebSockets.ClientWebSocket.
/// </summary>
public static class WebSocketStreamingClient
{
    public const byte Stdin = 0, Stdout = 1, Stderr = 2, Error = 3, Resize = 4, CloseSignal = 255;

    /// <summary>Upgrades <paramref name="url"/> (http or https, as the Exec RPC returns it) offering <paramref name="protocols"/> in order.</summary>
    public static async Task<WebSocketUpgradeResult> ConnectAsync(string url, IReadOnlyList<string> protocols, CancellationToken cancellationToken)
    {
        var uri = new UriBuilder(url);
        uri.Scheme = uri.Scheme == "https" ? "wss" : "ws";
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        foreach (var p in protocols) socket.Options.AddSubProtocol(p);
        try
        {
            await socket.ConnectAsync(uri.Uri, cancellationToken);
            return new WebSocketUpgradeResult((int)socket.HttpStatusCode, socket);
        }
        catch (WebSocketException) when (socket.HttpStatusCode != 0 && socket.HttpStatusCode != HttpStatusCode.SwitchingProtocols)
        {
            var status = (int)socket.HttpStatusCode;
            socket.Dispose();
            return new WebSocketUpgradeResult(status, null);
        }
    }

    /// <summary>Sends <paramref name="data"/> on <paramref name="channel"/> in messages of at most <paramref name="chunk"/> bytes.</summary>
    public static async Task SendAsync(this ClientWebSocket socket, byte channel, ReadOnlyMemory<byte> data, CancellationToken cancellationToken, int chunk = 16 * 1024)
    {
        var frame = new byte[1 + Math.Min(chunk, Math.Max(data.Length, 0))];
        do
        {
            int n = Math.Min(chunk, data.Length);
            frame[0] = channel;
            data[..n].CopyTo(frame.AsMemory(1));
            await socket.SendAsync(frame.AsMemory(0, 1 + n), WebSocketMessageType.Binary, true, cancellationToken);
            data = data[n..];
        }
        while (!data.IsEmpty);
    }

    /// <summary>v5: tells the server the client has nothing more to send on <paramref name="channel"/>.</summary>
    public static Task CloseChannelAsync(this ClientWebSocket socket, byte channel, CancellationToken cancellationToken) =>
        socket.SendAsync(new ArraySegment<byte>([CloseSignal, channel]), WebSocketMessageType.Binary, true, cancellationToken);

    /// <summary>
    /// Reads messages until the server closes, keeping each channel's data (or only counting bytes on
    /// <paramref name="countOnly"/> channels, for large outputs), then answers the close.
    /// </summary>
    public static async Task<ChannelTranscript> ReadToCloseAsync(this ClientWebSocket socket, CancellationToken cancellationToken, params byte[] countOnly)
    {
        var kept = new Dictionary<byte, MemoryStream>();
        var counted = new Dictionary<byte, long>();
        var buffer = new byte[64 * 1024];
        int messages = 0;
        bool start = true;
        byte channel = 0;
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer.AsMemory(), cancellationToken);
            if (result.MessageType == WebSocketMessageType.Close) break;
            var data = buffer.AsMemory(0, result.Count);
            if (start)
            {
                messages++;
                if (data.IsEmpty) throw new InvalidDataException("a message without a channel byte");
                channel = data.Span[0];
                data = data[1..];
            }
            start = result.EndOfMessage;
            counted[channel] = counted.GetValueOrDefault(channel) + data.Length;
            if (!countOnly.Contains(channel))
            {
                if (!kept.TryGetValue(channel, out var stream)) kept[channel] = stream = new MemoryStream();
                stream.Write(data.Span);
            }
        }
        var closeStatus = socket.CloseStatus;
        if (socket.State == WebSocketState.CloseReceived)
            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cancellationToken);
        return new ChannelTranscript(kept.ToDictionary(k => k.Key, k => k.Value.ToArray()), counted, messages, closeStatus);
    }
}
