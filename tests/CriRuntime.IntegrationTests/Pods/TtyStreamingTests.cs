using System.Diagnostics;
using System.Text;
using System.Text.Json;
using CriRuntime.Streaming.Spdy;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>Exec with a tty and Attach through the streaming server: our SPDY client, and stock crictl v1.26.1 under a pty.</summary>
[Collection(RegistryCollection.Name)]
public sealed class TtyStreamingTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task ExecWithTty_DrivesAShellInteractively_ResizesShowInSttySize_AndReportsTheExitCode(string handler)
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync($"tty-exec-{handler}", runtimeHandler: handler);
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(Bound);

        var response = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh" }, Tty = true, Stdin = true, Stdout = true });
        var upgrade = await SpdyStreamingClient.ConnectAsync(response.Url, ["v4.channel.k8s.io"], timeout.Token);
        Assert.Equal(101, upgrade.StatusCode);
        await using var session = upgrade.Session!;
        // As client-go opens them with a tty: no stderr, a resize stream.
        var error = await session.OpenAsync("error", timeout.Token);
        var stdin = await session.OpenAsync("stdin", timeout.Token);
        var stdout = await session.OpenAsync("stdout", timeout.Token);
        var resize = await session.OpenAsync("resize", timeout.Token);
        var screen = new Screen(stdout, timeout.Token);

        await resize.WriteAsync(Encoding.ASCII.GetBytes("{\"Width\":100,\"Height\":40}\n"), timeout.Token);
        // The first size races the command's start (it is set on the running terminal when it comes later, which
        // interrupts a stty already running), so the shell is asked once it is up and the size had time to land.
        await screen.WaitForAsync("# ", Output);
        await Task.Delay(200, timeout.Token);
        await stdin.WriteAsync(Encoding.ASCII.GetBytes("stty size; tty\n"), timeout.Token);
        await screen.WaitForAsync("40 100", Output);
        await screen.WaitForAsync("/dev/pts/", Output);

        // A resize while the shell runs reaches its terminal.
        await resize.WriteAsync(Encoding.ASCII.GetBytes("{\"Width\":132,\"Height\":50}\n"), timeout.Token);
        await Task.Delay(200, timeout.Token);
        await stdin.WriteAsync(Encoding.ASCII.GetBytes("stty size\n"), timeout.Token);
        await screen.WaitForAsync("50 132", Output);

        // Input is a terminal's: the shell sees what is typed, the exit code comes back on the error stream.
        await stdin.WriteAsync(Encoding.ASCII.GetBytes("echo typed-$((6*7))\nexit 5\n"), timeout.Token);
        await screen.WaitForAsync("typed-42", Output);
        await screen.Done;
        var statusJson = Encoding.UTF8.GetString(await error.ReadToEndAsync(timeout.Token));
        Output.WriteLine($"error stream: {statusJson}");
        Assert.Equal(5, ExitCodeOf(statusJson));
    }

    [Fact]
    public async Task ExecWithTty_WithoutStdin_StreamsOutputAndExitCodes_AndTheCommandDiesWithItsClient()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("tty-exec-codes");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(Bound);

        foreach (var (script, code) in new[] { ("echo hello; exit 0", 0), ("echo hello; exit 3", 3), ("echo hello; kill -9 $$", 137) })
        {
            var response = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", script }, Tty = true, Stdout = true });
            var upgrade = await SpdyStreamingClient.ConnectAsync(response.Url, ["v4.channel.k8s.io"], timeout.Token);
            await using var session = upgrade.Session!;
            var error = await session.OpenAsync("error", timeout.Token);
            var stdout = await session.OpenAsync("stdout", timeout.Token);
            await session.OpenAsync("resize", timeout.Token);
            string text = Encoding.UTF8.GetString(await stdout.ReadToEndAsync(timeout.Token));
            Assert.Contains("hello", text);
            var statusJson = Encoding.UTF8.GetString(await error.ReadToEndAsync(timeout.Token));
            Output.WriteLine($"[{script}] stdout {JsonSerializer.Serialize(text)}, error stream: {statusJson}");
            Assert.Equal(code, ExitCodeOf(statusJson));
        }

        // v2 has no resize stream: the exec still runs on a terminal.
        var v2 = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", "tty" }, Tty = true, Stdout = true });
        var v2Upgrade = await SpdyStreamingClient.ConnectAsync(v2.Url, ["v2.channel.k8s.io"], timeout.Token);
        await using (var session = v2Upgrade.Session!)
        {
            var error = await session.OpenAsync("error", timeout.Token);
            var stdout = await session.OpenAsync("stdout", timeout.Token);
            Assert.Contains("/dev/pts/", Encoding.UTF8.GetString(await stdout.ReadToEndAsync(timeout.Token)));
            Assert.Empty(await error.ReadToEndAsync(timeout.Token));
        }

        // The client leaving kills the command and its children, as without a tty.
        var gone = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", "sleep 4343 & echo started; wait" }, Tty = true, Stdout = true });
        var goneUpgrade = await SpdyStreamingClient.ConnectAsync(gone.Url, ["v4.channel.k8s.io"], timeout.Token);
        var goneSession = goneUpgrade.Session!;
        await goneSession.OpenAsync("error", timeout.Token);
        var goneStdout = await goneSession.OpenAsync("stdout", timeout.Token);
        await goneSession.OpenAsync("resize", timeout.Token);
        await new Screen(goneStdout, timeout.Token).WaitForAsync("started", Output);
        Assert.Contains("sleep 4343", await ExecOkAsync(id, "ps", "-o", "args"));
        await goneSession.DisposeAsync();
        bool killed = await EventuallyAsync(async () => !(await ExecOkAsync(id, "ps", "-o", "args")).Contains("4343"), TimeSpan.FromSeconds(20));
        Assert.True(killed, $"the tty exec outlived its client:\n{await ExecOkAsync(id, "ps", "-o", "args")}");
    }

    [Fact]
    public async Task Attach_ToAShellWithStdinAndTty_RunsWhatIsTyped_AndFollowsResizes()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("attach-tty");
        string id = await CreateAndStartAsync(pod, "shell", ["sh"], c => { c.Stdin = true; c.Tty = true; });
        using var timeout = new CancellationTokenSource(Bound);

        var response = await Runtime.AttachAsync(new AttachRequest { ContainerId = id, Stdin = true, Stdout = true, Tty = true });
        Assert.Matches("^http://127\\.0\\.0\\.1:[0-9]+/attach/[A-Za-z0-9_-]+$", response.Url);
        var upgrade = await SpdyStreamingClient.ConnectAsync(response.Url, ["v4.channel.k8s.io"], timeout.Token);
        Assert.Equal(101, upgrade.StatusCode);
        await using (var session = upgrade.Session!)
        {
            await session.OpenAsync("error", timeout.Token);
            var stdin = await session.OpenAsync("stdin", timeout.Token);
            var stdout = await session.OpenAsync("stdout", timeout.Token);
            var resize = await session.OpenAsync("resize", timeout.Token);
            var screen = new Screen(stdout, timeout.Token);
            await resize.WriteAsync(Encoding.ASCII.GetBytes("{\"Width\":90,\"Height\":30}"), timeout.Token);
            await Task.Delay(200, timeout.Token);
            await stdin.WriteAsync(Encoding.ASCII.GetBytes("stty size; echo attached-$((6*7))\n"), timeout.Token);
            await screen.WaitForAsync("30 90", Output);
            await screen.WaitForAsync("attached-42", Output);
        }

        // Detaching leaves the container running; a second attach sees the same shell.
        Assert.Equal(ContainerState.ContainerRunning, (await ContainerStatusAsync(id)).Status.State);
        var again = await Runtime.AttachAsync(new AttachRequest { ContainerId = id, Stdin = true, Stdout = true, Tty = true });
        var againUpgrade = await SpdyStreamingClient.ConnectAsync(again.Url, ["v4.channel.k8s.io"], timeout.Token);
        await using (var session = againUpgrade.Session!)
        {
            var error = await session.OpenAsync("error", timeout.Token);
            var stdin = await session.OpenAsync("stdin", timeout.Token);
            var stdout = await session.OpenAsync("stdout", timeout.Token);
            await session.OpenAsync("resize", timeout.Token);
            var screen = new Screen(stdout, timeout.Token);
            // The shell exiting ends the container's output, and with it the attach, with a Success status.
            await stdin.WriteAsync(Encoding.ASCII.GetBytes("echo bye-$((1+1)); exit 6\n"), timeout.Token);
            await screen.WaitForAsync("bye-2", Output);
            await screen.Done;
            using var status = JsonDocument.Parse(await error.ReadToEndAsync(timeout.Token));
            Assert.Equal("Success", status.RootElement.GetProperty("status").GetString());
        }
        Assert.Equal(6, (await WaitForExitAsync(id)).ExitCode);
    }

    [Fact]
    public async Task Attach_WithoutTty_ReadsStdoutAndStderrApart_AndDetachingLeavesTheContainerRunning()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("attach-out");
        string id = await CreateAndStartAsync(pod, "ticker", Sh("i=0; while true; do echo out-$i; echo err-$i >&2; i=$((i+1)); sleep 0.2; done"));
        using var timeout = new CancellationTokenSource(Bound);

        var response = await Runtime.AttachAsync(new AttachRequest { ContainerId = id, Stdout = true, Stderr = true });
        var upgrade = await SpdyStreamingClient.ConnectAsync(response.Url, ["v4.channel.k8s.io"], timeout.Token);
        await using (var session = upgrade.Session!)
        {
            await session.OpenAsync("error", timeout.Token);
            var stdout = new Screen(await session.OpenAsync("stdout", timeout.Token), timeout.Token);
            var stderr = new Screen(await session.OpenAsync("stderr", timeout.Token), timeout.Token);
            await stdout.WaitForAsync("\nout-", Output);
            await stderr.WaitForAsync("\nerr-", Output);
            Assert.DoesNotContain("err-", stdout.Text);
            Assert.DoesNotContain("out-", stderr.Text);
        }
        await Task.Delay(500);
        Assert.Equal(ContainerState.ContainerRunning, (await ContainerStatusAsync(id)).Status.State);
    }

    [Fact]
    public async Task Attach_StdinOnce_ClosingStdinEndsTheContainersStdin()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("attach-once");
        string id = await CreateAndStartAsync(pod, "cat", Sh("cat; echo stdin-closed; exit 4"), c => { c.Stdin = true; c.StdinOnce = true; });
        using var timeout = new CancellationTokenSource(Bound);

        var response = await Runtime.AttachAsync(new AttachRequest { ContainerId = id, Stdin = true, Stdout = true, Stderr = true });
        var upgrade = await SpdyStreamingClient.ConnectAsync(response.Url, ["v4.channel.k8s.io"], timeout.Token);
        await using var session = upgrade.Session!;
        var error = await session.OpenAsync("error", timeout.Token);
        var stdin = await session.OpenAsync("stdin", timeout.Token);
        var stdout = new Screen(await session.OpenAsync("stdout", timeout.Token), timeout.Token);
        await session.OpenAsync("stderr", timeout.Token);
        await stdin.WriteAsync(Encoding.ASCII.GetBytes("hello through attach\n"), timeout.Token);
        await stdout.WaitForAsync("hello through attach\n", Output);
        await stdin.CloseWriteAsync(timeout.Token);
        await stdout.WaitForAsync("stdin-closed", Output);
        await stdout.Done;
        using var status = JsonDocument.Parse(await error.ReadToEndAsync(timeout.Token));
        Assert.Equal("Success", status.RootElement.GetProperty("status").GetString());
        Assert.Equal(4, (await WaitForExitAsync(id)).ExitCode);
    }

    [Fact]
    public async Task Attach_IsRefused_ForMissingAndStoppedContainers_AndWithoutStdio()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("attach-refused");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        await ExpectErrorAsync(StatusCode.InvalidArgument, "Attach with no stdio",
            dl => Runtime.AttachAsync(new AttachRequest { ContainerId = id }, deadline: dl));
        await ExpectErrorAsync(StatusCode.InvalidArgument, "Attach with tty and stderr",
            dl => Runtime.AttachAsync(new AttachRequest { ContainerId = id, Stdout = true, Stderr = true, Tty = true }, deadline: dl));
        await ExpectErrorAsync(StatusCode.NotFound, "Attach to a missing container",
            dl => Runtime.AttachAsync(new AttachRequest { ContainerId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Stdout = true }, deadline: dl));
        await StopContainerAsync(id, 0);
        var stopped = await ExpectErrorAsync(StatusCode.FailedPrecondition, "Attach to a stopped container",
            dl => Runtime.AttachAsync(new AttachRequest { ContainerId = id, Stdout = true }, deadline: dl));
        Assert.Contains("running", stopped.Status.Detail);
    }

    [Fact]
    public async Task StockCrictl_ExecIT_UnderAPty_RunsAnInteractiveShell()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("tty-crictl-exec");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);

        // util-linux script gives crictl a terminal of 33x77; crictl sends that size, then relays what is typed.
        var session = await ScriptSession.StartAsync($"stty rows 33 cols 77; {CrictlCommand()} exec -i -t {id} sh", Output);
        await session.WaitForAsync("# ");
        await session.TypeAsync("stty size\n");
        await session.WaitForAsync("33 77");
        await session.TypeAsync("echo typed-$((6*7))\n");
        await session.WaitForAsync("typed-42");
        await session.TypeAsync("exit 3\n");
        int code = await session.ExitAsync();
        // crictl v1.26.1 reports the status and exits 1 itself (logrus.Fatal), see ExecStreamingTests.
        Assert.Contains("exit code 3", session.Text);
        Assert.NotEqual(0, code);
    }

    [Fact]
    public async Task StockCrictl_Attach_UnderAPty_JoinsTheContainersShell()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("tty-crictl-attach");
        string id = await CreateAndStartAsync(pod, "shell", ["sh"], c => { c.Stdin = true; c.Tty = true; });

        var session = await ScriptSession.StartAsync($"stty rows 21 cols 61; {CrictlCommand()} attach -i -t {id}", Output);
        await Task.Delay(1000);
        await session.TypeAsync("stty size; echo attached-$((6*7))\n");
        await session.WaitForAsync("21 61");
        await session.WaitForAsync("attached-42");
        // The container's shell exiting ends crictl's attach.
        await session.TypeAsync("exit 0\n");
        Assert.Equal(0, await session.ExitAsync());
        Assert.Equal(0, (await WaitForExitAsync(id)).ExitCode);
    }

    private string CrictlCommand() =>
        $"{StockCriTools.Crictl} --runtime-endpoint unix://{Daemon.Socket} --image-endpoint unix://{Daemon.Socket} --timeout 60s";

    private static int ExitCodeOf(string statusJson)
    {
        using var status = JsonDocument.Parse(statusJson);
        if (status.RootElement.GetProperty("status").GetString() == "Success") return 0;
        var cause = status.RootElement.GetProperty("details").GetProperty("causes")[0];
        Assert.Equal("ExitCode", cause.GetProperty("reason").GetString());
        return int.Parse(cause.GetProperty("message").GetString()!);
    }

    /// <summary>Everything a stream has sent so far, read in the background, and waits for text in it.</summary>
    private sealed class Screen
    {
        private readonly StringBuilder text = new();

        public Screen(SpdyStream stream, CancellationToken cancellationToken)
        {
            Done = Task.Run(async () =>
            {
                var buffer = new byte[4096];
                int n;
                while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
                    lock (text) text.Append(Encoding.UTF8.GetString(buffer, 0, n));
            }, cancellationToken);
        }

        /// <summary>Completes when the server finishes the stream.</summary>
        public Task Done { get; }

        public string Text
        {
            get { lock (text) return text.ToString(); }
        }

        public async Task WaitForAsync(string expected, ITestOutputHelper output)
        {
            var sw = Stopwatch.StartNew();
            while (!Text.Contains(expected, StringComparison.Ordinal))
            {
                if (sw.Elapsed > TimeSpan.FromSeconds(20) || (Done.IsCompleted && !Text.Contains(expected, StringComparison.Ordinal)))
                {
                    output.WriteLine($"screen so far: {JsonSerializer.Serialize(Text)}");
                    Assert.Fail($"'{expected}' did not appear within {sw.Elapsed.TotalSeconds:0} s{(Done.IsCompleted ? " (the stream ended)" : "")}: {JsonSerializer.Serialize(Text)}");
                }
                await Task.Delay(50);
            }
        }
    }

    /// <summary>A command run under util-linux <c>script</c> (a pty), typed into through a pipe, its screen collected.</summary>
    private sealed class ScriptSession
    {
        private readonly Process process;
        private readonly StringBuilder text = new();
        private readonly ITestOutputHelper output;

        private ScriptSession(Process process, ITestOutputHelper output)
        {
            this.process = process;
            this.output = output;
        }

        public string Text
        {
            get { lock (text) return text.ToString(); }
        }

        public static Task<ScriptSession> StartAsync(string command, ITestOutputHelper output)
        {
            var start = new ProcessStartInfo("script")
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var a in new[] { "-q", "-e", "-c", command, "/dev/null" }) start.ArgumentList.Add(a);
            var process = Process.Start(start) ?? throw new InvalidOperationException("cannot start script");
            var session = new ScriptSession(process, output);
            session.Pump(process.StandardOutput.BaseStream);
            session.Pump(process.StandardError.BaseStream);
            output.WriteLine($"$ script -q -e -c '{command}' /dev/null");
            return Task.FromResult(session);
        }

        private void Pump(Stream stream) => _ = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            int n;
            while ((n = await stream.ReadAsync(buffer)) > 0)
                lock (text) text.Append(Encoding.UTF8.GetString(buffer, 0, n));
        });

        public async Task TypeAsync(string keys)
        {
            await process.StandardInput.WriteAsync(keys);
            await process.StandardInput.FlushAsync();
        }

        public async Task WaitForAsync(string expected)
        {
            var sw = Stopwatch.StartNew();
            while (!Text.Contains(expected, StringComparison.Ordinal))
            {
                if (sw.Elapsed > TimeSpan.FromSeconds(30) || process.HasExited)
                {
                    await Task.Delay(200);
                    output.WriteLine($"screen: {JsonSerializer.Serialize(Text)}");
                    if (!process.HasExited) process.Kill(entireProcessTree: true);
                    Assert.Fail($"'{expected}' did not appear on crictl's terminal within {sw.Elapsed.TotalSeconds:0} s{(process.HasExited ? " (it exited)" : "")}");
                }
                await Task.Delay(50);
            }
        }

        public async Task<int> ExitAsync()
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                output.WriteLine($"screen: {JsonSerializer.Serialize(Text)}");
                Assert.Fail("crictl did not exit within 30 s");
            }
            await Task.Delay(200);
            output.WriteLine($"screen (exit {process.ExitCode}): {JsonSerializer.Serialize(Text)}");
            return process.ExitCode;
        }
    }
}
