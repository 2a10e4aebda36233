using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;
using static CriRuntime.IntegrationTests.Pods.StreamingTestHelpers;
using Ws = CriRuntime.TestSupport.WebSocketStreamingClient;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Exec with a tty and Attach over WebSocket v5 (System.Net.WebSockets.ClientWebSocket against the real daemon and
/// a runc container), and what is refused before the upgrade so a client that tries WebSocket first falls back
/// to SPDY with the same URL.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class WebSocketTtyTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task WebSocketExecWithTty_v5_DrivesAShell_ResizesShowInSttySize_AndReportsTheExitCode()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("ws-tty-exec");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(Bound);

        var response = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh" }, Tty = true, Stdin = true, Stdout = true });
        var upgrade = await Ws.ConnectAsync(response.Url, ["v5.channel.k8s.io", "v4.channel.k8s.io"], timeout.Token);
        Assert.Equal(101, upgrade.StatusCode);
        Assert.Equal("v5.channel.k8s.io", upgrade.Protocol);
        using var socket = upgrade.Socket!;
        var screen = new WebSocketScreen(socket, timeout.Token);

        await socket.SendAsync(Ws.Resize, Encoding.ASCII.GetBytes("{\"Width\":100,\"Height\":40}\n"), timeout.Token);
        // The first size races the command's start (it is set on the running terminal when it comes later), so
        // the shell is asked only once it is up and the size had time to land, as a person typing would.
        await screen.WaitForAsync("# ", Output);
        await Task.Delay(200, timeout.Token);
        await socket.SendAsync(Ws.Stdin, Encoding.ASCII.GetBytes("stty size; tty\n"), timeout.Token);
        await screen.WaitForAsync("40 100", Output);
        await screen.WaitForAsync("/dev/pts/", Output);

        // A resize while the shell runs reaches its terminal.
        await socket.SendAsync(Ws.Resize, Encoding.ASCII.GetBytes("{\"Width\":132,\"Height\":50}\n"), timeout.Token);
        await Task.Delay(200, timeout.Token);
        await socket.SendAsync(Ws.Stdin, Encoding.ASCII.GetBytes("stty size\n"), timeout.Token);
        await screen.WaitForAsync("50 132", Output);

        await socket.SendAsync(Ws.Stdin, Encoding.ASCII.GetBytes("echo typed-$((6*7))\nexit 5\n"), timeout.Token);
        await screen.WaitForAsync("typed-42", Output);
        var transcript = await screen.Done;
        string status = Encoding.UTF8.GetString(transcript.Of(Ws.Error));
        Output.WriteLine($"error channel: {status}; close {transcript.CloseStatus}");
        Assert.Equal(5, ExitCodeOf(status));
        // A terminal has one output: nothing on stderr.
        Assert.Empty(transcript.Of(Ws.Stderr));
        Assert.Equal(WebSocketCloseStatus.NormalClosure, transcript.CloseStatus);

        // Without stdin, v4: output and exit code 0 as a Success status.
        var v4 = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", "tty; echo done" }, Tty = true, Stdout = true });
        var v4Upgrade = await Ws.ConnectAsync(v4.Url, ["v4.channel.k8s.io"], timeout.Token);
        Assert.Equal(101, v4Upgrade.StatusCode);
        using (var v4Socket = v4Upgrade.Socket!)
        {
            var v4Transcript = await v4Socket.ReadToCloseAsync(timeout.Token);
            string text = Encoding.UTF8.GetString(v4Transcript.Of(Ws.Stdout));
            Assert.Contains("/dev/pts/", text);
            Assert.Contains("done", text);
            Assert.Equal(0, ExitCodeOf(Encoding.UTF8.GetString(v4Transcript.Of(Ws.Error))));
        }
    }

    [Fact]
    public async Task WebSocketAttach_v5_ToAShellWithStdinAndTty_FollowsResizes_AndEndsWithSuccess()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("ws-attach-tty");
        string id = await CreateAndStartAsync(pod, "shell", ["sh"], c => { c.Stdin = true; c.Tty = true; });
        using var timeout = new CancellationTokenSource(Bound);

        var response = await Runtime.AttachAsync(new AttachRequest { ContainerId = id, Stdin = true, Stdout = true, Tty = true });
        var upgrade = await Ws.ConnectAsync(response.Url, ["v5.channel.k8s.io"], timeout.Token);
        Assert.Equal(101, upgrade.StatusCode);
        Assert.Equal("v5.channel.k8s.io", upgrade.Protocol);
        using var socket = upgrade.Socket!;
        var screen = new WebSocketScreen(socket, timeout.Token);
        await socket.SendAsync(Ws.Resize, Encoding.ASCII.GetBytes("{\"Width\":90,\"Height\":30}"), timeout.Token);
        await Task.Delay(200, timeout.Token);
        await socket.SendAsync(Ws.Stdin, Encoding.ASCII.GetBytes("stty size; echo attached-$((6*7))\n"), timeout.Token);
        await screen.WaitForAsync("30 90", Output);
        await screen.WaitForAsync("attached-42", Output);

        // The shell exiting ends the container's output, and with it the attach, with a Success status.
        await socket.SendAsync(Ws.Stdin, Encoding.ASCII.GetBytes("echo bye-$((1+1)); exit 6\n"), timeout.Token);
        await screen.WaitForAsync("bye-2", Output);
        var transcript = await screen.Done;
        using (var status = JsonDocument.Parse(transcript.Of(Ws.Error)))
            Assert.Equal("Success", status.RootElement.GetProperty("status").GetString());
        Assert.Equal(6, (await WaitForExitAsync(id)).ExitCode);
    }

    [Fact]
    public async Task WebSocketAttach_v5_TheCloseSignalOnStdin_EndsAStdinOnceContainersStdin()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("ws-attach-once");
        string id = await CreateAndStartAsync(pod, "cat", Sh("cat; echo stdin-closed; echo to-stderr >&2; exit 4"), c => { c.Stdin = true; c.StdinOnce = true; });
        using var timeout = new CancellationTokenSource(Bound);

        var response = await Runtime.AttachAsync(new AttachRequest { ContainerId = id, Stdin = true, Stdout = true, Stderr = true });
        var upgrade = await Ws.ConnectAsync(response.Url, ["v5.channel.k8s.io"], timeout.Token);
        Assert.Equal(101, upgrade.StatusCode);
        using var socket = upgrade.Socket!;
        var screen = new WebSocketScreen(socket, timeout.Token);
        await socket.SendAsync(Ws.Stdin, Encoding.ASCII.GetBytes("hello through attach\n"), timeout.Token);
        await screen.WaitForAsync("hello through attach\n", Output);
        // Without v5's close signal cat would read forever.
        await socket.CloseChannelAsync(Ws.Stdin, timeout.Token);
        await screen.WaitForAsync("stdin-closed", Output);
        var transcript = await screen.Done;
        Assert.Equal("to-stderr\n", Encoding.UTF8.GetString(transcript.Of(Ws.Stderr)));
        using (var status = JsonDocument.Parse(transcript.Of(Ws.Error)))
            Assert.Equal("Success", status.RootElement.GetProperty("status").GetString());
        Assert.Equal(4, (await WaitForExitAsync(id)).ExitCode);
    }

    [Fact]
    public async Task WebSocketUpgrade_ThatIsNotServed_IsRefusedWithout101_AndTheTokenStillWorksOverSpdy()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("ws-refused");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(Bound);

        // Port-forward is not served over WebSocket: 501 before the handshake, so a client falls back to SPDY.
        var forward = await Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = pod.Id, Port = { 80 } });
        var refused = await Ws.ConnectAsync(forward.Url, ["v4.channel.k8s.io", "portforward.k8s.io"], timeout.Token);
        Assert.Equal(501, refused.StatusCode);
        Assert.Null(refused.Socket);
        // ...and its token is still good: the SPDY upgrade a falling-back client makes next with the same URL succeeds.
        var forwardSpdy = await SpdyStreamingClient.ConnectAsync(forward.Url, ["portforward.k8s.io"], timeout.Token);
        Assert.Equal(101, forwardSpdy.StatusCode);
        await forwardSpdy.Session!.DisposeAsync();

        // An exec whose protocols have none in common: 403, and then the same URL still serves SPDY.
        var exec = new ExecRequest { ContainerId = id, Cmd = { "echo", "fell-back" }, Stdout = true };
        var execResponse = await Runtime.ExecAsync(exec);
        Assert.Equal(403, (await Ws.ConnectAsync(execResponse.Url, ["v9.channel.k8s.io"], timeout.Token)).StatusCode);
        var spdy = await SpdyStdoutAsync(execResponse.Url, timeout.Token);
        Assert.Equal("fell-back\n", spdy);

        // A used token is 404 over WebSocket: refused, no 101.
        Assert.Equal(404, (await Ws.ConnectAsync(execResponse.Url, ["v5.channel.k8s.io"], timeout.Token)).StatusCode);
    }

    private static async Task<string> SpdyStdoutAsync(string url, CancellationToken cancellationToken)
    {
        var upgrade = await SpdyStreamingClient.ConnectAsync(url, ["v4.channel.k8s.io"], cancellationToken);
        Assert.Equal(101, upgrade.StatusCode);
        await using var session = upgrade.Session!;
        var error = await session.OpenAsync("error", cancellationToken);
        var stdout = await session.OpenAsync("stdout", cancellationToken);
        string text = Encoding.UTF8.GetString(await stdout.ReadToEndAsync(cancellationToken));
        Assert.Equal(0, ExitCodeOf(Encoding.UTF8.GetString(await error.ReadToEndAsync(cancellationToken))));
        return text;
    }

    /// <summary>Reads a channel WebSocket to its close in the background, and waits for text on stdout.</summary>
    private sealed class WebSocketScreen
    {
        private readonly StringBuilder text = new();

        public WebSocketScreen(ClientWebSocket socket, CancellationToken cancellationToken)
        {
            Done = Task.Run(async () =>
            {
                var kept = new Dictionary<byte, MemoryStream>();
                var buffer = new byte[16 * 1024];
                bool start = true;
                byte channel = 0;
                while (true)
                {
                    var result = await socket.ReceiveAsync(buffer.AsMemory(), cancellationToken);
                    if (result.MessageType == WebSocketMessageType.Close) break;
                    var data = buffer.AsMemory(0, result.Count);
                    if (start)
                    {
                        channel = data.Span[0];
                        data = data[1..];
                    }
                    start = result.EndOfMessage;
                    if (!kept.TryGetValue(channel, out var stream)) kept[channel] = stream = new MemoryStream();
                    stream.Write(data.Span);
                    if (channel == Ws.Stdout)
                        lock (text) text.Append(Encoding.UTF8.GetString(data.Span));
                }
                var closeStatus = socket.CloseStatus;
                if (socket.State == WebSocketState.CloseReceived)
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cancellationToken);
                return new ChannelTranscript(kept.ToDictionary(k => k.Key, k => k.Value.ToArray()),
                    kept.ToDictionary(k => k.Key, k => k.Value.Length), 0, closeStatus);
            }, cancellationToken);
        }

        /// <summary>Every channel's data once the server closed the socket.</summary>
        public Task<ChannelTranscript> Done { get; }

        private string Text
        {
            get { lock (text) return text.ToString(); }
        }

        public async Task WaitForAsync(string expected, ITestOutputHelper output)
        {
            var sw = Stopwatch.StartNew();
            while (!Text.Contains(expected, StringComparison.Ordinal))
            {
                if (Done.IsCompleted || sw.Elapsed > Bound)
                {
                    await (Done.IsFaulted ? Done : Task.CompletedTask);
                    output.WriteLine($"stdout so far: {JsonSerializer.Serialize(Text)}");
                    Assert.Fail($"'{expected}' never appeared on stdout (socket {(Done.IsCompleted ? "closed" : "open")})");
                }
                await Task.Delay(50);
            }
        }
    }
}
