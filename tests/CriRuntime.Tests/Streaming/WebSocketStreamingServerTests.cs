using System.Net.WebSockets;
using System.Text;
using CriRuntime.Config;
using CriRuntime.Streaming;
using CriRuntime.Streaming.WebSockets;
using CriRuntime.TestSupport;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Streaming;

/// <summary>The streaming server's WebSocket transport in-process: tokens, subprotocols, the handler seam, and the session metrics.</summary>
public sealed class WebSocketStreamingServerTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    /// <summary>Stands in for exec: echoes stdin to stdout until the client closes stdin, then names the protocol and container on error.</summary>
    private sealed class EchoHandler : IWebSocketStreamingHandler
    {
        public IReadOnlyList<string> Protocols => ChannelProtocols.RemoteCommand;

        public async Task ServeAsync(WebSocketStreamingConnection connection, CancellationToken cancellationToken)
        {
            await using var channels = new ChannelWebSocket(connection.Socket, connection.Protocol, [ChannelWebSocket.StdinChannel], connection.IdleTimeout);
            channels.Start();
            var buffer = new byte[1000];
            int n;
            while ((n = await channels.ReadAsync(ChannelWebSocket.StdinChannel, buffer, cancellationToken)) > 0)
                await channels.WriteAsync(ChannelWebSocket.StdoutChannel, buffer.AsMemory(0, n), cancellationToken);
            var exec = (ExecRequest)connection.Request.Request;
            await channels.WriteAsync(ChannelWebSocket.ErrorChannel, Encoding.UTF8.GetBytes($"{connection.Protocol} {exec.ContainerId}"), cancellationToken);
            await channels.CloseAsync(TimeSpan.FromSeconds(2), cancellationToken);
        }
    }

    private static string ExecToken(StreamingRequestCache cache, string container = "c1") =>
        cache.Insert(new StreamingRequest(StreamingKind.Exec, new ExecRequest { ContainerId = container, Cmd = { "sh" }, Stdin = true, Stdout = true }));

    private static async Task<double> SessionsAsync(string kind, string outcome)
    {
        var text = new MemoryStream();
        await Metrics.DefaultRegistry.CollectAndExportAsTextAsync(text);
        return Encoding.UTF8.GetString(text.ToArray()).Split('\n')
            .Where(l => l.StartsWith("criruntime_streaming_sessions_total{", StringComparison.Ordinal) && l.Contains($"kind=\"{kind}\"") &&
                l.Contains("transport=\"websocket\"") && l.Contains($"outcome=\"{outcome}\""))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task A_token_upgrades_once_to_a_websocket_with_the_clients_first_common_protocol_and_each_session_is_counted()
    {
        using var timeout = new CancellationTokenSource(Wait);
        var cache = new StreamingRequestCache();
        await using var server = await StreamingServer.StartAsync(new StreamingSection(), cache, new Dictionary<StreamingKind, IStreamingHandler>(),
            NullLoggerFactory.Instance, CancellationToken.None, new Dictionary<StreamingKind, IWebSocketStreamingHandler> { [StreamingKind.Exec] = new EchoHandler() });
        double completedBefore = await SessionsAsync("exec", "completed");
        double rejectedBefore = await SessionsAsync("exec", "rejected");
        double attachRejectedBefore = await SessionsAsync("attach", "rejected");

        var url = server.UrlFor(StreamingKind.Exec, ExecToken(cache, "abc"));
        var upgrade = await WebSocketStreamingClient.ConnectAsync(url, ["v9.channel.k8s.io", "v4.channel.k8s.io", "v5.channel.k8s.io"], timeout.Token);
        Assert.Equal(101, upgrade.StatusCode);
        Assert.Equal("v4.channel.k8s.io", upgrade.Protocol);
        using (var socket = upgrade.Socket!)
        {
            var reading = socket.ReadToCloseAsync(timeout.Token);
            var payload = new byte[100_000];
            Random.Shared.NextBytes(payload);
            await socket.SendAsync(WebSocketStreamingClient.Stdin, payload, timeout.Token);
            // v4 has no close signal: the client closes its side to end stdin.
            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
            var transcript = await reading;
            Assert.Equal(payload, transcript.Of(WebSocketStreamingClient.Stdout));
            Assert.Equal("v4.channel.k8s.io abc", Encoding.UTF8.GetString(transcript.Of(WebSocketStreamingClient.Error)));
        }

        // Used, unknown and expired-or-unknown tokens: 404. No common protocol: 403. A kind without a WebSocket handler: 501.
        Assert.Equal(404, (await WebSocketStreamingClient.ConnectAsync(url, ["v5.channel.k8s.io"], timeout.Token)).StatusCode);
        Assert.Equal(404, (await WebSocketStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.Exec, "nosuchtoken"), ["v5.channel.k8s.io"], timeout.Token)).StatusCode);
        Assert.Equal(403, (await WebSocketStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.Exec, ExecToken(cache)), ["portforward.k8s.io"], timeout.Token)).StatusCode);
        var attach = cache.Insert(new StreamingRequest(StreamingKind.Attach, new AttachRequest { ContainerId = "c", Stdout = true }));
        Assert.Equal(501, (await WebSocketStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.Attach, attach), ["v5.channel.k8s.io"], timeout.Token)).StatusCode);

        // v5, and no protocol at all (channel.k8s.io, answered without a subprotocol).
        foreach (var (offered, expected) in new[] { (new[] { "v5.channel.k8s.io" }, "v5.channel.k8s.io"), (Array.Empty<string>(), "channel.k8s.io") })
        {
            var next = await WebSocketStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.Exec, ExecToken(cache, "x")), offered, timeout.Token);
            Assert.Equal(101, next.StatusCode);
            using var socket = next.Socket!;
            Assert.Equal(offered.Length == 0 ? null : expected, string.IsNullOrEmpty(socket.SubProtocol) ? null : socket.SubProtocol);
            var reading = socket.ReadToCloseAsync(timeout.Token);
            await socket.SendAsync(WebSocketStreamingClient.Stdin, "hi"u8.ToArray(), timeout.Token);
            if (expected == ChannelProtocols.V5) await socket.CloseChannelAsync(WebSocketStreamingClient.Stdin, timeout.Token);
            else await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
            var transcript = await reading;
            Assert.Equal("hi", Encoding.UTF8.GetString(transcript.Of(WebSocketStreamingClient.Stdout)));
            Assert.Equal($"{expected} x", Encoding.UTF8.GetString(transcript.Of(WebSocketStreamingClient.Error)));
        }

        // The server counts a session once its handler has returned, just after the client saw the close.
        var deadline = DateTime.UtcNow + Wait;
        while (await SessionsAsync("exec", "completed") - completedBefore < 3 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(3, await SessionsAsync("exec", "completed") - completedBefore);
        Assert.Equal(3, await SessionsAsync("exec", "rejected") - rejectedBefore);
        Assert.Equal(1, await SessionsAsync("attach", "rejected") - attachRejectedBefore);
    }

    [Theory]
    [InlineData(new string[0], "")]
    [InlineData(new[] { "v5.channel.k8s.io", "v4.channel.k8s.io" }, "v5.channel.k8s.io")]
    [InlineData(new[] { "base64.channel.k8s.io", "channel.k8s.io" }, "channel.k8s.io")]
    [InlineData(new[] { "v4.base64.channel.k8s.io" }, null)]
    public void Negotiation_takes_the_clients_first_protocol_the_server_speaks(string[] offered, string? expected) =>
        Assert.Equal(expected, ChannelProtocols.Negotiate(offered, ChannelProtocols.RemoteCommand));
}
