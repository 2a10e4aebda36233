using System.Net;
using System.Net.Sockets;
using CriRuntime.Streaming.Spdy;
using Xunit;

namespace CriRuntime.Tests.Streaming;

/// <summary>SPDY sessions over real loopback TCP: against each other, and against a raw peer that sends exact frames.</summary>
public class SpdySessionTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static async Task<(Stream Client, Stream Server)> ConnectedPairAsync()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        var server = await listener.AcceptAsync();
        listener.Dispose();
        return (new NetworkStream(client, ownsSocket: true), new NetworkStream(server, ownsSocket: true));
    }

    private static async Task<byte[]> ReadAllAsync(SpdyStream stream)
    {
        var result = new MemoryStream();
        var buffer = new byte[8192];
        int n;
        while ((n = await stream.ReadAsync(buffer).AsTask().WaitAsync(Wait)) > 0) result.Write(buffer, 0, n);
        return result.ToArray();
    }

    /// <summary>A peer that writes and reads exact frames, as a test double for spdystream or a hostile client.</summary>
    private sealed class RawPeer(Stream stream) : IDisposable
    {
        public Stream Stream { get; } = stream;
        public SpdyFrameWriter Writer { get; } = new(stream);
        public SpdyFrameReader Reader { get; } = new(stream);

        public ValueTask SendAsync(SpdyFrame frame) => Writer.WriteFrameAsync(frame, default);

        public async Task<SpdyFrame?> NextAsync(Func<SpdyFrame, bool>? skip = null)
        {
            while (true)
            {
                var frame = await Reader.ReadFrameAsync(default).AsTask().WaitAsync(Wait);
                if (frame != null && skip != null && skip(frame)) continue;
                return frame;
            }
        }

        public void Dispose()
        {
            Writer.Dispose();
            Reader.Dispose();
            Stream.Dispose();
        }
    }

    private static bool IsWindowUpdate(SpdyFrame f) => f is SpdyWindowUpdateFrame;

    [Fact]
    public async Task Streams_carry_headers_replies_data_and_fin_both_ways()
    {
        var (c, s) = await ConnectedPairAsync();
        await using var client = new SpdySession(c, SpdyRole.Client);
        await using var server = new SpdySession(s, SpdyRole.Server);
        client.Start();
        server.Start();

        var opened = await client.OpenStreamAsync([new("streamtype", "stdin")]);
        var accepted = await server.AcceptStreamAsync().AsTask().WaitAsync(Wait);
        Assert.NotNull(accepted);
        Assert.Equal(opened.Id, accepted.Id);
        Assert.Equal(1u, accepted.Id);
        Assert.Equal("stdin", accepted.Header("streamtype"));
        await accepted.ReplyAsync([new("ok", "yes")]);
        Assert.Equal([new SpdyHeader("ok", "yes")], await opened.Reply.WaitAsync(Wait));

        await opened.WriteAsync("hello"u8.ToArray());
        await opened.CloseWriteAsync();
        Assert.Equal("hello"u8.ToArray(), await ReadAllAsync(accepted));

        // More than a window: neither side announced flow control, as between spdystream peers.
        var big = new byte[300_000];
        Random.Shared.NextBytes(big);
        var sending = Task.Run(async () =>
        {
            await accepted.WriteAsync(big);
            await accepted.CloseWriteAsync();
        });
        Assert.Equal(big, await ReadAllAsync(opened));
        await sending.WaitAsync(Wait);

        var second = await client.OpenStreamAsync([new("streamtype", "stdout")]);
        Assert.Equal(3u, second.Id);
        Assert.Equal(3u, (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!.Id);
        Assert.True(await client.PingAsync().AsTask().WaitAsync(Wait) < Wait);
        Assert.True(await server.PingAsync().AsTask().WaitAsync(Wait) < Wait);
    }

    [Fact]
    public async Task Sessions_that_announce_nothing_move_a_megabyte_both_ways_at_once()
    {
        // Each side sends WINDOW_UPDATE as it reads, so each starts keeping to the other's windows part-way
        // through; neither may then treat the other's earlier sending as an overrun.
        var (c, s) = await ConnectedPairAsync();
        await using var client = new SpdySession(c, SpdyRole.Client);
        await using var server = new SpdySession(s, SpdyRole.Server);
        client.Start();
        server.Start();
        var up = await client.OpenStreamAsync([new("streamtype", "stdin")]);
        var down = await client.OpenStreamAsync([new("streamtype", "stdout")]);
        var upAccepted = (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!;
        var downAccepted = (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!;
        await upAccepted.ReplyAsync();
        await downAccepted.ReplyAsync();
        var payload = new byte[1 << 20];
        Random.Shared.NextBytes(payload);
        async Task SendAsync(SpdyStream stream)
        {
            await stream.WriteAsync(payload);
            await stream.CloseWriteAsync();
        }
        var sends = Task.WhenAll(Task.Run(() => SendAsync(up)), Task.Run(() => SendAsync(downAccepted)));
        var received = await Task.WhenAll(ReadAllAsync(upAccepted), ReadAllAsync(down));
        await sends.WaitAsync(Wait);
        Assert.Equal(payload, received[0]);
        Assert.Equal(payload, received[1]);
        Assert.Null(client.Error);
        Assert.Null(server.Error);
    }

    [Fact]
    public async Task A_peer_that_announces_flow_control_is_never_sent_more_than_its_window()
    {
        var (c, s) = await ConnectedPairAsync();
        await using var client = new SpdySession(c, SpdyRole.Client, new SpdySessionOptions { AnnounceFlowControl = true });
        await using var server = new SpdySession(s, SpdyRole.Server);
        client.Start();
        server.Start();
        var opened = await client.OpenStreamAsync([new("streamtype", "stdout")]);
        var accepted = (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!;
        await accepted.ReplyAsync();
        await opened.Reply.WaitAsync(Wait);
        Assert.True(server.PeerUsesFlowControl);

        var payload = new byte[256 * 1024];
        Random.Shared.NextBytes(payload);
        var writing = accepted.WriteAsync(payload).AsTask();
        // The client reads nothing: the server must stop at the 64 KiB window.
        await Task.Delay(500);
        Assert.False(writing.IsCompleted, "the server wrote 256 KiB into a 64 KiB window nobody reads");

        var received = new byte[payload.Length];
        var got = 0;
        while (got < payload.Length)
            got += await opened.ReadAsync(received.AsMemory(got)).AsTask().WaitAsync(Wait);
        await writing.WaitAsync(Wait);
        Assert.Equal(payload, received);
    }

    [Fact]
    public async Task A_peer_without_flow_control_may_send_far_past_the_window_and_everything_arrives()
    {
        var (c, s) = await ConnectedPairAsync();
        using var peer = new RawPeer(c);
        await using var server = new SpdySession(s, SpdyRole.Server);
        server.Start();
        await peer.SendAsync(new SpdySynStreamFrame(1, 0, 0, SpdyFlags.None, [new("streamtype", "stdin")]));
        var accepted = (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!;
        var chunk = new byte[32 * 1024];
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < 32; i++)
            {
                chunk[0] = (byte)i;
                await peer.SendAsync(new SpdyDataFrame(1, i == 31 ? SpdyFlags.Fin : SpdyFlags.None, chunk.ToArray()));
            }
        });
        var all = await ReadAllAsync(accepted);
        await sending.WaitAsync(Wait);
        Assert.Equal(32 * 32 * 1024, all.Length);
        Assert.Equal(31, all[31 * 32 * 1024]);
        Assert.False(server.PeerUsesFlowControl);
        Assert.Null(server.Error);
    }

    [Fact]
    public async Task A_flow_controlled_peer_that_overruns_its_window_gets_rst_flow_control_error()
    {
        var (c, s) = await ConnectedPairAsync();
        using var peer = new RawPeer(c);
        await using var server = new SpdySession(s, SpdyRole.Server);
        server.Start();
        await peer.SendAsync(new SpdySettingsFrame(0, [new SpdySetting(0, (uint)SpdySettingId.InitialWindowSize, 65536)]));
        await peer.SendAsync(new SpdySynStreamFrame(1, 0, 0, SpdyFlags.None, []));
        var accepted = (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!;
        for (var i = 0; i < 3; i++)
            await peer.SendAsync(new SpdyDataFrame(1, SpdyFlags.None, new byte[30_000]));
        Assert.Equal(new SpdyRstStreamFrame(1, SpdyRstStatus.FlowControlError), await peer.NextAsync(IsWindowUpdate));
        await Assert.ThrowsAsync<SpdyStreamClosedException>(async () => await ReadAllAsync(accepted));
    }

    [Fact]
    public async Task Pings_from_the_peer_are_echoed()
    {
        var (c, s) = await ConnectedPairAsync();
        using var peer = new RawPeer(c);
        await using var server = new SpdySession(s, SpdyRole.Server);
        server.Start();
        await peer.SendAsync(new SpdyPingFrame(7));
        Assert.Equal(new SpdyPingFrame(7), await peer.NextAsync());
    }

    public static TheoryData<string, string> HostileFrames => new()
    {
        { "bad version", "800200060000000400000001" },
        { "rst status 0", "80030003000000080000000100000000" },
        { "oversized frame", "0000000100ffffff" },
        { "garbage header block", "80030001000000100000000100000000000001020304050607" },
        { "even stream from a client", "" },
        { "decreasing stream id", "" },
    };

    [Theory]
    [MemberData(nameof(HostileFrames))]
    public async Task Hostile_frames_end_the_connection_with_goaway_protocol_error(string what, string hex)
    {
        var (c, s) = await ConnectedPairAsync();
        using var peer = new RawPeer(c);
        await using var server = new SpdySession(s, SpdyRole.Server);
        server.Start();
        var acceptance = server.AcceptStreamAsync().AsTask();
        switch (what)
        {
            case "even stream from a client":
                await peer.SendAsync(new SpdySynStreamFrame(2, 0, 0, SpdyFlags.None, []));
                break;
            case "decreasing stream id":
                await peer.SendAsync(new SpdySynStreamFrame(5, 0, 0, SpdyFlags.None, []));
                Assert.NotNull(await acceptance.WaitAsync(Wait));
                acceptance = server.AcceptStreamAsync().AsTask();
                await peer.SendAsync(new SpdySynStreamFrame(3, 0, 0, SpdyFlags.None, []));
                break;
            default:
                await peer.Stream.WriteAsync(Convert.FromHexString(hex));
                break;
        }
        var goAway = Assert.IsType<SpdyGoAwayFrame>(await peer.NextAsync());
        Assert.Equal(SpdyGoAwayStatus.ProtocolError, goAway.Status);
        // Then the server closes the connection.
        Assert.Null(await peer.NextAsync());
        await server.Completion.WaitAsync(Wait);
        Assert.IsType<SpdyProtocolException>(server.Error);
        Assert.Null(await acceptance.WaitAsync(Wait));
    }

    [Fact]
    public async Task After_goaway_new_streams_are_refused_and_open_ones_carry_on()
    {
        var (c, s) = await ConnectedPairAsync();
        using var peer = new RawPeer(c);
        await using var server = new SpdySession(s, SpdyRole.Server);
        server.Start();
        await peer.SendAsync(new SpdySynStreamFrame(1, 0, 0, SpdyFlags.None, []));
        var first = (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!;
        await server.GoAwayAsync();
        Assert.Equal(new SpdyGoAwayFrame(1, SpdyGoAwayStatus.Ok), await peer.NextAsync());
        await peer.SendAsync(new SpdySynStreamFrame(3, 0, 0, SpdyFlags.None, []));
        Assert.Equal(new SpdyRstStreamFrame(3, SpdyRstStatus.RefusedStream), await peer.NextAsync());
        await first.ReplyAsync();
        Assert.IsType<SpdySynReplyFrame>(await peer.NextAsync());
        await first.WriteAsync("still here"u8.ToArray());
        var data = Assert.IsType<SpdyDataFrame>(await peer.NextAsync());
        Assert.Equal("still here"u8.ToArray(), data.Data.ToArray());
    }

    [Fact]
    public async Task Streams_over_the_concurrency_limit_are_refused_and_closed_ones_free_their_place()
    {
        var (c, s) = await ConnectedPairAsync();
        using var peer = new RawPeer(c);
        await using var server = new SpdySession(s, SpdyRole.Server, new SpdySessionOptions { MaxConcurrentStreams = 2 });
        server.Start();
        await peer.SendAsync(new SpdySynStreamFrame(1, 0, 0, SpdyFlags.None, []));
        await peer.SendAsync(new SpdySynStreamFrame(3, 0, 0, SpdyFlags.None, []));
        await peer.SendAsync(new SpdySynStreamFrame(5, 0, 0, SpdyFlags.None, []));
        Assert.Equal(new SpdyRstStreamFrame(5, SpdyRstStatus.RefusedStream), await peer.NextAsync());
        var first = (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!;
        // Stream 1 finishes both ways: it no longer counts.
        await first.ReplyAsync(fin: true);
        Assert.IsType<SpdySynReplyFrame>(await peer.NextAsync());
        await peer.SendAsync(new SpdyDataFrame(1, SpdyFlags.Fin, ReadOnlyMemory<byte>.Empty));
        Assert.Equal(0, await first.ReadAsync(new byte[1]).AsTask().WaitAsync(Wait));
        await peer.SendAsync(new SpdySynStreamFrame(7, 0, 0, SpdyFlags.None, []));
        Assert.Equal(3u, (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!.Id);
        Assert.Equal(7u, (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!.Id);
    }

    [Fact]
    public async Task A_reset_stream_fails_its_reader_and_the_peer_sees_rst()
    {
        var (c, s) = await ConnectedPairAsync();
        await using var client = new SpdySession(c, SpdyRole.Client);
        await using var server = new SpdySession(s, SpdyRole.Server);
        client.Start();
        server.Start();
        var opened = await client.OpenStreamAsync([]);
        var accepted = (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!;
        var reading = accepted.ReadAsync(new byte[10]).AsTask();
        await opened.ResetAsync(SpdyRstStatus.Cancel);
        await Assert.ThrowsAsync<SpdyStreamClosedException>(() => reading.WaitAsync(Wait));
        await Assert.ThrowsAsync<SpdyStreamClosedException>(async () => await accepted.WriteAsync(new byte[1]));
        await Assert.ThrowsAnyAsync<Exception>(() => opened.Reply.WaitAsync(Wait));
    }

    [Fact]
    public async Task An_idle_connection_is_sent_goaway_and_closed()
    {
        var (c, s) = await ConnectedPairAsync();
        using var peer = new RawPeer(c);
        await using var server = new SpdySession(s, SpdyRole.Server, new SpdySessionOptions { IdleTimeout = TimeSpan.FromMilliseconds(300) });
        server.Start();
        Assert.Equal(new SpdyGoAwayFrame(0, SpdyGoAwayStatus.Ok), await peer.NextAsync());
        Assert.Null(await peer.NextAsync());
        await server.Completion.WaitAsync(Wait);
        Assert.Null(server.Error);
    }

    [Fact]
    public async Task A_peer_that_disconnects_ends_its_streams_but_data_it_finished_stays_readable()
    {
        var (c, s) = await ConnectedPairAsync();
        var peer = new RawPeer(c);
        await using var server = new SpdySession(s, SpdyRole.Server);
        server.Start();
        await peer.SendAsync(new SpdySynStreamFrame(1, 0, 0, SpdyFlags.None, []));
        await peer.SendAsync(new SpdyDataFrame(1, SpdyFlags.Fin, "bye"u8.ToArray()));
        await peer.SendAsync(new SpdySynStreamFrame(3, 0, 0, SpdyFlags.None, []));
        var finished = (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!;
        var unfinished = (await server.AcceptStreamAsync().AsTask().WaitAsync(Wait))!;
        var pending = unfinished.ReadAsync(new byte[10]).AsTask();
        peer.Dispose();
        await server.Completion.WaitAsync(Wait);
        Assert.Equal("bye"u8.ToArray(), await ReadAllAsync(finished));
        await Assert.ThrowsAsync<SpdyStreamClosedException>(() => pending.WaitAsync(Wait));
    }
}
