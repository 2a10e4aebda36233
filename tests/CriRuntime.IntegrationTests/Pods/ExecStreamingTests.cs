using System.Diagnostics;
using System.Text;
using System.Text.Json;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>Exec without a tty through the streaming server: our SPDY client, and stock crictl v1.26.1.</summary>
[Collection(RegistryCollection.Name)]
public sealed class ExecStreamingTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Exec_StreamsStdoutStderrApart_PassesStdin_AndReportsTheExitCodeAsV4Status()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-stream");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(Bound);

        var response = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", "cat; echo err >&2; exit 7" }, Stdin = true, Stdout = true, Stderr = true });
        Assert.Matches("^http://127\\.0\\.0\\.1:[0-9]+/exec/[A-Za-z0-9_-]+$", response.Url);
        var upgrade = await SpdyStreamingClient.ConnectAsync(response.Url, ["v4.channel.k8s.io", "v3.channel.k8s.io"], timeout.Token);
        Assert.Equal(101, upgrade.StatusCode);
        Assert.Equal("v4.channel.k8s.io", upgrade.Protocol);
        await using (var session = upgrade.Session!)
        {
            var error = await session.OpenAsync("error", timeout.Token);
            var stdin = await session.OpenAsync("stdin", timeout.Token);
            var stdout = await session.OpenAsync("stdout", timeout.Token);
            var stderr = await session.OpenAsync("stderr", timeout.Token);
            // More than a SPDY window each way, through a real pipe into the container and back.
            var input = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 20_000).Select(i => $"line {i}\n")));
            var reading = stdout.ReadToEndAsync(timeout.Token);
            await stdin.WriteAsync(input, timeout.Token);
            await stdin.CloseWriteAsync(timeout.Token);
            Assert.Equal(input, await reading);
            Assert.Equal("err\n", Encoding.UTF8.GetString(await stderr.ReadToEndAsync(timeout.Token)));
            var statusJson = Encoding.UTF8.GetString(await error.ReadToEndAsync(timeout.Token));
            Output.WriteLine($"error stream: {statusJson}");
            using var status = JsonDocument.Parse(statusJson);
            Assert.Equal("Failure", status.RootElement.GetProperty("status").GetString());
            Assert.Equal("NonZeroExitCode", status.RootElement.GetProperty("reason").GetString());
            var cause = status.RootElement.GetProperty("details").GetProperty("causes")[0];
            Assert.Equal(("ExitCode", "7"), (cause.GetProperty("reason").GetString(), cause.GetProperty("message").GetString()));
        }

        // The URL was for one use.
        var again = await SpdyStreamingClient.ConnectAsync(response.Url, ["v4.channel.k8s.io"], timeout.Token);
        Assert.Equal(404, again.StatusCode);

        // Exit 0 is a Success status.
        var ok = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "true" }, Stdout = true });
        var okUpgrade = await SpdyStreamingClient.ConnectAsync(ok.Url, ["v4.channel.k8s.io"], timeout.Token);
        await using (var session = okUpgrade.Session!)
        {
            var error = await session.OpenAsync("error", timeout.Token);
            var stdout = await session.OpenAsync("stdout", timeout.Token);
            Assert.Empty(await stdout.ReadToEndAsync(timeout.Token));
            using var status = JsonDocument.Parse(await error.ReadToEndAsync(timeout.Token));
            Assert.Equal("Success", status.RootElement.GetProperty("status").GetString());
        }
    }

    [Fact]
    public async Task Exec_ClientThatGoesAway_KillsTheCommandAndItsChildren()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-gone");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(Bound);

        // A shell with a child: both must go when the client does.
        var response = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", "sleep 4242 & echo started; wait" }, Stdout = true });
        var upgrade = await SpdyStreamingClient.ConnectAsync(response.Url, ["v4.channel.k8s.io"], timeout.Token);
        var session = upgrade.Session!;
        await session.OpenAsync("error", timeout.Token);
        var stdout = await session.OpenAsync("stdout", timeout.Token);
        var first = new byte[8];
        Assert.Equal("started\n", Encoding.ASCII.GetString(first, 0, await stdout.ReadAsync(first, timeout.Token)));
        Assert.Contains("sleep 4242", await ExecOkAsync(id, "ps", "-o", "args"));

        // The client dies without a word: the connection just closes.
        await session.DisposeAsync();
        bool gone = await EventuallyAsync(async () => !(await ExecOkAsync(id, "ps", "-o", "args")).Contains("4242"), TimeSpan.FromSeconds(20));
        Assert.True(gone, $"the exec'd processes outlived their client:\n{await ExecOkAsync(id, "ps", "-o", "args")}");
    }

    [Fact]
    public async Task Exec_RefusesNoStdio_TtyWithStderr_AndContainersThatDoNotRun()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-refused");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        // Exec with a tty is served now (TtyStreamingTests); a tty with a separate stderr is not a thing.
        var tty = await ExpectErrorAsync(StatusCode.InvalidArgument, "Exec with tty and stderr",
            dl => Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "sh" }, Tty = true, Stdin = true, Stdout = true, Stderr = true }, deadline: dl));
        Assert.Contains("tty", tty.Status.Detail);
        await ExpectErrorAsync(StatusCode.InvalidArgument, "Exec with no stdio",
            dl => Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "true" } }, deadline: dl));
        await StopContainerAsync(id, 0);
        await ExpectErrorAsync(StatusCode.FailedPrecondition, "Exec in a stopped container",
            dl => Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "true" }, Stdout = true }, deadline: dl));
    }

    [Fact]
    public async Task StockCrictl_Exec_StreamsOutput_AndCarriesExitCode3()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-crictl");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);

        var hello = await CrictlAsync("exec", id, "sh", "-c", "echo hello; echo oops >&2");
        Assert.True(hello.ExitCode == 0, $"crictl exec failed: {hello.Stderr}");
        Assert.Equal("hello\n", hello.Stdout);
        Assert.Contains("oops", hello.Stderr);

        // crictl v1.26.1 turns the v4 status into "command terminated with non-zero exit code: ... exit code 3" and
        // exits 1 (logrus.Fatal): the code arrives, crictl does not pass it on as its own (newer crictl does).
        var three = await CrictlAsync("exec", id, "sh", "-c", "echo before; exit 3");
        Assert.Equal("before\n", three.Stdout);
        Assert.NotEqual(0, three.ExitCode);
        Assert.Contains("exit code 3", three.Stderr);
    }

    private async Task<HostCommand.Result> CrictlAsync(params string[] args)
    {
        var all = new List<string> { "--runtime-endpoint", $"unix://{Daemon.Socket}", "--image-endpoint", $"unix://{Daemon.Socket}", "--timeout", "60s" };
        all.AddRange(args);
        using var timeout = new CancellationTokenSource(Bound);
        var sw = Stopwatch.StartNew();
        var run = await HostCommand.RunAsync(StockCriTools.Crictl, all, cancellationToken: timeout.Token);
        Output.WriteLine($"$ crictl {string.Join(' ', args)}  (exit {run.ExitCode}, {sw.ElapsedMilliseconds} ms)\n{run.Stdout}{(run.Stderr.Length > 0 ? "stderr: " + run.Stderr : "")}");
        return run;
    }
}
