using System.Buffers;
using System.Net.WebSockets;
using System.Threading.Channels;

namespace CriRuntime.Streaming.WebSockets;

/// <summary>
/// The WebSocket subprotocols of k8s.io/apimachinery's remote command (wsstream), binary forms only: every message
/// is one channel byte then that channel's data. v5 adds a close signal (channel 255, then the channel whose
/// writing side the client closed); v4 and v5 carry a metav1.Status JSON on the error channel.
/// </summary>
public static class ChannelProtocols
{
    public const string V5 = "v5.channel.k8s.io";
    public const string V4 = "v4.channel.k8s.io";
    public const string V1 = "channel.k8s.io";

    /// <summary>What the server speaks for exec and attach, in its order of preference (the client's order decides).</summary>
    public static readonly string[] RemoteCommand = [V5, V4, V1];

    /// <summary>Whether the error channel carries a metav1.Status JSON (v4 and later) rather than a plain message.</summary>
    public static bool HasStatusJson(string protocol) => protocol is V5 or V4;

    /// <summary>
    /// The first protocol of the client (in its order) the server speaks, as wsstream's handshake; a client that
    /// names none gets the unnamed protocol, which is channel.k8s.io (returned as ""); null when none is in common.
    /// </summary>
    public static string? Negotiate(IReadOnlyList<string> clientProtocols, IReadOnlyList<string> serverProtocols)
    {
        if (clientProtocols.Count == 0) return "";
        foreach (var candidate in clientProtocols)
            if (serverProtocols.Contains(candidate)) return candidate;
        return null;
    }
}

/// <summary>
/// One WebSocket carrying numbered channels, as wsstream's Conn on the server side: outgoing data is sent one
/// message per write with the channel byte in front; incoming messages are split by their first byte into the
/// channels the handler reads (data for any other channel is dropped, as wsstream drops it). Each read channel
/// buffers at most <see cref="ChunksPerChannel"/> chunks of at most <see cref="ChunkSize"/> bytes; past that the
/// socket is not read until the handler catches up, so memory per connection stays bounded whatever the client
/// sends. A connection with no message either way for the idle timeout is aborted.
/// </summary>
public sealed class ChannelWebSocket : IAsyncDisposable
{
    public const byte StdinChannel = 0;
    public const byte StdoutChannel = 1;
    public const byte StderrChannel = 2;
    public const byte ErrorChannel = 3;
    public const byte ResizeChannel = 4;

    /// <summary>v5's close signal: a message [255, channel] ends the client's writing on that channel.</summary>
    public const byte CloseSignal = 255;

    public const int ChunkSize = 32 * 1024;
    public const int ChunksPerChannel = 8;

    private readonly WebSocket socket;
    private readonly string protocol;
    private readonly Dictionary<byte, InboundChannel> inbound = [];
    private readonly SemaphoreSlim sendLock = new(1, 1);
    private readonly CancellationTokenSource idle = new();
    private readonly TimeSpan idleTimeout;
    private readonly TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? receiving;

    /// <param name="readChannels">The channels the handler reads (stdin, resize); others are dropped.</param>
    public ChannelWebSocket(WebSocket socket, string protocol, IEnumerable<byte> readChannels, TimeSpan idleTimeout)
    {
        this.socket = socket;
        this.protocol = protocol;
        this.idleTimeout = idleTimeout;
        foreach (var channel in readChannels) inbound[channel] = new InboundChannel();
    }

    /// <summary>Completes when the client has closed the socket or it failed (the client is gone).</summary>
    public Task Completion => completion.Task;

    /// <summary>Starts reading the client's messages.</summary>
    public void Start()
    {
        Touch();
        receiving = Task.Run(ReceiveLoopAsync);
    }

