using System.Text;
using CriRuntime.Oci;
using CriRuntime.Streaming.WebSockets;

namespace CriRuntime.Streaming;

/// <summary>
/// What exec and attach over WebSocket share, as the kubelet's remotecommand WebSocket server: which channels the
/// server reads (stdin when asked for, resize with a tty; the client's data on any other is dropped), the empty
/// "ready" message on the lowest output channel, and the status on the error channel at the end.
/// </summary>
internal static class WebSocketRemoteCommand
{
    public static ChannelWebSocket Open(WebSocketStreamingConnection connection, bool stdin, bool tty)
    {
        var read = new List<byte>();
        if (stdin) read.Add(ChannelWebSocket.StdinChannel);
        if (tty) read.Add(ChannelWebSocket.ResizeChannel);
        return new ChannelWebSocket(connection.Socket, connection.Protocol, read, connection.IdleTimeout);
    }

    /// <summary>An empty message on the lowest output channel tells the client the streams are ready.</summary>
    public static ValueTask SignalReadyAsync(ChannelWebSocket channels, bool stdout, bool stderr, CancellationToken cancellationToken)
    {
        byte ready = stdout ? ChannelWebSocket.StdoutChannel : stderr ? ChannelWebSocket.StderrChannel : ChannelWebSocket.ErrorChannel;
        return channels.WriteAsync(ready, ReadOnlyMemory<byte>.Empty, cancellationToken);
    }

    /// <summary>The channel's data as a reader that returns 0 when the client closed it (v5) or the socket.</summary>
    public static Func<Memory<byte>, CancellationToken, ValueTask<int>>? Reader(ChannelWebSocket channels, bool open, byte channel) =>
        open ? (buffer, ct) => channels.ReadAsync(channel, buffer, ct) : null;

    public static Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? Writer(ChannelWebSocket channels, bool open, byte channel) =>
        open ? (data, ct) => channels.WriteAsync(channel, data, ct) : null;

    /// <summary>Window sizes from channel 4 (the same JSON as SPDY's resize stream); null without a tty.</summary>
    public static System.Threading.Channels.ChannelReader<TerminalSize>? Resizes(ChannelWebSocket channels, bool tty, ILogger logger, CancellationToken cancellationToken) =>
        tty ? TerminalResize.Start((buffer, ct) => channels.ReadAsync(ChannelWebSocket.ResizeChannel, buffer, ct), logger, cancellationToken) : null;

    /// <summary>The status on the error channel: a metav1.Status JSON on v4 and v5, the message of a failure before that.</summary>
    public static async Task ReportAsync(ChannelWebSocket channels, string protocol, RemoteCommandStatus status, CancellationToken cancellationToken)
    {
        if (ChannelProtocols.HasStatusJson(protocol))
            await channels.WriteAsync(ChannelWebSocket.ErrorChannel, status.ToStatusJson(), cancellationToken).ConfigureAwait(false);
        else if (!status.Succeeded)
            await channels.WriteAsync(ChannelWebSocket.ErrorChannel, Encoding.UTF8.GetBytes(status.Message), cancellationToken).ConfigureAwait(false);
    }
}
