using System.Net.WebSockets;
using System.Text;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;
using static CriRuntime.IntegrationTests.Pods.StreamingTestHelpers;
using Ws = CriRuntime.TestSupport.WebSocketStreamingClient;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Exec without a tty over WebSocket (System.Net.WebSockets.ClientWebSocket against the real daemon and a runc
/// container), and the streaming session metrics it and a SPDY exec leave on /metrics.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class ExecWebSocketTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task WebSocketExec_v5_KeepsStdoutAndStderrApart_EndsStdinOnTheCloseSignal_AndReportsTheExitCode()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-ws");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(Bound);
        string metricsUrl = MetricsUrl(Daemon);
        string before = await ScrapeAsync(metricsUrl);

        var response = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", "cat; echo err >&2; exit 7" }, Stdin = true, Stdout = true, Stderr = true });
        var upgrade = await Ws.ConnectAsync(response.Url, ["v5.channel.k8s.io", "v4.channel.k8s.io"], timeout.Token);
        Assert.Equal(101, upgrade.StatusCode);
        Assert.Equal("v5.channel.k8s.io", upgrade.Protocol);
        using (var socket = upgrade.Socket!)
        {
            // More than the server buffers per channel, in messages of several sizes, through a real pipe and back.
            var input = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 40_000).Select(i => $"line {i}\n")));
            var reading = socket.ReadToCloseAsync(timeout.Token);
            await socket.SendAsync(Ws.Stdin, input.AsMemory(0, 100_000), timeout.Token, chunk: 7_000);
            await socket.SendAsync(Ws.Stdin, input.AsMemory(100_000), timeout.Token, chunk: 60_000);
            // Without the close signal cat would wait forever: it is what ends stdin on v5.
            await socket.CloseChannelAsync(Ws.Stdin, timeout.Token);
            var transcript = await reading;
            Assert.Equal(input.Length, transcript.Of(Ws.Stdout).Length);
            Assert.Equal(input, transcript.Of(Ws.Stdout));
            Assert.Equal("err\n", Encoding.UTF8.GetString(transcript.Of(Ws.Stderr)));
            string status = Encoding.UTF8.GetString(transcript.Of(Ws.Error));
            Output.WriteLine($"error channel: {status}; {transcript.Messages} messages; close {transcript.CloseStatus}");
            Assert.Equal(7, ExitCodeOf(status));
            Assert.Contains("\"NonZeroExitCode\"", status);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, transcript.CloseStatus);
        }

        // Used once: the same URL again is 404, over WebSocket as over SPDY; so is a token never issued.
        Assert.Equal(404, (await Ws.ConnectAsync(response.Url, ["v5.channel.k8s.io"], timeout.Token)).StatusCode);
        var unknown = new Uri(new Uri(response.Url), "/exec/AAAAAAAAAAAAAAAAAAAAAA").ToString();
        Assert.Equal(404, (await Ws.ConnectAsync(unknown, ["v5.channel.k8s.io"], timeout.Token)).StatusCode);

        // No protocol in common: 403, as wsstream's handshake.
        var other = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "true" }, Stdout = true });
        Assert.Equal(403, (await Ws.ConnectAsync(other.Url, ["v9.channel.k8s.io", "portforward.k8s.io"], timeout.Token)).StatusCode);

        // v4, no stdin, exit 0: a Success status, and the client's order decides the protocol.
        var v4 = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", "echo out; echo more >&2" }, Stdout = true, Stderr = true });
        var v4Upgrade = await Ws.ConnectAsync(v4.Url, ["v4.channel.k8s.io", "v5.channel.k8s.io"], timeout.Token);
        Assert.Equal("v4.channel.k8s.io", v4Upgrade.Protocol);
        using (var socket = v4Upgrade.Socket!)
        {
            var transcript = await socket.ReadToCloseAsync(timeout.Token);
            Assert.Equal("out\n", Encoding.UTF8.GetString(transcript.Of(Ws.Stdout)));
            Assert.Equal("more\n", Encoding.UTF8.GetString(transcript.Of(Ws.Stderr)));
            Assert.Equal(0, ExitCodeOf(Encoding.UTF8.GetString(transcript.Of(Ws.Error))));
        }

        // channel.k8s.io (also what a client naming no protocol gets): no status on success, the message on failure.
        var v1 = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", "exit 3" }, Stdout = true });
        var v1Upgrade = await Ws.ConnectAsync(v1.Url, [], timeout.Token);
        Assert.Equal(101, v1Upgrade.StatusCode);
        using (var socket = v1Upgrade.Socket!)
        {
            var transcript = await socket.ReadToCloseAsync(timeout.Token);
            Assert.Contains("exit code 3", Encoding.UTF8.GetString(transcript.Of(Ws.Error)));
        }

        // One SPDY exec too, then /metrics: every session counted by kind, transport and outcome, none left open.
        var spdy = await SpdyExecAsync(Runtime, new ExecRequest { ContainerId = id, Cmd = { "echo", "spdy" }, Stdout = true }, timeout.Token);
        Assert.Equal("spdy\n", Encoding.UTF8.GetString(spdy.Stdout));

        string after = "";
        bool counted = await EventuallyAsync(async () =>
        {
            after = await ScrapeAsync(metricsUrl);
            return Delta("websocket", "completed") == 3 && Delta("spdy", "completed") == 1 && Delta("websocket", "rejected") == 3 &&
                Sample(after, "criruntime_streaming_sessions_open", ("kind", "exec")) == 0;
        }, TimeSpan.FromSeconds(10));
        Assert.True(counted, "streaming metrics after 3 WebSocket execs, 3 refused WebSocket upgrades and 1 SPDY exec:\n" +
            string.Join('\n', after.Split('\n').Where(l => l.StartsWith("criruntime_streaming", StringComparison.Ordinal))));

        double Delta(string transport, string outcome) =>
            Sample(after, "criruntime_streaming_sessions_total", ("kind", "exec"), ("transport", transport), ("outcome", outcome)) -
            Sample(before, "criruntime_streaming_sessions_total", ("kind", "exec"), ("transport", transport), ("outcome", outcome));
    }

    [Fact]
    public async Task WebSocketExec_ClientThatGoesAway_KillsTheCommandAndItsChildren_AndCountsAnAbort()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-ws-gone");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(Bound);
        string metricsUrl = MetricsUrl(Daemon);

        var response = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", "sleep 4343 & echo started; wait" }, Stdout = true });
        var upgrade = await Ws.ConnectAsync(response.Url, ["v5.channel.k8s.io"], timeout.Token);
        var socket = upgrade.Socket!;
        var buffer = new byte[64];
        string seen = "";
        while (!seen.Contains("started"))
        {
            var r = await socket.ReceiveAsync(buffer.AsMemory(), timeout.Token);
            Assert.NotEqual(WebSocketMessageType.Close, r.MessageType);
            if (r.Count > 1 && buffer[0] == Ws.Stdout) seen += Encoding.ASCII.GetString(buffer, 1, r.Count - 1);
        }
        Assert.Equal(1, Sample(await ScrapeAsync(metricsUrl), "criruntime_streaming_sessions_open", ("kind", "exec"), ("transport", "websocket")));
        Assert.Contains("sleep 4343", await ExecOkAsync(id, "ps", "-o", "args"));

        // The client drops the TCP connection without a close frame.
        socket.Abort();
        socket.Dispose();
        bool gone = await EventuallyAsync(async () => !(await ExecOkAsync(id, "ps", "-o", "args")).Contains("4343"), TimeSpan.FromSeconds(30));
        Assert.True(gone, $"the exec'd processes outlived their client:\n{await ExecOkAsync(id, "ps", "-o", "args")}");
        string after = "";
        bool counted = await EventuallyAsync(async () =>
        {
            after = await ScrapeAsync(metricsUrl);
            return Sample(after, "criruntime_streaming_sessions_total", ("kind", "exec"), ("transport", "websocket"), ("outcome", "aborted")) == 1 &&
                Sample(after, "criruntime_streaming_sessions_open", ("kind", "exec")) == 0;
        }, TimeSpan.FromSeconds(10));
        Assert.True(counted, string.Join('\n', after.Split('\n').Where(l => l.StartsWith("criruntime_streaming", StringComparison.Ordinal))));
    }
}