    /// <summary>
    /// Reads what the client sent on <paramref name="channel"/> (one of the read channels); 0 once the client
    /// closed it (v5) or the socket.
    /// </summary>
    public async ValueTask<int> ReadAsync(byte channel, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var source = inbound[channel];
        while (source.Current.IsEmpty)
        {
            if (!await source.Chunks.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false)) return 0;
            if (source.Chunks.Reader.TryRead(out var chunk)) source.Current = chunk;
        }
        int n = Math.Min(buffer.Length, source.Current.Length);
        source.Current[..n].CopyTo(buffer);
        source.Current = source.Current[n..];
        return n;
    }

    /// <summary>Sends <paramref name="data"/> on <paramref name="channel"/>, in messages of at most <see cref="ChunkSize"/> bytes (an empty write sends the channel byte alone).</summary>
    public async ValueTask WriteAsync(byte channel, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var frame = ArrayPool<byte>.Shared.Rent(1 + Math.Min(data.Length, ChunkSize));
        try
        {
            do
            {
                int n = Math.Min(data.Length, ChunkSize);
                frame[0] = channel;
                data[..n].CopyTo(frame.AsMemory(1));
                await sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    await socket.SendAsync(frame.AsMemory(0, 1 + n), WebSocketMessageType.Binary, endOfMessage: true, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    sendLock.Release();
                }
                Touch();
                data = data[n..];
            }
            while (!data.IsEmpty);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    /// <summary>
    /// Ends the connection from the server's side: a normal close, then up to <paramref name="linger"/> for the
    /// client's close so it reads everything before the TCP connection goes.
    /// </summary>
    public async Task CloseAsync(TimeSpan linger, CancellationToken cancellationToken)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(linger);
        try
        {
            await sendLock.WaitAsync(bounded.Token).ConfigureAwait(false);
            try
            {
                if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, bounded.Token).ConfigureAwait(false);
            }
            finally
            {
                sendLock.Release();
            }
            await completion.Task.WaitAsync(bounded.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException)
        {
            // The client did not answer the close in time or is gone: the socket is dropped either way.
        }
    }

    private void Touch()
    {
        if (idleTimeout > TimeSpan.Zero && idleTimeout != Timeout.InfiniteTimeSpan)
        {
            try
            {
                idle.CancelAfter(idleTimeout);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = new byte[ChunkSize + 1];
        bool startOfMessage = true;
        InboundChannel? target = null;
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer.AsMemory(), idle.Token).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close) break;
                Touch();
                var data = buffer.AsMemory(0, result.Count);
                if (startOfMessage)
                {
                    if (data.IsEmpty)
                    {
                        // wsstream skips empty messages; a fragment of nothing says nothing either.
                        startOfMessage = result.EndOfMessage;
                        target = null;
                        continue;
                    }
                    byte channel = data.Span[0];
                    data = data[1..];
                    if (channel == CloseSignal && protocol == ChannelProtocols.V5)
                    {
                        if (data.Length != 1 || !result.EndOfMessage)
                        {
                            await FailAsync(WebSocketCloseStatus.ProtocolError, "a close signal is two bytes: 255 and the channel").ConfigureAwait(false);
                            return;
                        }
                        if (inbound.TryGetValue(data.Span[0], out var closed)) closed.Chunks.Writer.TryComplete();
                        continue;
                    }
                    target = inbound.GetValueOrDefault(channel);
                }
                startOfMessage = result.EndOfMessage;
                if (target == null || data.IsEmpty) continue;
                // A full channel waits here: the socket is not read until the handler takes some.
                await target.Chunks.Writer.WriteAsync(data.ToArray(), idle.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException or ChannelClosedException)
        {
            // Idle too long, or the client dropped the connection.
            if (idle.IsCancellationRequested) socket.Abort();
        }
        finally
        {
            foreach (var channel in inbound.Values) channel.Chunks.Writer.TryComplete();
            completion.TrySetResult();
        }
    }

    private async Task FailAsync(WebSocketCloseStatus status, string why)
    {
        try
        {
            await sendLock.WaitAsync(idle.Token).ConfigureAwait(false);
            try
            {
                await socket.CloseOutputAsync(status, why, idle.Token).ConfigureAwait(false);
            }
            finally
            {
                sendLock.Release();
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException)
        {
        }
        socket.Abort();
    }

    public async ValueTask DisposeAsync()
    {
        socket.Abort();
        if (receiving != null)
        {
            try { await receiving.ConfigureAwait(false); } catch (Exception) { }
        }
        socket.Dispose();
        idle.Dispose();
        sendLock.Dispose();
    }

    private sealed class InboundChannel
    {
        public Channel<ReadOnlyMemory<byte>> Chunks { get; } = Channel.CreateBounded<ReadOnlyMemory<byte>>(
            new BoundedChannelOptions(ChunksPerChannel) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });

        public ReadOnlyMemory<byte> Current { get; set; }
    }
}
