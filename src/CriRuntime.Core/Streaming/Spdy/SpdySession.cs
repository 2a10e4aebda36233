using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CriRuntime.Streaming.Spdy;

/// <summary>Which end of the connection this is: clients open odd-numbered streams and send odd PING ids.</summary>
public enum SpdyRole
{
    Client,
    Server,
}

public sealed record SpdySessionOptions
{
    public SpdyLimits Limits { get; init; } = SpdyLimits.Default;

    /// <summary>The receive window of each stream and of the session (SPDY/3.1's default is 64 KiB).</summary>
    public int InitialWindow { get; init; } = 64 * 1024;

    /// <summary>Most streams the peer may have open at once; more are refused with RST_STREAM REFUSED_STREAM.</summary>
    public int MaxConcurrentStreams { get; init; } = 1000;

    /// <summary>Largest DATA frame this side sends.</summary>
    public int MaxDataFrame { get; init; } = 32 * 1024;

    /// <summary>A connection with no frame in either direction for this long is sent GOAWAY and closed.</summary>
    public TimeSpan IdleTimeout { get; init; } = Timeout.InfiniteTimeSpan;

    /// <summary>
    /// Send SETTINGS INITIAL_WINDOW_SIZE first, which tells the peer this side honours flow control and expects it
    /// to do the same (see <see cref="SpdySession.PeerUsesFlowControl"/>).
    /// </summary>
    public bool AnnounceFlowControl { get; init; }
}

/// <summary>
/// One SPDY/3.1 connection: a reader loop that dispatches frames, streams with flow-control windows, PING echo,
/// GOAWAY. Either role; the Kubernetes streaming protocols have the client open every stream.
/// </summary>
/// <remarks>
/// Flow control. SPDY/3.1 gives every stream and the session a 64 KiB window that WINDOW_UPDATE reopens. The peers
/// that matter here (moby/spdystream in the kubelet, crictl, kubectl and the API server) never send WINDOW_UPDATE
/// and ignore it, so enforcing the windows against them would stall every stream after 64 KiB. This session
/// therefore keeps the windows exactly and always sends WINDOW_UPDATE as data is consumed, but holds itself to the
/// peer's windows only once the peer has shown it grants them (a SETTINGS INITIAL_WINDOW_SIZE or a WINDOW_UPDATE)
/// or this side announced flow control itself, and holds the peer to this side's windows (RST_STREAM
/// FLOW_CONTROL_ERROR) only if the peer announced it with SETTINGS. Otherwise a stream that has buffered a full
/// window stops the reader loop, so TCP pushes back on the peer: memory per stream stays bounded either way.
/// </remarks>
public sealed class SpdySession : IAsyncDisposable
{
    private readonly Stream transport;
    private readonly SpdyFrameReader reader;
    private readonly SpdyFrameWriter writer;
    private readonly SemaphoreSlim writeLock = new(1, 1);
    private readonly ILogger logger;
    private readonly CancellationTokenSource lifetime = new();
    private readonly CancellationTokenSource idle = new();
    private readonly Channel<SpdyStream> accepted = Channel.CreateUnbounded<SpdyStream>();
    private readonly TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Everything below is guarded by gate.
    private readonly object gate = new();
    private readonly Dictionary<uint, SpdyStream> streams = [];
    private readonly Dictionary<uint, TaskCompletionSource> pings = [];
    private TaskCompletionSource windowChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private uint nextLocalStreamId;
    private uint nextPingId;
    private uint lastPeerStreamId;
    private long sessionSendWindow;
    private long sessionRecvUnacked;
    private long peerInitialWindow;
    private bool sentGoAway;
    private bool peerSentGoAway;
    private bool ended;
    private int peerStreamCount;
    private Task? readLoop;
    private Task announced = Task.CompletedTask;

