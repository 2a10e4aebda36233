using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace CriRuntime.Hosting.Http2;

/// <summary>
/// Kestrel connection middleware for the CRI unix socket. grpc-go clients dialled the way the kubelet,
/// crictl and critest did up to Kubernetes 1.30 send the socket path as HTTP/2 <c>:authority</c>,
/// which Kestrel refuses (RST_STREAM PROTOCOL_ERROR) with no option to allow it. This sits below
/// Kestrel's HTTP/2 layer and hands it the client's bytes through an <see cref="Http2AuthorityRewriter"/>.
/// </summary>
internal static class AuthorityRewriteMiddleware
{
    /// <summary>
    /// How long a new connection may take to send the 24-byte HTTP/2 preface before it is closed: a client
    /// that connects and stays silent would otherwise hold a descriptor until Kestrel's keep-alive timeout.
    /// </summary>
    internal static readonly TimeSpan PrefaceTimeout = TimeSpan.FromSeconds(5);

    public static ListenOptions UseAuthorityRewrite(this ListenOptions listen)
    {
        var logger = listen.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AuthorityRewriteMiddleware).FullName!);
        var kestrelLimits = listen.KestrelServerOptions.Limits;
        listen.Use(next => connection => RunAsync(connection, next, kestrelLimits, logger));
        return listen;
    }

    private static async Task RunAsync(ConnectionContext connection, ConnectionDelegate next, KestrelServerLimits kestrelLimits, ILogger logger)
    {
        var limits = new Http2RewriterLimits(kestrelLimits.Http2.HeaderTableSize, kestrelLimits.Http2.MaxFrameSize, kestrelLimits.MaxRequestHeadersTotalSize);
        var original = connection.Transport;
        long bufferLimit = kestrelLimits.MaxRequestBufferSize ?? 1024 * 1024;
        var pipe = new Pipe(new PipeOptions(
            pool: connection.Features.Get<IMemoryPoolFeature>()?.MemoryPool,
            pauseWriterThreshold: bufferLimit,
            resumeWriterThreshold: bufferLimit / 2,
            // Kestrel's frame loop continues on the pump's thread when the pump flushes, instead of
            // waiting for a thread-pool hop per read; it hands requests to the pool itself.
            readerScheduler: PipeScheduler.Inline,
            useSynchronizationContext: false));
        connection.Transport = new RewrittenTransport(pipe.Reader, original.Output);
        using var prefaceDeadline = new CancellationTokenSource(PrefaceTimeout);
        using var abortOnDeadline = prefaceDeadline.Token.Register(() =>
        {
            logger.LogDebug("Connection {Connection} sent no HTTP/2 preface within {Seconds}s; closing it", connection.ConnectionId, PrefaceTimeout.TotalSeconds);
            connection.Abort(new ConnectionAbortedException($"no HTTP/2 connection preface within {PrefaceTimeout.TotalSeconds:0}s"));
        });
        var pump = PumpAsync(original.Input, pipe.Writer, limits, connection.ConnectionId, logger,
            prefaceReceived: () => prefaceDeadline.CancelAfter(Timeout.InfiniteTimeSpan));
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            // Kestrel is done with the connection: unblock the pump wherever it waits, then let it finish.
            pipe.Reader.Complete();
            if (!pump.IsCompleted) original.Input.CancelPendingRead();
            await pump.ConfigureAwait(false);
            await original.Input.CompleteAsync().ConfigureAwait(false);
            connection.Transport = original;
        }
    }

    /// <summary>Copies the client's bytes through the rewriter; never throws.</summary>
    private static async Task PumpAsync(PipeReader input, PipeWriter output, Http2RewriterLimits limits, string connectionId, ILogger logger,
        Action prefaceReceived)
    {
        await Task.Yield();
        Exception? error = null;
        bool failed = false;
        using var rewriter = new Http2AuthorityRewriter(limits);
        bool prefaceSeen = false;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync().ConfigureAwait(false);
                var status = rewriter.Process(result.Buffer, output);
                input.AdvanceTo(result.Buffer.End);
                if (!prefaceSeen && rewriter.PrefaceDone)
                {
                    prefaceSeen = true;
                    prefaceReceived();
                }
                var flush = await output.FlushAsync().ConfigureAwait(false);
                if (status == RewriteStatus.Failed)
                {
                    logger.LogDebug("HTTP/2 connection {Connection}: {Error}; closing it with a connection error", connectionId, rewriter.Error);
                    failed = true;
                    break;
                }
                if (flush.IsCompleted || flush.IsCanceled || result.IsCompleted || result.IsCanceled) break;
            }
        }
        catch (Exception e)
        {
            // The transport failed (reset by the peer, aborted): Kestrel sees the same failure on its read.
            error = e;
        }
        try
        {
            // After a connection error the socket's input stays open until Kestrel is done: completing it fires
            // ConnectionClosed, which aborts Kestrel's frame writer and can drop the GOAWAY it is about to send.
            if (!failed) await input.CompleteAsync().ConfigureAwait(false);
            await output.CompleteAsync(error).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            logger.LogDebug(e, "HTTP/2 connection {Connection}: completing the rewritten input", connectionId);
        }
    }

    private sealed class RewrittenTransport(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }
}
