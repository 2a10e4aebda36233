using System.Buffers;
using System.Globalization;
using System.Net.Sockets;
using System.Text.Encodings.Web;
using System.Text.Json;
using CriRuntime.Native;
using CriRuntime.Network;
using CriRuntime.Pods;
using CriRuntime.Streaming.Spdy;
using Runtime.V1;

namespace CriRuntime.Streaming;

/// <summary>
/// Port forwarding over <c>portforward.k8s.io</c>, as the kubelet's streaming server serves it to client-go: the
/// client opens streams in pairs, an <c>error</c> and a <c>data</c> stream sharing a <c>requestid</c> and naming
/// the pod's <c>port</c>; each complete pair gets its own TCP connection to localhost:PORT in the pod's network
/// namespace (the host's for host-network pods), copied both ways. Any number of pairs may run at once on one
/// connection. A pair that fails (a refused port, a bad port header, a pod that is gone) is told so on its error
/// stream as the kubelet's JSON (<c>{"closeConnection":…,"message":…}</c>); the connection stays up for the others.
/// </summary>
internal sealed class PortForwardHandler(PodSandboxManager pods, ILogger<PortForwardHandler> logger) : IStreamingHandler
{
    /// <summary>After one direction of a forward ends, how long the other may still run (containerd's, after socat's -t).</summary>
    private static readonly TimeSpan HalfCloseGrace = TimeSpan.FromSeconds(1);

    private const int CopyBufferSize = 16 * 1024;