    public SpdySession(Stream transport, SpdyRole role, SpdySessionOptions? options = null, ILogger? logger = null)
    {
        this.transport = transport;
        Role = role;
        Options = options ?? new SpdySessionOptions();
        this.logger = logger ?? NullLogger.Instance;
        reader = new SpdyFrameReader(transport, Options.Limits);
        writer = new SpdyFrameWriter(transport);
        nextLocalStreamId = role == SpdyRole.Client ? 1u : 2u;
        nextPingId = role == SpdyRole.Client ? 1u : 2u;
        sessionSendWindow = 64 * 1024;
        peerInitialWindow = 64 * 1024;
    }

    public SpdyRole Role { get; }

    public SpdySessionOptions Options { get; }

    /// <summary>True once the peer has sent SETTINGS INITIAL_WINDOW_SIZE or WINDOW_UPDATE: this side then keeps to the peer's windows.</summary>
    public bool PeerUsesFlowControl { get; private set; }

    /// <summary>True once the peer has sent SETTINGS INITIAL_WINDOW_SIZE: it keeps to this side's windows from the start, and overrunning one is an error.</summary>
    public bool PeerAnnouncedFlowControl { get; private set; }

    private bool EnforceSendWindow => PeerUsesFlowControl || Options.AnnounceFlowControl;

    /// <summary>The session error that ended the connection, if one did.</summary>
    public Exception? Error { get; private set; }

    /// <summary>Completes when the connection has ended, for whatever reason.</summary>
    public Task Completion => completion.Task;

    /// <summary>Starts the reader loop (and, with <see cref="SpdySessionOptions.AnnounceFlowControl"/>, sends SETTINGS).</summary>
    public void Start()
    {
        if (readLoop != null) throw new InvalidOperationException("the session is already started");
        TouchIdle();
        // SETTINGS goes out before anything else this side sends (OpenStreamAsync waits for it).
        if (Options.AnnounceFlowControl)
            announced = SendAsync(new SpdySettingsFrame(0, [new SpdySetting(0, (uint)SpdySettingId.InitialWindowSize, (uint)Options.InitialWindow)]), lifetime.Token).AsTask();
        readLoop = Task.Run(ReadLoopAsync);
    }

