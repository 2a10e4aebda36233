using CriRuntime.Containers;
using CriRuntime.Streaming.WebSockets;
using Runtime.V1;
using static CriRuntime.Streaming.WebSocketRemoteCommand;

namespace CriRuntime.Streaming;

/// <summary>
/// Attach over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io, channel.k8s.io), as the kubelet's remotecommand
/// WebSocket server: the container's stdin from channel 0, its stdout on 1 and stderr on 2 (one output on 1 with
/// a tty), window sizes on 4, all through its conmon as over SPDY (<see cref="AttachHandler"/>). v5's close signal
/// for channel 0 ends the client's stdin, which for a stdin_once container closes the container's stdin. When the
/// container's output ends the error channel carries Success (v4, v5); the client leaving detaches it.
/// </summary>
internal sealed class WebSocketAttachHandler(ContainerManager containers, ILogger<WebSocketAttachHandler> logger) : IWebSocketStreamingHandler
{
    private static readonly TimeSpan CloseLinger = TimeSpan.FromSeconds(1);

    public IReadOnlyList<string> Protocols => ChannelProtocols.RemoteCommand;

    public async Task ServeAsync(WebSocketStreamingConnection connection, CancellationToken cancellationToken)
    {
        var request = (AttachRequest)connection.Request.Request;
        var channels = Open(connection, request.Stdin, request.Tty);
        await using (channels.ConfigureAwait(false))
        {
            channels.Start();
            using var gone = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            // The client leaving detaches; the container runs on.
            _ = channels.Completion.ContinueWith(_ => gone.Cancel(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

            bool stderr = request.Stderr && !request.Tty;
            await SignalReadyAsync(channels, request.Stdout, stderr, gone.Token).ConfigureAwait(false);

            var stdio = new Oci.AttachStdio(
                Reader(channels, request.Stdin, ChannelWebSocket.StdinChannel),
                Writer(channels, request.Stdout, ChannelWebSocket.StdoutChannel),
                Writer(channels, stderr, ChannelWebSocket.StderrChannel),
                Resizes(channels, request.Tty, logger, gone.Token));
            RemoteCommandStatus status;
            try
            {
                await containers.AttachAsync(request.ContainerId, stdio, gone.Token).ConfigureAwait(false);
                logger.LogDebug("Attach to {Container} over WebSocket ended", request.ContainerId);
                status = RemoteCommandStatus.Success;
            }
            catch (Exception e) when (e is ICriError && !gone.IsCancellationRequested)
            {
                status = RemoteCommandStatus.Failure($"error attaching to container: {e.Message}");
            }

            await ReportAsync(channels, connection.Protocol, status, gone.Token).ConfigureAwait(false);
            await channels.CloseAsync(CloseLinger, cancellationToken).ConfigureAwait(false);
        }
    }
}
