using System.Text;
using CriRuntime.Containers;
using CriRuntime.Oci;
using CriRuntime.Streaming.WebSockets;
using Runtime.V1;

namespace CriRuntime.Streaming;

/// <summary>
/// Exec without a tty over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io, channel.k8s.io), as the kubelet's
/// remotecommand WebSocket server: stdin on channel 0 (until v5's close signal or the socket closes), stdout on 1,
/// stderr on 2, and on 3 the exit status (a metav1.Status JSON on v4 and v5, a message on failure before that).
/// An empty message on the lowest output channel first tells the client the streams are ready. The client
/// leaving kills the command and its children, as over SPDY.
/// </summary>
internal sealed class WebSocketExecHandler(ContainerManager containers, ILogger<WebSocketExecHandler> logger) : IWebSocketStreamingHandler
{
    private static readonly TimeSpan CloseLinger = TimeSpan.FromSeconds(1);

    public IReadOnlyList<string> Protocols => ChannelProtocols.RemoteCommand;

    public async Task ServeAsync(WebSocketStreamingConnection connection, CancellationToken cancellationToken)
    {
        var request = (ExecRequest)connection.Request.Request;
        var channels = new ChannelWebSocket(connection.Socket, connection.Protocol,
            request.Stdin ? [ChannelWebSocket.StdinChannel] : [], connection.IdleTimeout);
        await using (channels.ConfigureAwait(false))
        {
            channels.Start();
            using var gone = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            // The client leaving ends the command (and its children), as containerd does.
            _ = channels.Completion.ContinueWith(_ => gone.Cancel(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

            byte ready = request.Stdout ? ChannelWebSocket.StdoutChannel : request.Stderr ? ChannelWebSocket.StderrChannel : ChannelWebSocket.ErrorChannel;
            await channels.WriteAsync(ready, ReadOnlyMemory<byte>.Empty, gone.Token).ConfigureAwait(false);

            RemoteCommandStatus status;
            if (request.Tty)
            {
                // The Exec RPC hands out no tty URL until a tty is served; a request that got one anyway is told so.
                status = RemoteCommandStatus.Failure("exec with a tty is not served over WebSocket; use SPDY/3.1");
            }
            else
            {
                var stdio = new ExecStdio(
                    request.Stdin ? (buffer, ct) => channels.ReadAsync(ChannelWebSocket.StdinChannel, buffer, ct) : null,
                    request.Stdout ? (data, ct) => channels.WriteAsync(ChannelWebSocket.StdoutChannel, data, ct) : null,
                    request.Stderr ? (data, ct) => channels.WriteAsync(ChannelWebSocket.StderrChannel, data, ct) : null);
                try
                {
                    int exitCode = await containers.ExecStreamingAsync(request.ContainerId, request.Cmd, stdio, gone.Token).ConfigureAwait(false);
                    logger.LogDebug("Exec {Command} in {Container} over WebSocket exited {Code}", string.Join(' ', request.Cmd), request.ContainerId, exitCode);
                    status = exitCode == 0 ? RemoteCommandStatus.Success : RemoteCommandStatus.NonZeroExit(request.Cmd, exitCode);
                }
                catch (Exception e) when (e is ICriError && !gone.IsCancellationRequested)
                {
                    status = RemoteCommandStatus.Failure(e.Message);
                }
            }

            if (ChannelProtocols.HasStatusJson(connection.Protocol))
                await channels.WriteAsync(ChannelWebSocket.ErrorChannel, status.ToStatusJson(), gone.Token).ConfigureAwait(false);
            else if (!status.Succeeded)
                await channels.WriteAsync(ChannelWebSocket.ErrorChannel, Encoding.UTF8.GetBytes(status.Message), gone.Token).ConfigureAwait(false);
            await channels.CloseAsync(CloseLinger, cancellationToken).ConfigureAwait(false);
        }
    }
}
