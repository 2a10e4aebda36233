using CriRuntime.Containers;
using CriRuntime.Streaming.WebSockets;
using Runtime.V1;
using static CriRuntime.Streaming.WebSocketRemoteCommand;

namespace CriRuntime.Streaming;

/// <summary>
/// Exec over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io, channel.k8s.io), as the kubelet's remotecommand
/// WebSocket server: stdin on channel 0 (until v5's close signal or the socket closes), stdout on 1, stderr on 2,
/// and on 3 the exit status (a metav1.Status JSON on v4 and v5, a message on failure before that). With a tty the
/// command runs on a terminal (as over SPDY): its one output goes to channel 1 and channel 4 carries the window
/// sizes. The client leaving kills the command and its children, as over SPDY.
/// </summary>
internal sealed class WebSocketExecHandler(ContainerManager containers, ILogger<WebSocketExecHandler> logger) : IWebSocketStreamingHandler
{
    private static readonly TimeSpan CloseLinger = TimeSpan.FromSeconds(1);

    public IReadOnlyList<string> Protocols => ChannelProtocols.RemoteCommand;

    public async Task ServeAsync(WebSocketStreamingConnection connection, CancellationToken cancellationToken)
    {
        var request = (ExecRequest)connection.Request.Request;
        var channels = Open(connection, request.Stdin, request.Tty);
        await using (channels.ConfigureAwait(false))
        {
            channels.Start();
            using var gone = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            // The client leaving ends the command (and its children), as containerd does.
            _ = channels.Completion.ContinueWith(_ => gone.Cancel(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

            // With a tty there is one output, stdout; the Exec RPC refuses tty with stderr.
            await SignalReadyAsync(channels, request.Stdout, request.Stderr && !request.Tty, gone.Token).ConfigureAwait(false);

            RemoteCommandStatus status;
            try
            {
                var stdin = Reader(channels, request.Stdin, ChannelWebSocket.StdinChannel);
                int exitCode = request.Tty
                    ? await containers.ExecTerminalAsync(request.ContainerId, request.Cmd,
                        new Oci.TerminalStdio(stdin, Writer(channels, request.Stdout, ChannelWebSocket.StdoutChannel), Resizes(channels, true, logger, gone.Token)),
                        gone.Token).ConfigureAwait(false)
                    : await containers.ExecStreamingAsync(request.ContainerId, request.Cmd,
                        new Oci.ExecStdio(stdin, Writer(channels, request.Stdout, ChannelWebSocket.StdoutChannel), Writer(channels, request.Stderr, ChannelWebSocket.StderrChannel)),
                        gone.Token).ConfigureAwait(false);
                logger.LogDebug("Exec {Command} in {Container} over WebSocket (tty {Tty}) exited {Code}", string.Join(' ', request.Cmd), request.ContainerId, request.Tty, exitCode);
                status = exitCode == 0 ? RemoteCommandStatus.Success : RemoteCommandStatus.NonZeroExit(request.Cmd, exitCode);
            }
            catch (Exception e) when (e is ICriError && !gone.IsCancellationRequested)
            {
                status = RemoteCommandStatus.Failure(e.Message);
            }

            await ReportAsync(channels, connection.Protocol, status, gone.Token).ConfigureAwait(false);
            await channels.CloseAsync(CloseLinger, cancellationToken).ConfigureAwait(false);
        }
    }
}
