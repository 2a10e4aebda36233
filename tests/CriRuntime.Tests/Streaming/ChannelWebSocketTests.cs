using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using CriRuntime.Streaming.WebSockets;
using Xunit;

namespace CriRuntime.Tests.Streaming;

/// <summary>The channel multiplexing of wsstream's protocols over a real WebSocket pair on loopback TCP.</summary>
public sealed class ChannelWebSocketTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private TcpClient? clientTcp;
    private TcpClient? serverTcp;

    public Task InitializeAsync()
    {
        listener.Start();
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        clientTcp?.Dispose();
        serverTcp?.Dispose();
        listener.Stop();
        return Task.CompletedTask;
    }

    private async Task<(WebSocket Server, WebSocket Client)> PairAsync(string protocol)
    {
        clientTcp = new TcpClient();
        var connecting = clientTcp.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        serverTcp = await listener.AcceptTcpClientAsync();
        await connecting;
        var server = WebSocket.CreateFromStream(serverTcp.GetStream(), new WebSocketCreationOptions { IsServer = true, SubProtocol = protocol, KeepAliveInterval = TimeSpan.Zero });
        var client = WebSocket.CreateFromStream(clientTcp.GetStream(), new WebSocketCreationOptions { IsServer = false, SubProtocol = protocol, KeepAliveInterval = TimeSpan.Zero });
        return (server, client);
    }

    private static Task Send(WebSocket socket, params byte[] message) =>
        socket.SendAsync(new ArraySegment<byte>(message), WebSocketMessageType.Binary, true, CancellationToken.None);

    private static async Task<byte[]> ReceiveMessageAsync(WebSocket socket, CancellationToken cancellationToken)
    {
        var all = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var r = await socket.ReceiveAsync(buffer.AsMemory(), cancellationToken);
            if (r.MessageType == WebSocketMessageType.Close) throw new EndOfStreamException($"closed: {socket.CloseStatus}");
            all.Write(buffer, 0, r.Count);
            if (r.EndOfMessage) return all.ToArray();
        }
    }

    private static async Task<string> ReadAllAsync(ChannelWebSocket channels, byte channel, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        var buffer = new byte[3];
        int n;
        while ((n = await channels.ReadAsync(channel, buffer, cancellationToken)) > 0) text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        return text.ToString();
    }

    [Fact]
    public async Task Messages_split_by_channel_byte_and_v5s_close_signal_ends_one_channel_while_the_socket_stays_open()
    {
        using var timeout = new CancellationTokenSource(Wait);
        var (server, client) = await PairAsync(ChannelProtocols.V5);
        await using var channels = new ChannelWebSocket(server, ChannelProtocols.V5, [ChannelWebSocket.StdinChannel], TimeSpan.FromMinutes(1));
        channels.Start();

        await Send(client, 0, (byte)'a', (byte)'b');
        await Send(client);                       // empty: skipped
        await Send(client, 7, (byte)'x');         // a channel nobody reads: dropped
        await Send(client, 2, (byte)'y');         // stderr is not readable: dropped
        await Send(client, 0, (byte)'c', (byte)'d', (byte)'e', (byte)'f');
        await Send(client, 255, 0);               // v5: stdin closed
        Assert.Equal("abcdef", await ReadAllAsync(channels, ChannelWebSocket.StdinChannel, timeout.Token));
        Assert.False(channels.Completion.IsCompleted, "the close signal ends stdin, not the connection");

        // Outgoing: the channel byte first; an empty write is the channel byte alone; big writes are split.
        await channels.WriteAsync(ChannelWebSocket.StdoutChannel, "out"u8.ToArray(), timeout.Token);
        await channels.WriteAsync(ChannelWebSocket.ErrorChannel, ReadOnlyMemory<byte>.Empty, timeout.Token);
        var big = new byte[ChannelWebSocket.ChunkSize * 2 + 5];
        Random.Shared.NextBytes(big);
        await channels.WriteAsync(ChannelWebSocket.StderrChannel, big, timeout.Token);
        Assert.Equal([1, (byte)'o', (byte)'u', (byte)'t'], await ReceiveMessageAsync(client, timeout.Token));
        Assert.Equal([3], await ReceiveMessageAsync(client, timeout.Token));
        var received = new List<byte>();
        for (int i = 0; i < 3; i++)
        {
            var message = await ReceiveMessageAsync(client, timeout.Token);
            Assert.Equal(2, message[0]);
            Assert.True(message.Length <= ChannelWebSocket.ChunkSize + 1, $"a message of {message.Length} bytes");
            received.AddRange(message.Skip(1));
        }
        Assert.Equal(big, received.ToArray());

        // The server closes; the client answers; the connection is done.
        var closing = channels.CloseAsync(TimeSpan.FromSeconds(5), timeout.Token);
        var last = await client.ReceiveAsync(new byte[16].AsMemory(), timeout.Token);
        Assert.Equal(WebSocketMessageType.Close, last.MessageType);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);
        await client.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
        await closing;
        await channels.Completion.WaitAsync(timeout.Token);
    }

    [Fact]
    public async Task Before_v5_the_close_signal_is_an_unread_channel_and_stdin_ends_when_the_client_closes()
    {
        using var timeout = new CancellationTokenSource(Wait);
        var (server, client) = await PairAsync(ChannelProtocols.V4);
        await using var channels = new ChannelWebSocket(server, ChannelProtocols.V4, [ChannelWebSocket.StdinChannel], TimeSpan.FromMinutes(1));
        channels.Start();
        await Send(client, 255, 0);
        await Send(client, 0, (byte)'z');
        await client.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
        Assert.Equal("z", await ReadAllAsync(channels, ChannelWebSocket.StdinChannel, timeout.Token));
        await channels.Completion.WaitAsync(timeout.Token);
    }

    [Fact]
    public async Task A_malformed_close_signal_ends_the_connection_with_protocol_error()
    {
        using var timeout = new CancellationTokenSource(Wait);
        var (server, client) = await PairAsync(ChannelProtocols.V5);
        await using var channels = new ChannelWebSocket(server, ChannelProtocols.V5, [ChannelWebSocket.StdinChannel], TimeSpan.FromMinutes(1));
        channels.Start();
        await Send(client, 255, 0, 0);
        var r = await client.ReceiveAsync(new byte[16].AsMemory(), timeout.Token);
        Assert.Equal(WebSocketMessageType.Close, r.MessageType);
        Assert.Equal(WebSocketCloseStatus.ProtocolError, client.CloseStatus);
        await channels.Completion.WaitAsync(timeout.Token);
        Assert.Equal(0, await channels.ReadAsync(ChannelWebSocket.StdinChannel, new byte[4], timeout.Token));
    }

    [Fact]
    public async Task A_connection_idle_for_the_timeout_is_aborted_and_activity_keeps_it()
    {
        using var timeout = new CancellationTokenSource(Wait);
        var (server, client) = await PairAsync(ChannelProtocols.V5);
        // An idle timeout 7.5 times the gap between messages, so a loaded test machine cannot make traffic look idle.
        await using var channels = new ChannelWebSocket(server, ChannelProtocols.V5, [ChannelWebSocket.StdinChannel], TimeSpan.FromMilliseconds(1500));
        channels.Start();
        // Traffic every 200 ms for 3 s, twice the timeout, keeps it open.
        for (int i = 0; i < 15; i++)
        {
            await Task.Delay(200, timeout.Token);
            await Send(client, 0, (byte)'k');
        }
        Assert.False(channels.Completion.IsCompleted, "a connection with traffic was closed as idle");
        await channels.Completion.WaitAsync(timeout.Token);
        Assert.Equal(WebSocketState.Aborted, server.State);
    }
}
