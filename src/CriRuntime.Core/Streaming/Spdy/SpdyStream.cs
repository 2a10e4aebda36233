namespace CriRuntime.Streaming.Spdy;

/// <summary>
/// One SPDY stream: the headers it was opened with, a bounded inbound buffer read with <see cref="ReadAsync"/>,
/// and outbound DATA that respects the peer's window when the peer uses one.
/// </summary>
public sealed class SpdyStream
{
    private readonly SpdySession session;
    private readonly object sync = new();
    private readonly Queue<ReadOnlyMemory<byte>> inbound = new();
    private readonly TaskCompletionSource<IReadOnlyList<SpdyHeader>> reply = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly int initialWindow;
    private TaskCompletionSource changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int buffered;
    private int headOffset;
    private long recvWindow;
    private long recvUnacked;
    private string? abortReason;
    private bool replied;
    private bool remoteClosed;
    private List<SpdyHeader>? trailers;

    internal SpdyStream(SpdySession session, uint id, IReadOnlyList<SpdyHeader> headers, bool local, int initialWindow, long sendWindow)
    {
        this.session = session;
        Id = id;
        Headers = headers;
        IsLocal = local;
        this.initialWindow = initialWindow;
        recvWindow = initialWindow;
        SendWindow = sendWindow;
    }

    public uint Id { get; }

    /// <summary>The headers of the SYN_STREAM that opened the stream.</summary>
    public IReadOnlyList<SpdyHeader> Headers { get; }

    /// <summary>True when this side opened the stream.</summary>
    public bool IsLocal { get; }

    /// <summary>For a stream this side opened: the SYN_REPLY headers; fails if the stream is reset first.</summary>
    public Task<IReadOnlyList<SpdyHeader>> Reply => reply.Task;

    /// <summary>Headers the peer sent later in HEADERS frames.</summary>
    public IReadOnlyList<SpdyHeader> Trailers
    {
        get { lock (sync) return trailers?.ToList() ?? []; }
    }

    /// <summary>The first value of header <paramref name="name"/> (lower case), or null.</summary>
    public string? Header(string name) => Headers.FirstOrDefault(h => h.Name == name).Value;

    // Both guarded by the session's gate.
    internal long SendWindow { get; set; }

    internal bool LocalClosed { get; set; }

    internal bool RemoteClosed
    {
        get { lock (sync) return remoteClosed; }
        init => remoteClosed = value;
    }

    /// <summary>Answers a stream the peer opened (SYN_REPLY); with <paramref name="fin"/> this side sends nothing more.</summary>
    public async ValueTask ReplyAsync(IReadOnlyList<SpdyHeader>? headers = null, bool fin = false, CancellationToken cancellationToken = default)
    {
        if (IsLocal) throw new InvalidOperationException("only the peer's streams are replied to");
        lock (sync)
        {
            if (replied) throw new InvalidOperationException($"stream {Id} is already replied to");
            replied = true;
            ThrowIfAborted();
        }
        await session.SendAsync(new SpdySynReplyFrame(Id, fin ? SpdyFlags.Fin : SpdyFlags.None, headers ?? []), cancellationToken).ConfigureAwait(false);
        if (fin) session.OnLocalFin(this);
    }

