using CriRuntime.Containers;
using CriRuntime.Oci;
using Runtime.V1;

namespace CriRuntime.Streaming;

/// <summary>
/// Attach over the remote-command protocols, as the kubelet serves it: the client opens an error stream and one
/// stream per stdio it asked for (a resize stream with a tty on v3 and v4); the daemon joins the container's stdio
/// through its conmon (<see cref="ConmonAttach"/>) until the container's output ends or, for a container that
/// keeps its stdin open without a terminal, the client's stdin ends. The error stream then carries a Success
/// status on v4 (attach has no exit code), or the failure. The client leaving detaches it; the container runs on.
/// </summary>
internal sealed class AttachHandler(ContainerManager containers, ILogger<AttachHandler> logger) : IStreamingHandler
{
    public async Task ServeAsync(StreamingConnection connection, CancellationToken cancellationToken)
    {
        var request = (AttachRequest)connection.Request.Request;
        var session = connection.Session;
        using var gone = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _ = session.Completion.ContinueWith(_ => gone.Cancel(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        var streams = await RemoteCommandStreams.AcceptAsync(connection, request.Stdin, request.Stdout, request.Stderr, request.Tty, gone.Token).ConfigureAwait(false);
        if (streams == null) return;

        var stdio = new AttachStdio(
            streams.Stdin is { } stdin ? (buffer, ct) => stdin.ReadAsync(buffer, ct) : null,
            streams.Stdout is { } stdout ? (data, ct) => stdout.WriteAsync(data, ct) : null,
            streams.Stderr is { } stderr ? (data, ct) => stderr.WriteAsync(data, ct) : null,
            TerminalResize.Start(streams.Resize, logger, gone.Token));
        try
        {
            await containers.AttachAsync(request.ContainerId, stdio, gone.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ICriError && !gone.IsCancellationRequested)
        {
            await streams.FinishAsync(RemoteCommandStatus.Failure($"error attaching to container: {e.Message}"), gone.Token).ConfigureAwait(false);
            return;
        }
        logger.LogDebug("Attach to {Container} ended", request.ContainerId);
        await streams.FinishAsync(RemoteCommandStatus.Success, gone.Token).ConfigureAwait(false);
    }
}
