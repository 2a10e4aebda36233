using System.Text;
using System.Text.Json;
using CriRuntime.Containers;
using CriRuntime.Oci;
using CriRuntime.Streaming.Spdy;
using Runtime.V1;

namespace CriRuntime.Streaming;

/// <summary>
/// Exec over the remote-command protocols (channel.k8s.io v1 to v4), as the kubelet's streaming server serves it:
/// the client opens an error stream and one stream per stdio it asked for; the command runs as a child of the
/// daemon (<c>runc exec</c>), without a tty with stdout and stderr kept apart, with a tty on a terminal whose one
/// output goes to stdout and whose size follows the resize stream (v3, v4); on v4 the error stream then carries a
/// metav1.Status JSON with the exit code, on older versions a message when it is not 0.
/// </summary>
internal sealed class ExecHandler(ContainerManager containers, ILogger<ExecHandler> logger) : IStreamingHandler
{
    public async Task ServeAsync(StreamingConnection connection, CancellationToken cancellationToken)
    {
        var request = (ExecRequest)connection.Request.Request;
        var session = connection.Session;
        using var gone = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // The client leaving ends the command (and its children), as containerd does.
        _ = session.Completion.ContinueWith(_ => gone.Cancel(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        var streams = await RemoteCommandStreams.AcceptAsync(connection, request.Stdin, request.Stdout, request.Stderr, request.Tty, gone.Token).ConfigureAwait(false);
        if (streams == null) return;

        int exitCode;
        try
        {
            exitCode = request.Tty
                ? await containers.ExecTerminalAsync(request.ContainerId, request.Cmd, streams.TerminalStdio(logger, gone.Token), gone.Token).ConfigureAwait(false)
                : await containers.ExecStreamingAsync(request.ContainerId, request.Cmd, streams.ExecStdio(), gone.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ICriError && !gone.IsCancellationRequested)
        {
            await streams.FinishAsync(RemoteCommandStatus.Failure(e.Message), gone.Token).ConfigureAwait(false);
            return;
        }
        logger.LogDebug("Exec {Command} in {Container} exited {Code}", string.Join(' ', request.Cmd), request.ContainerId, exitCode);
        var status = exitCode == 0
            ? RemoteCommandStatus.Success
            : RemoteCommandStatus.NonZeroExit(request.Cmd, exitCode);
        await streams.FinishAsync(status, gone.Token).ConfigureAwait(false);
    }
}

/// <summary>The outcome the error stream reports.</summary>
internal sealed record RemoteCommandStatus(bool Succeeded, string Message, int? ExitCode)
{
    public static RemoteCommandStatus Success { get; } = new(true, "", null);

    public static RemoteCommandStatus Failure(string message) => new(false, message, null);

    public static RemoteCommandStatus NonZeroExit(IEnumerable<string> command, int code) =>
        new(false, $"command terminated with non-zero exit code: error executing command [{string.Join(' ', command)}], exit code {code}", code);

    /// <summary>metav1.Status as the kubelet writes it on the v4 error stream.</summary>
    public byte[] ToStatusJson()
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteEndObject();
            json.WriteString("status", Succeeded ? "Success" : "Failure");
            if (!Succeeded)
            {
                json.WriteString("message", Message);
                if (ExitCode is int code)
                {
                    json.WriteString("reason", "NonZeroExitCode");
                    json.WriteStartObject("details");
                    json.WriteStartArray("causes");
                    json.WriteStartObject();
                    json.WriteString("reason", "ExitCode");
                    json.WriteString("message", code.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    json.WriteEndObject();
                    json.WriteEndArray();
                    json.WriteEndObject();
                }
                else
                {
                    json.WriteString("reason", "InternalError");
                    json.WriteNumber("code", 500);
                }
            }
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }
}

/// <summary>The streams of one exec or attach connection, accepted as the client opens them.</summary>
internal sealed class RemoteCommandStreams
{
    private RemoteCommandStreams(string protocol, SpdyStream error)
    {
        Protocol = protocol;
        Error = error;
    }

    public string Protocol { get; }
    public SpdyStream Error { get; }
    public SpdyStream? Stdin { get; private set; }
    public SpdyStream? Stdout { get; private set; }
    public SpdyStream? Stderr { get; private set; }
    public SpdyStream? Resize { get; private set; }

    /// <summary>
    /// Accepts (and replies to) the streams the request implies, within the stream creation timeout. Returns null
    /// when the client did not open them in time or left (the connection is then closed).
    /// </summary>
    public static async Task<RemoteCommandStreams?> AcceptAsync(StreamingConnection connection, bool stdin, bool stdout, bool stderr, bool tty,
        CancellationToken cancellationToken)
    {
        var expected = new HashSet<string> { "error" };
        if (stdin) expected.Add("stdin");
        if (stdout) expected.Add("stdout");
        if (stderr && !tty) expected.Add("stderr");
        if (tty && connection.Protocol is "v3.channel.k8s.io" or "v4.channel.k8s.io") expected.Add("resize");
        var byType = new Dictionary<string, SpdyStream>();
        using var creation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        creation.CancelAfter(connection.StreamCreationTimeout);
        try
        {
            while (!expected.IsSubsetOf(byType.Keys))
            {
                var stream = await connection.Session.AcceptStreamAsync(creation.Token).ConfigureAwait(false);
                if (stream == null) return null;
                var type = stream.Header("streamtype");
                if (type == null || !expected.Contains(type) || byType.ContainsKey(type))
                {
                    await stream.ResetAsync(SpdyRstStatus.RefusedStream, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                await stream.ReplyAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                byType[type] = stream;
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        return new RemoteCommandStreams(connection.Protocol, byType["error"])
        {
            Stdin = byType.GetValueOrDefault("stdin"),
            Stdout = byType.GetValueOrDefault("stdout"),
            Stderr = byType.GetValueOrDefault("stderr"),
            Resize = byType.GetValueOrDefault("resize"),
        };
    }

    /// <summary>The streams as a command's stdio without a terminal.</summary>
    public ExecStdio ExecStdio() => new(
        Stdin is { } stdin ? (buffer, ct) => stdin.ReadAsync(buffer, ct) : null,
        Stdout is { } stdout ? (data, ct) => stdout.WriteAsync(data, ct) : null,
        Stderr is { } stderr ? (data, ct) => stderr.WriteAsync(data, ct) : null);

    /// <summary>The streams as a terminal's: stdin in, the one output to stdout, window sizes from the resize stream.</summary>
    public TerminalStdio TerminalStdio(ILogger logger, CancellationToken cancellationToken) => new(
        Stdin is { } stdin ? (buffer, ct) => stdin.ReadAsync(buffer, ct) : null,
        Stdout is { } stdout ? (data, ct) => stdout.WriteAsync(data, ct) : null,
        TerminalResize.Start(Resize, logger, cancellationToken));

    /// <summary>Finishes stdout and stderr, reports <paramref name="status"/> on the error stream and finishes it.</summary>
    public async Task FinishAsync(RemoteCommandStatus status, CancellationToken cancellationToken)
    {
        foreach (var output in new[] { Stdout, Stderr })
            if (output != null) await output.CloseWriteAsync(cancellationToken).ConfigureAwait(false);
        if (Protocol == "v4.channel.k8s.io") await Error.WriteAsync(status.ToStatusJson(), cancellationToken).ConfigureAwait(false);
        else if (!status.Succeeded) await Error.WriteAsync(Encoding.UTF8.GetBytes(status.Message), cancellationToken).ConfigureAwait(false);
        await Error.CloseWriteAsync(cancellationToken).ConfigureAwait(false);
    }
}