    public async Task ServeAsync(StreamingConnection connection, CancellationToken cancellationToken)
    {
        var request = (PortForwardRequest)connection.Request.Request;
        var session = connection.Session;
        using var gone = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // The client leaving ends every forward of the connection.
        _ = session.Completion.ContinueWith(_ => gone.Cancel(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        // Pairs still waiting for their second stream, by request id. The session's limit on open streams bounds them.
        var waiting = new Dictionary<string, StreamPair>(StringComparer.Ordinal);
        var running = new List<Task>();
        void Track(Task task)
        {
            lock (running)
            {
                running.RemoveAll(t => t.IsCompleted);
                running.Add(task);
            }
        }

        try
        {
            while (await session.AcceptStreamAsync(gone.Token).ConfigureAwait(false) is { } stream)
            {
                var type = stream.Header("streamtype");
                if (type is not ("error" or "data"))
                {
                    // As the kubelet's upgrader: a stream that is neither half of a pair is refused outright.
                    logger.LogDebug("Port-forward stream {Stream} refused: stream type '{Type}' is neither error nor data", stream.Id, Echo.Of(type ?? ""));
                    await stream.ResetAsync(SpdyRstStatus.RefusedStream, gone.Token).ConfigureAwait(false);
                    continue;
                }
                await stream.ReplyAsync(cancellationToken: gone.Token).ConfigureAwait(false);
                var requestId = RequestIdOf(stream, type);

                StreamPair pair;
                bool created = false;
                lock (waiting)
                {
                    if (!waiting.TryGetValue(requestId, out pair!))
                    {
                        pair = new StreamPair(requestId);
                        waiting[requestId] = pair;
                        created = true;
                    }
                }
                if (created) Track(ExpireAsync(pair, waiting, connection.StreamCreationTimeout, gone.Token));
                if (!pair.TryAdd(type, stream))
                {
                    await RefuseDuplicateAsync(pair, type, stream, gone.Token).ConfigureAwait(false);
                    continue;
                }
                if (!pair.IsComplete) continue;
                bool ours;
                // The creation timeout may have taken the pair meanwhile (and told the client); then it is not forwarded.
                lock (waiting) ours = waiting.Remove(requestId);
                pair.Completed.Cancel();
                if (!ours)
                {
                    await TryAsync(() => stream.ResetAsync(SpdyRstStatus.Cancel, gone.Token)).ConfigureAwait(false);
                    continue;
                }
                Track(ForwardOrResetAsync(request.PodSandboxId, pair, gone.Token));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SpdyStreamClosedException)
        {
            // The connection ended or the server is stopping.
        }
        finally
        {
            gone.Cancel();
            Task[] all;
            lock (running) all = [.. running];
            await Task.WhenAll(all).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The pair a stream belongs to. Clients before request ids (kubectl 1.3 and older) get the kubelet's guess: the
    /// error stream's id, and the data stream's id less 2, which pairs them when they are opened back to back.
    /// </summary>
    private static string RequestIdOf(SpdyStream stream, string type)
    {
        var id = stream.Header("requestid");
        if (!string.IsNullOrEmpty(id)) return id;
        var streamId = type == "error" ? stream.Id : stream.Id - 2;
        return streamId.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>A pair whose second stream does not come within the stream creation timeout is told so and dropped.</summary>
    private async Task ExpireAsync(StreamPair pair, Dictionary<string, StreamPair> waiting, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, pair.Completed.Token);
            await Task.Delay(timeout, either.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        lock (waiting)
            if (!waiting.Remove(pair.RequestId)) return;
        logger.LogInformation("Port-forward request {Request}: timed out waiting for its {Missing} stream", Echo.Of(pair.RequestId), pair.Error == null ? "error" : "data");
        await FailAsync(pair, $"timed out waiting for streams of request {pair.RequestId}: a port-forward request needs an error and a data stream within {timeout.TotalSeconds:0} s",
            closeConnection: true, cancellationToken).ConfigureAwait(false);
    }

    private async Task RefuseDuplicateAsync(StreamPair pair, string type, SpdyStream duplicate, CancellationToken cancellationToken)
    {
        logger.LogInformation("Port-forward request {Request}: a second {Type} stream was refused", Echo.Of(pair.RequestId), type);
        await TryAsync(() => duplicate.ResetAsync(SpdyRstStatus.ProtocolError, cancellationToken)).ConfigureAwait(false);
        if (pair.Error is { } error)
            await TryAsync(() => WriteErrorAsync(error, $"error processing stream for request {pair.RequestId}: {type} stream already assigned", false, cancellationToken))
                .ConfigureAwait(false);
    }

    /// <summary>One forward, whatever happens: a failure nobody foresaw resets its two streams and leaves the others running.</summary>
    private async Task ForwardOrResetAsync(string podId, StreamPair pair, CancellationToken cancellationToken)
    {
        try
        {
            await ForwardAsync(podId, pair, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Port-forward request {Request} to pod {Pod} failed", Echo.Of(pair.RequestId), podId);
            await ResetAsync(pair).ConfigureAwait(false);
        }
    }

    /// <summary>Dials the pair's port in the pod and copies both ways until the forward ends; failures go on the pair's error stream.</summary>
    private async Task ForwardAsync(string podId, StreamPair pair, CancellationToken cancellationToken)
    {
        var data = pair.Data!;
        var portText = data.Header("port");
        if (ParsePort(portText) is not { } port)
        {
            await FailAsync(pair, $"error processing stream for request {pair.RequestId}: {PortProblem(portText)}", closeConnection: false, cancellationToken).ConfigureAwait(false);
            return;
        }

        string where = "host";
        Socket socket;
        try
        {
            var netns = NetworkNamespaceOf(podId);
            where = netns ?? "host";
            socket = await LocalhostDialer.DialAsync(netns, port, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ICriError or NativeException && !cancellationToken.IsCancellationRequested)
        {
            logger.LogInformation("Port-forward to port {Port} of pod {Pod} failed: {Message}", port, podId, e.Message);
            await FailAsync(pair, $"error forwarding port {port} to pod {podId}, uid : failed to execute portforward in network namespace \"{where}\": {e.Message}",
                closeConnection: true, cancellationToken).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException)
        {
            await ResetAsync(pair).ConfigureAwait(false);
            return;
        }

        logger.LogDebug("Port-forward request {Request}: forwarding to port {Port} of pod {Pod} in {Namespace}", Echo.Of(pair.RequestId), port, podId, where);
        using (socket)
            await CopyAsync(socket, data, cancellationToken).ConfigureAwait(false);
        await TryAsync(() => data.CloseWriteAsync(cancellationToken)).ConfigureAwait(false);
        await TryAsync(() => pair.Error!.CloseWriteAsync(cancellationToken)).ConfigureAwait(false);
        logger.LogDebug("Port-forward request {Request}: port {Port} of pod {Pod} done", Echo.Of(pair.RequestId), port, podId);
    }

    /// <summary>The pod's network namespace to dial in, null for the host's; the pod must exist and be ready.</summary>
    private string? NetworkNamespaceOf(string podId)
    {
        var pod = pods.Find(podId) ?? throw new NotFoundException($"pod sandbox {podId} is gone");
        if (pod.Phase != PodSandboxPhase.Ready)
            throw new FailedPreconditionException($"pod sandbox {podId} is not ready (stopped): its network namespace is closed");
        if (pod.HostNetwork) return null;
        if (pod.NetworkNamespace is not { } netns || !Namespaces.IsPinned(netns))
            throw new FailedPreconditionException($"network namespace for sandbox {podId} is closed");
        return netns;
    }

    /// <summary>
    /// Copies the data stream to the socket and the socket to the data stream. Each direction passes its end on
    /// (the client's FIN becomes a TCP half-close, the pod's EOF a FIN). Once the pod has finished (or either side
    /// failed) the other direction gets <see cref="HalfCloseGrace"/> before everything is closed, as containerd does;
    /// a client that only half-closed still gets the pod's whole answer (containerd would cut it after that second).
    /// A reset from either side ends the forward quietly: a pod that resets a connection is no error of the
    /// port-forward, and client-go drops the whole connection, every other forward with it, on any error message.
    /// </summary>
    private async Task CopyAsync(Socket socket, SpdyStream data, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var toPod = ToPodAsync(socket, data, stop.Token);
        var fromPod = FromPodAsync(socket, data, stop.Token);
        var first = await Task.WhenAny(toPod, fromPod).ConfigureAwait(false);
        try
        {
            if (first == toPod && await toPod.ConfigureAwait(false))
                await fromPod.WaitAsync(cancellationToken).ConfigureAwait(false);
            else
                await (first == toPod ? fromPod : toPod).WaitAsync(HalfCloseGrace, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
        }
        stop.Cancel();
        // Closing the socket also wakes a receive that ignores cancellation.
        socket.Dispose();
        await Task.WhenAll(toPod, fromPod).ConfigureAwait(false);
    }

    /// <summary>Client to pod; true when the client finished cleanly (FIN), which reached the pod as a half-close.</summary>
    private async Task<bool> ToPodAsync(Socket socket, SpdyStream data, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            int n;
            while ((n = await data.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            socket.Shutdown(SocketShutdown.Send);
            return true;
        }
        catch (Exception e) when (e is SocketException or SpdyStreamClosedException or OperationCanceledException or ObjectDisposedException)
        {
            logger.LogDebug("Port-forward stream {Stream} to the pod ended: {Message}", data.Id, e.Message);
            return false;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task FromPodAsync(Socket socket, SpdyStream data, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            int n;
            while ((n = await socket.ReceiveAsync(buffer.AsMemory(0, CopyBufferSize), SocketFlags.None, cancellationToken).ConfigureAwait(false)) > 0)
                await data.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
            await data.CloseWriteAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or SpdyStreamClosedException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            logger.LogDebug("Port-forward stream {Stream} from the pod ended: {Message}", data.Id, e.Message);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reports <paramref name="message"/> on the pair's error stream, then finishes both streams.</summary>
    private static async Task FailAsync(StreamPair pair, string message, bool closeConnection, CancellationToken cancellationToken)
    {
        if (pair.Error is { } error)
        {
            await TryAsync(() => WriteErrorAsync(error, message, closeConnection, cancellationToken)).ConfigureAwait(false);
            await TryAsync(() => error.CloseWriteAsync(cancellationToken)).ConfigureAwait(false);
        }
        if (pair.Data is { } data) await TryAsync(() => data.CloseWriteAsync(cancellationToken)).ConfigureAwait(false);
    }

    private static async Task ResetAsync(StreamPair pair)
    {
        foreach (var stream in new[] { pair.Error, pair.Data })
            if (stream != null) await TryAsync(() => stream.ResetAsync(SpdyRstStatus.Cancel, CancellationToken.None)).ConfigureAwait(false);
    }

    /// <summary>The kubelet's error-stream message: <c>{"closeConnection":true,"message":"…"}</c> and a newline, as Go's json.Encoder writes it.</summary>
    internal static byte[] ErrorJson(string message, bool closeConnection)
    {
        var buffer = new MemoryStream();
        // Relaxed escaping keeps quotes as \" rather than \u0022: older clients print the message as it is.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (closeConnection) json.WriteBoolean("closeConnection", true);
            json.WriteString("message", message);
            json.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    private static ValueTask WriteErrorAsync(SpdyStream error, string message, bool closeConnection, CancellationToken cancellationToken) =>
        error.WriteAsync(ErrorJson(message, closeConnection), cancellationToken);

    /// <summary>A port header's value if it is a decimal 1..65535, else null (the kubelet parses it as a uint16).</summary>
    internal static int? ParsePort(string? text) =>
        !string.IsNullOrEmpty(text) && text.Length <= 5 && text.All(char.IsAsciiDigit) && int.Parse(text, CultureInfo.InvariantCulture) is >= 1 and <= 65535 and var port
            ? port
            : null;

    private static string PortProblem(string? text) => string.IsNullOrEmpty(text)
        ? "\"port\" header is required: name the pod's port to forward to"
        : $"unable to parse \"{Echo.Of(text)}\" as a port: give a number from 1 to 65535";

    /// <summary>Best effort on a stream the client may have reset or a connection that may be gone.</summary>
    private static async Task TryAsync(Func<ValueTask> action)
    {
        try
        {
            await action().ConfigureAwait(false);
        }
        catch (Exception e) when (e is SpdyStreamClosedException or OperationCanceledException or InvalidOperationException or ObjectDisposedException)
        {
        }
    }

    /// <summary>The error and data streams of one port-forward request.</summary>
    private sealed class StreamPair(string requestId)
    {
        private readonly object gate = new();

        public string RequestId { get; } = requestId;

        /// <summary>Cancelled once both streams are in: the creation timeout stops waiting.</summary>
        public CancellationTokenSource Completed { get; } = new();

        public SpdyStream? Error { get; private set; }

        public SpdyStream? Data { get; private set; }

        public bool IsComplete
        {
            get { lock (gate) return Error != null && Data != null; }
        }

        /// <summary>False when the pair already has a stream of <paramref name="type"/>.</summary>
        public bool TryAdd(string type, SpdyStream stream)
        {
            lock (gate)
            {
                if (type == "error")
                {
                    if (Error != null) return false;
                    Error = stream;
                }
                else
                {
                    if (Data != null) return false;
                    Data = stream;
                }
                return true;
            }
        }
    }
}