    /// <summary>Opens a stream (SYN_STREAM). <see cref="SpdyStream.Reply"/> completes when the peer answers.</summary>
    public async ValueTask<SpdyStream> OpenStreamAsync(IReadOnlyList<SpdyHeader> headers, bool fin = false, CancellationToken cancellationToken = default)
    {
        await announced.WaitAsync(cancellationToken).ConfigureAwait(false);
        // Ids must reach the wire in increasing order, so allocation and sending share the write lock.
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            SpdyStream stream;
            lock (gate)
            {
                if (ended || peerSentGoAway || sentGoAway) throw new SpdyStreamClosedException("the SPDY connection is closing; no new streams");
                if (nextLocalStreamId > 0x7fffffff) throw new SpdyStreamClosedException("this SPDY connection has used up its stream ids");
                stream = new SpdyStream(this, nextLocalStreamId, headers, local: true, Options.InitialWindow, peerInitialWindow);
                nextLocalStreamId += 2;
                if (fin) stream.LocalClosed = true;
                streams[stream.Id] = stream;
            }
            await WriteUnlockedAsync(new SpdySynStreamFrame(stream.Id, 0, 0, fin ? SpdyFlags.Fin : SpdyFlags.None, headers)).ConfigureAwait(false);
            return stream;
        }
        finally
        {
            writeLock.Release();
        }
    }

    /// <summary>The next stream the peer opened, or null once the connection is ending.</summary>
    public async ValueTask<SpdyStream?> AcceptStreamAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await accepted.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    /// <summary>Sends a PING and waits for its echo; returns the round-trip time.</summary>
    public async ValueTask<TimeSpan> PingAsync(CancellationToken cancellationToken = default)
    {
        var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        uint id;
        lock (gate)
        {
            if (ended) throw new SpdyStreamClosedException("the SPDY connection has ended");
            id = nextPingId;
            nextPingId = nextPingId >= 0x7ffffffd ? (Role == SpdyRole.Client ? 1u : 2u) : nextPingId + 2;
            pings[id] = answered;
        }
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            await SendAsync(new SpdyPingFrame(id), cancellationToken).ConfigureAwait(false);
            await answered.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            return System.Diagnostics.Stopwatch.GetElapsedTime(started);
        }
        finally
        {
            lock (gate) pings.Remove(id);
        }
    }

    /// <summary>Sends GOAWAY: the peer must open no more streams; open streams carry on.</summary>
    public async ValueTask GoAwayAsync(SpdyGoAwayStatus status = SpdyGoAwayStatus.Ok, CancellationToken cancellationToken = default)
    {
        uint last;
        lock (gate)
        {
            if (sentGoAway || ended) return;
            sentGoAway = true;
            last = lastPeerStreamId;
        }
        await SendAsync(new SpdyGoAwayFrame(last, status), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends GOAWAY (best effort), closes the connection and ends every stream.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await GoAwayAsync(SpdyGoAwayStatus.Ok, quick.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SpdyStreamClosedException)
        {
            // The peer is gone already.
        }
        End(null);
        if (readLoop != null)
            await readLoop.ConfigureAwait(false);
        reader.Dispose();
        await writeLock.WaitAsync().ConfigureAwait(false);
        try
        {
            writer.Dispose();
        }
        finally
        {
            writeLock.Release();
        }
        lifetime.Dispose();
        idle.Dispose();
    }

    private async Task ReadLoopAsync()
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(lifetime.Token, idle.Token);
        Exception? error = null;
        try
        {
            while (true)
            {
                var frame = await reader.ReadFrameAsync(linked.Token).ConfigureAwait(false);
                if (frame == null) break;
                TouchIdle();
                await HandleAsync(frame, linked.Token).ConfigureAwait(false);
            }
        }
        catch (SpdyProtocolException e)
        {
            error = e;
            logger.LogWarning("SPDY connection closed: {Message}", e.Message);
            await TrySendGoAwayAsync(SpdyGoAwayStatus.ProtocolError).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (idle.IsCancellationRequested && !lifetime.IsCancellationRequested)
        {
            logger.LogInformation("SPDY connection idle for {Timeout}; closing it", Options.IdleTimeout);
            await TrySendGoAwayAsync(SpdyGoAwayStatus.Ok).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (lifetime.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The transport broke or was closed: the streams learn it below.
            logger.LogDebug("SPDY connection ended: {Message}", e.Message);
        }
        End(error);
    }

    private async Task TrySendGoAwayAsync(SpdyGoAwayStatus status)
    {
        try
        {
            uint last;
            lock (gate)
            {
                sentGoAway = true;
                last = lastPeerStreamId;
            }
            using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await SendAsync(new SpdyGoAwayFrame(last, status), quick.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SpdyStreamClosedException)
        {
        }
    }

    private void End(Exception? error)
    {
        List<SpdyStream> open;
        List<TaskCompletionSource> waiting;
        lock (gate)
        {
            if (ended) return;
            ended = true;
            Error = error;
            open = [.. streams.Values];
            streams.Clear();
            waiting = [.. pings.Values];
            pings.Clear();
            windowChanged.TrySetResult();
        }
        lifetime.Cancel();
        accepted.Writer.TryComplete();
        // Streams accepted by nobody are dropped with the connection.
        while (accepted.Reader.TryRead(out var orphan)) orphan.Abort("the SPDY connection ended", keepBuffered: true);
        foreach (var stream in open) stream.Abort(error != null ? $"the SPDY connection failed: {error.Message}" : "the SPDY connection ended", keepBuffered: true);
        foreach (var ping in waiting) ping.TrySetException(new SpdyStreamClosedException("the SPDY connection ended before the PING was answered"));
        try
        {
            transport.Dispose();
        }
        catch (IOException)
        {
        }
        completion.TrySetResult();
    }

    private async ValueTask HandleAsync(SpdyFrame frame, CancellationToken cancellationToken)
    {
        switch (frame)
        {
            case SpdyDataFrame data:
                await OnDataAsync(data, cancellationToken).ConfigureAwait(false);
                break;
            case SpdySynStreamFrame syn:
                await OnSynStreamAsync(syn, cancellationToken).ConfigureAwait(false);
                break;
            case SpdySynReplyFrame reply:
            {
                var stream = Find(reply.StreamId);
                if (stream == null || !stream.IsLocal)
                {
                    await ResetAsync(reply.StreamId, SpdyRstStatus.InvalidStream, cancellationToken).ConfigureAwait(false);
                    break;
                }
                if (!stream.OnReply(reply.Headers))
                {
                    await ResetStreamAsync(stream, SpdyRstStatus.StreamInUse, cancellationToken).ConfigureAwait(false);
                    break;
                }
                if (reply.Flags.HasFlag(SpdyFlags.Fin)) OnRemoteFin(stream);
                break;
            }
            case SpdyHeadersFrame headers:
            {
                var stream = Find(headers.StreamId);
                if (stream == null) break;
                stream.OnHeaders(headers.Headers);
                if (headers.Flags.HasFlag(SpdyFlags.Fin)) OnRemoteFin(stream);
                break;
            }
            case SpdyRstStreamFrame rst:
            {
                var stream = Find(rst.StreamId);
                if (stream == null) break;
                Forget(stream);
                stream.Abort($"the peer reset stream {rst.StreamId} ({rst.Status})");
                break;
            }
            case SpdySettingsFrame settings:
                OnSettings(settings);
                break;
            case SpdyPingFrame ping:
            {
                var peers = (ping.Id & 1) == (Role == SpdyRole.Server ? 1u : 0u);
                if (peers)
                {
                    await SendAsync(ping, cancellationToken).ConfigureAwait(false);
                    break;
                }
                TaskCompletionSource? waiter;
                lock (gate) pings.Remove(ping.Id, out waiter);
                waiter?.TrySetResult();
                break;
            }
            case SpdyGoAwayFrame goAway:
                OnGoAway(goAway);
                break;
            case SpdyWindowUpdateFrame update:
                await OnWindowUpdateAsync(update, cancellationToken).ConfigureAwait(false);
                break;
        }
    }

    private async ValueTask OnSynStreamAsync(SpdySynStreamFrame syn, CancellationToken cancellationToken)
    {
        var peerParity = Role == SpdyRole.Server ? 1u : 0u;
        SpdyRstStatus? refuse = null;
        SpdyStream? stream = null;
        lock (gate)
        {
            if ((syn.StreamId & 1) != peerParity)
                throw new SpdyProtocolException($"the peer opened stream {syn.StreamId}, whose parity belongs to this side");
            if (syn.StreamId <= lastPeerStreamId)
                throw new SpdyProtocolException($"the peer opened stream {syn.StreamId} after stream {lastPeerStreamId}; ids must increase");
            lastPeerStreamId = syn.StreamId;
            if (sentGoAway) refuse = SpdyRstStatus.RefusedStream;
            else if (peerStreamCount >= Options.MaxConcurrentStreams) refuse = SpdyRstStatus.RefusedStream;
            else
            {
                stream = new SpdyStream(this, syn.StreamId, syn.Headers, local: false, Options.InitialWindow, peerInitialWindow)
                {
                    RemoteClosed = syn.Flags.HasFlag(SpdyFlags.Fin),
                    // A unidirectional stream carries data from the peer only.
                    LocalClosed = syn.Flags.HasFlag(SpdyFlags.Unidirectional),
                };
                streams[stream.Id] = stream;
                peerStreamCount++;
            }
        }
        if (refuse is { } status)
        {
            await ResetAsync(syn.StreamId, status, cancellationToken).ConfigureAwait(false);
            return;
        }
        accepted.Writer.TryWrite(stream!);
    }

    private async ValueTask OnDataAsync(SpdyDataFrame data, CancellationToken cancellationToken)
    {
        var length = data.Data.Length;
        var stream = Find(data.StreamId);
        long sessionCredit = 0;
        lock (gate)
        {
            if (stream == null)
            {
                // Data of a stream already gone (reset, or closed while the peer still sent) is dropped; its
                // bytes are still counted against, and returned to, the session window.
                sessionRecvUnacked += length;
                if (sessionRecvUnacked >= Options.InitialWindow / 2)
                {
                    sessionCredit = sessionRecvUnacked;
                    sessionRecvUnacked = 0;
                }
            }
        }
        if (stream == null)
        {
            var neverOpened = (data.StreamId & 1) == (Role == SpdyRole.Server ? 1u : 0u)
                ? data.StreamId > lastPeerStreamId
                : data.StreamId >= nextLocalStreamId;
            if (neverOpened) await ResetAsync(data.StreamId, SpdyRstStatus.InvalidStream, cancellationToken).ConfigureAwait(false);
            if (sessionCredit > 0) await SendAsync(new SpdyWindowUpdateFrame(0, (uint)sessionCredit), cancellationToken).ConfigureAwait(false);
            return;
        }
        if (stream.RemoteClosed)
        {
            await ResetStreamAsync(stream, SpdyRstStatus.StreamAlreadyClosed, cancellationToken).ConfigureAwait(false);
            return;
        }
        if (!stream.Enqueue(data.Data, PeerAnnouncedFlowControl))
        {
            // A peer that does flow control sent past the window it was given.
            await ResetStreamAsync(stream, SpdyRstStatus.FlowControlError, cancellationToken).ConfigureAwait(false);
            return;
        }
        if (data.Flags.HasFlag(SpdyFlags.Fin)) OnRemoteFin(stream);
        // Backpressure for peers that ignore windows: stop reading the connection until the stream's reader has
        // taken this stream below a window's worth of buffered data.
        if (!PeerAnnouncedFlowControl) await stream.WaitForRoomAsync(cancellationToken).ConfigureAwait(false);
    }

    private void OnSettings(SpdySettingsFrame settings)
    {
        foreach (var setting in settings.Settings)
        {
            if (setting.Id != (uint)SpdySettingId.InitialWindowSize) continue;
            if (setting.Value > 0x7fffffff) throw new SpdyProtocolException($"SETTINGS INITIAL_WINDOW_SIZE {setting.Value} is over 2^31-1");
            lock (gate)
            {
                var delta = setting.Value - peerInitialWindow;
                peerInitialWindow = setting.Value;
                PeerUsesFlowControl = true;
                PeerAnnouncedFlowControl = true;
                // The new initial window applies to open streams too, by the difference.
                foreach (var stream in streams.Values) stream.SendWindow += delta;
                PulseWindows();
            }
        }
    }

    private void OnGoAway(SpdyGoAwayFrame goAway)
    {
        List<SpdyStream> refused;
        lock (gate)
        {
            peerSentGoAway = true;
            // Streams this side opened after the last one the peer will process were never seen by it.
            refused = streams.Values.Where(s => s.IsLocal && s.Id > goAway.LastGoodStreamId).ToList();
            foreach (var s in refused) streams.Remove(s.Id);
        }
        foreach (var s in refused) s.Abort($"the peer sent GOAWAY ({goAway.Status}) before processing stream {s.Id}");
    }

    private async ValueTask OnWindowUpdateAsync(SpdyWindowUpdateFrame update, CancellationToken cancellationToken)
    {
        SpdyStream? overflowed = null;
        lock (gate)
        {
            PeerUsesFlowControl = true;
            if (update.StreamId == 0)
            {
                sessionSendWindow += update.Delta;
                if (sessionSendWindow > 0x7fffffff) throw new SpdyProtocolException("a WINDOW_UPDATE took the session window over 2^31-1");
            }
            else if (streams.TryGetValue(update.StreamId, out var stream))
            {
                stream.SendWindow += update.Delta;
                if (stream.SendWindow > 0x7fffffff) overflowed = stream;
            }
            PulseWindows();
        }
        if (overflowed != null) await ResetStreamAsync(overflowed, SpdyRstStatus.FlowControlError, cancellationToken).ConfigureAwait(false);
    }

    private void OnRemoteFin(SpdyStream stream)
    {
        stream.OnRemoteFin();
        lock (gate)
            if (stream.LocalClosed) Forget(stream);
    }

    private SpdyStream? Find(uint id)
    {
        lock (gate) return streams.GetValueOrDefault(id);
    }

    // Caller may or may not hold gate (it is re-entrant).
    private void Forget(SpdyStream stream)
    {
        lock (gate)
        {
            if (streams.Remove(stream.Id) && !stream.IsLocal) peerStreamCount--;
            PulseWindows();
        }
    }

    private void PulseWindows()
    {
        var old = windowChanged;
        windowChanged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        old.TrySetResult();
    }

    private void TouchIdle()
    {
        if (Options.IdleTimeout == Timeout.InfiniteTimeSpan) return;
        try
        {
            idle.CancelAfter(Options.IdleTimeout);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private ValueTask ResetAsync(uint streamId, SpdyRstStatus status, CancellationToken cancellationToken) =>
        SendAsync(new SpdyRstStreamFrame(streamId, status), cancellationToken);

    internal async ValueTask ResetStreamAsync(SpdyStream stream, SpdyRstStatus status, CancellationToken cancellationToken)
    {
        Forget(stream);
        stream.Abort($"stream {stream.Id} was reset by this side ({status})");
        await ResetAsync(stream.Id, status, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes one frame. The caller's token only bounds the wait for the write lock: a frame half-written would break the connection.</summary>
    internal async ValueTask SendAsync(SpdyFrame frame, CancellationToken cancellationToken)
    {
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await WriteUnlockedAsync(frame).ConfigureAwait(false);
        }
        finally
        {
            writeLock.Release();
        }
    }

    private async ValueTask WriteUnlockedAsync(SpdyFrame frame)
    {
        lock (gate)
            if (ended) throw new SpdyStreamClosedException("the SPDY connection has ended");
        try
        {
            await writer.WriteFrameAsync(frame, lifetime.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            End(null);
            throw new SpdyStreamClosedException($"the SPDY connection ended while writing: {e.Message}");
        }
        TouchIdle();
    }

    /// <summary>Takes up to <paramref name="wanted"/> bytes of send window for <paramref name="stream"/>, waiting while it is closed.</summary>
    internal async ValueTask<int> AcquireSendWindowAsync(SpdyStream stream, int wanted, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task changed;
            lock (gate)
            {
                if (ended) throw new SpdyStreamClosedException("the SPDY connection has ended");
                stream.ThrowIfCannotWrite();
                var room = Math.Min(stream.SendWindow, sessionSendWindow);
                if (!EnforceSendWindow || room > 0)
                {
                    var granted = EnforceSendWindow ? (int)Math.Min(wanted, room) : wanted;
                    // Windows are kept exact even while not enforced, so they are right once the peer turns out to use them.
                    stream.SendWindow -= granted;
                    sessionSendWindow -= granted;
                    return granted;
                }
                changed = windowChanged.Task;
            }
            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The stream's reader consumed bytes: return them to the peer's windows once half a window has built up.</summary>
    internal void OnConsumed(SpdyStream stream, int count, uint streamCredit)
    {
        long sessionCredit = 0;
        lock (gate)
        {
            sessionRecvUnacked += count;
            if (sessionRecvUnacked >= Options.InitialWindow / 2)
            {
                sessionCredit = sessionRecvUnacked;
                sessionRecvUnacked = 0;
            }
        }
        if (streamCredit == 0 && sessionCredit == 0) return;
        _ = SendCreditsAsync(stream.Id, streamCredit, (uint)sessionCredit);
    }

    private async Task SendCreditsAsync(uint streamId, uint streamCredit, uint sessionCredit)
    {
        try
        {
            if (streamCredit > 0) await SendAsync(new SpdyWindowUpdateFrame(streamId, streamCredit), lifetime.Token).ConfigureAwait(false);
            if (sessionCredit > 0) await SendAsync(new SpdyWindowUpdateFrame(0, sessionCredit), lifetime.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SpdyStreamClosedException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    /// <summary>This side sent FIN on the stream.</summary>
    internal void OnLocalFin(SpdyStream stream)
    {
        lock (gate)
        {
            stream.LocalClosed = true;
            if (stream.RemoteClosed) Forget(stream);
        }
    }

    internal bool IsOpen(SpdyStream stream)
    {
        lock (gate) return streams.ContainsKey(stream.Id);
    }
}