    /// <summary>
    /// Reads what the peer sent; 0 once the peer has finished the stream (FIN) and everything is read. Throws
    /// <see cref="SpdyStreamClosedException"/> if the stream is reset or the connection ends first.
    /// </summary>
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty) return 0;
        while (true)
        {
            Task wait;
            var copied = 0;
            uint credit = 0;
            lock (sync)
            {
                while (inbound.Count > 0 && copied < buffer.Length)
                {
                    var head = inbound.Peek()[headOffset..];
                    var n = Math.Min(head.Length, buffer.Length - copied);
                    head[..n].CopyTo(buffer[copied..]);
                    copied += n;
                    if (n == head.Length)
                    {
                        inbound.Dequeue();
                        headOffset = 0;
                    }
                    else headOffset += n;
                }
                if (copied > 0)
                {
                    buffered -= copied;
                    recvUnacked += copied;
                    // Return consumed bytes to the peer once half a window has built up, as HTTP/2 and SPDY peers do.
                    if (recvUnacked >= initialWindow / 2 && !remoteClosed)
                    {
                        credit = (uint)recvUnacked;
                        recvWindow += recvUnacked;
                        recvUnacked = 0;
                    }
                    Pulse();
                }
                else if (remoteClosed) return 0;
                else if (abortReason != null) throw new SpdyStreamClosedException(abortReason);
                wait = changed.Task;
            }
            if (copied > 0)
            {
                session.OnConsumed(this, copied, credit);
                return copied;
            }
            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Sends <paramref name="data"/> as DATA frames, waiting for window when the peer enforces one.</summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        while (!data.IsEmpty)
        {
            var chunk = Math.Min(data.Length, session.Options.MaxDataFrame);
            var granted = await session.AcquireSendWindowAsync(this, chunk, cancellationToken).ConfigureAwait(false);
            await session.SendAsync(new SpdyDataFrame(Id, SpdyFlags.None, data[..granted]), cancellationToken).ConfigureAwait(false);
            data = data[granted..];
        }
    }

    /// <summary>Finishes this side of the stream (an empty DATA frame with FIN); the peer can still send.</summary>
    public async ValueTask CloseWriteAsync(CancellationToken cancellationToken = default)
    {
        lock (sync) ThrowIfAborted();
        await session.SendAsync(new SpdyDataFrame(Id, SpdyFlags.Fin, ReadOnlyMemory<byte>.Empty), cancellationToken).ConfigureAwait(false);
        session.OnLocalFin(this);
    }

    /// <summary>Resets the stream (RST_STREAM); reads and writes fail from now on.</summary>
    public ValueTask ResetAsync(SpdyRstStatus status = SpdyRstStatus.Cancel, CancellationToken cancellationToken = default) =>
        session.ResetStreamAsync(this, status, cancellationToken);

    /// <summary>Completes once the peer has finished its side (FIN) or the stream is gone.</summary>
    public async Task WaitRemoteClosedAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Task wait;
            lock (sync)
            {
                if (remoteClosed || abortReason != null) return;
                wait = changed.Task;
            }
            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    internal bool Enqueue(ReadOnlyMemory<byte> data, bool enforceWindow)
    {
        lock (sync)
        {
            if (abortReason != null) return true;
            recvWindow -= data.Length;
            if (enforceWindow && recvWindow < 0) return false;
            if (data.IsEmpty) return true;
            inbound.Enqueue(data);
            buffered += data.Length;
            Pulse();
            return true;
        }
    }

    /// <summary>Waits until the buffered data is under one window (or the stream is gone): the reader loop's backpressure.</summary>
    internal async ValueTask WaitForRoomAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (sync)
            {
                if (buffered < initialWindow || abortReason != null) return;
                wait = changed.Task;
            }
            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    internal bool OnReply(IReadOnlyList<SpdyHeader> headers)
    {
        lock (sync)
        {
            if (replied) return false;
            replied = true;
        }
        reply.TrySetResult(headers);
        return true;
    }

    internal void OnHeaders(IReadOnlyList<SpdyHeader> headers)
    {
        lock (sync) (trailers ??= []).AddRange(headers);
    }

    internal void OnRemoteFin()
    {
        lock (sync)
        {
            remoteClosed = true;
            Pulse();
        }
    }

    /// <summary>
    /// Ends the stream. A reset drops what is buffered (the reader loop must not stay blocked on it); when the
    /// connection ends, data the peer finished sending stays readable.
    /// </summary>
    internal void Abort(string reason, bool keepBuffered = false)
    {
        lock (sync)
        {
            abortReason ??= reason;
            if (!keepBuffered)
            {
                inbound.Clear();
                headOffset = 0;
                buffered = 0;
            }
            Pulse();
        }
        reply.TrySetException(new SpdyStreamClosedException(reason));
        _ = reply.Task.Exception; // observed: a stream opened by the peer has no reply to wait for
    }

    internal void ThrowIfCannotWrite()
    {
        lock (sync)
        {
            ThrowIfAborted();
            if (LocalClosed) throw new InvalidOperationException($"stream {Id} is already finished on this side");
        }
    }

    private void ThrowIfAborted()
    {
        if (abortReason != null) throw new SpdyStreamClosedException(abortReason);
    }

    private void Pulse()
    {
        var old = changed;
        changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        old.TrySetResult();
    }
}
