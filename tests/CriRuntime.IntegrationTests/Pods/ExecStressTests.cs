using System.Diagnostics;
using System.Text;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;
using static CriRuntime.IntegrationTests.Pods.StreamingTestHelpers;
using Ws = CriRuntime.TestSupport.WebSocketStreamingClient;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Exec under load through the real streaming server and runc: exit codes, 100 MiB through one exec with the
/// daemon's RSS watched, 50 execs at once, and a client killed mid-exec.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class ExecStressTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private const long HundredMiB = 100L * 1024 * 1024;
    private const long RssAllowance = 30L * 1024 * 1024;

    [Fact]
    public async Task Exec_ExitCodes_0_3_and_127_ArriveAsTheyWere()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-codes");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));

        foreach (var (script, code) in new[] { ("true", 0), ("exit 3", 3), ("no-such-command-here", 127) })
        {
            var outcome = await SpdyExecAsync(Runtime, new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", script }, Stdout = true, Stderr = true }, timeout.Token);
            Output.WriteLine($"sh -c '{script}': {outcome.StatusJson}");
            Assert.Equal(code, outcome.ExitCode);
        }
        // 127 from the shell names the command it could not find.
        var missing = await SpdyExecAsync(Runtime, new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", "no-such-command-here" }, Stderr = true }, timeout.Token);
        Assert.Contains("no-such-command-here", Encoding.UTF8.GetString(missing.Stderr));
    }

    [Fact]
    public async Task Exec_100MiB_OfOutput_IsStreamed_WithTheDaemonsRssFlat()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-100mib");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        int pid = Daemon.ProcessId;

        // Warm up both transports once, so buffers and code paths that exist once per process are in the baseline.
        // (The test image links no head applet: busybox runs it by name.)
        var warm = await SpdyExecAsync(Runtime, new ExecRequest { ContainerId = id, Cmd = { "busybox", "head", "-c", "1048576", "/dev/zero" }, Stdout = true }, timeout.Token, countStdoutOnly: true);
        Assert.Equal((0, 1L << 20), (warm.ExitCode, warm.StdoutBytes));
        await WebSocketCountAsync(id, 1 << 20, timeout.Token);

        foreach (var transport in new[] { "spdy", "websocket" })
        {
            long baseline = RssBytes(pid);
            long peak = baseline;
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    peak = Math.Max(peak, RssBytes(pid));
                    try { await Task.Delay(50, sampling.Token); } catch (OperationCanceledException) { }
                }
            });
            var sw = Stopwatch.StartNew();
            long received;
            if (transport == "spdy")
            {
                var spdy = await SpdyExecAsync(Runtime, new ExecRequest { ContainerId = id, Cmd = { "busybox", "head", "-c", HundredMiB.ToString(), "/dev/zero" }, Stdout = true },
                    timeout.Token, countStdoutOnly: true);
                Assert.Equal(0, spdy.ExitCode);
                received = spdy.StdoutBytes;
            }
            else received = await WebSocketCountAsync(id, HundredMiB, timeout.Token);
            sw.Stop();
            sampling.Cancel();
            await sampler;
            long after = RssBytes(pid);
            Output.WriteLine($"{transport}: {received} bytes in {sw.Elapsed.TotalSeconds:0.0} s ({received / 1048576.0 / sw.Elapsed.TotalSeconds:0} MiB/s); " +
                $"daemon RSS {baseline / 1048576.0:0.0} MiB before, peak {peak / 1048576.0:0.0} MiB (+{(peak - baseline) / 1048576.0:0.0}), {after / 1048576.0:0.0} MiB after");
            Assert.Equal(HundredMiB, received);
            Assert.True(peak - baseline < RssAllowance,
                $"{transport}: the daemon's RSS grew by {(peak - baseline) / 1048576.0:0.0} MiB while streaming 100 MiB (allowed {RssAllowance / 1048576} MiB): output is buffered, not streamed");
        }
    }

    /// <summary>Runs head -c <paramref name="bytes"/> over WebSocket v5 and returns how many stdout bytes arrived (with exit 0).</summary>
    private async Task<long> WebSocketCountAsync(string id, long bytes, CancellationToken cancellationToken)
    {
        var response = await Runtime.ExecAsync(new ExecRequest { ContainerId = id, Cmd = { "busybox", "head", "-c", bytes.ToString(), "/dev/zero" }, Stdout = true }, cancellationToken: cancellationToken);
        var upgrade = await Ws.ConnectAsync(response.Url, ["v5.channel.k8s.io"], cancellationToken);
        using var socket = upgrade.Socket ?? throw new InvalidOperationException($"WebSocket upgrade answered {upgrade.StatusCode}");
        var transcript = await socket.ReadToCloseAsync(cancellationToken, Ws.Stdout);
        Assert.Equal(0, ExitCodeOf(Encoding.UTF8.GetString(transcript.Of(Ws.Error))));
        return transcript.Bytes.GetValueOrDefault(Ws.Stdout);
    }

    [Fact]
    public async Task Exec_50AtOnce_AllGetTheirOwnOutputAndExitCode()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-50");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8));

        var sw = Stopwatch.StartNew();
        // Half over SPDY, half over WebSocket v5, all started together.
        var execs = Enumerable.Range(0, 50).Select(i => Task.Run(async () =>
        {
            var request = new ExecRequest { ContainerId = id, Cmd = { "sh", "-c", $"echo out-{i}; echo err-{i} >&2; exit {i % 7}" }, Stdout = true, Stderr = true };
            if (i % 2 == 0) return (i, await SpdyExecAsync(Runtime, request, timeout.Token));
            var response = await Runtime.ExecAsync(request, cancellationToken: timeout.Token);
            var upgrade = await Ws.ConnectAsync(response.Url, ["v5.channel.k8s.io"], timeout.Token);
            using var socket = upgrade.Socket ?? throw new InvalidOperationException($"exec {i}: WebSocket upgrade answered {upgrade.StatusCode}");
            var t = await socket.ReadToCloseAsync(timeout.Token);
            var status = Encoding.UTF8.GetString(t.Of(Ws.Error));
            return (i, new ExecOutcome(t.Of(Ws.Stdout), t.Of(Ws.Stderr), t.Of(Ws.Stdout).Length, ExitCodeOf(status), status));
        }, timeout.Token)).ToList();
        var results = await Task.WhenAll(execs);
        Output.WriteLine($"50 concurrent execs in {sw.Elapsed.TotalSeconds:0.0} s");
        foreach (var (i, outcome) in results)
        {
            Assert.Equal($"out-{i}\n", Encoding.UTF8.GetString(outcome.Stdout));
            Assert.Equal($"err-{i}\n", Encoding.UTF8.GetString(outcome.Stderr));
            Assert.Equal(i % 7, outcome.ExitCode);
        }
    }

    [Fact]
    public async Task StockCrictl_KilledMidExec_LeavesNoProcessOfItsCommandInTheContainersCgroup()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-killed");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        string procs = CgroupProcsFile(await ContainerPidAsync(id));
        var baseline = ProcessesIn(procs);
        Output.WriteLine($"{procs} before: {string.Join("; ", baseline)}");

        // A shell with two children, exec'd by stock crictl, which is then killed with SIGKILL: no goodbye on the wire.
        var start = new ProcessStartInfo(StockCriTools.Crictl)
        {
            ArgumentList = { "--runtime-endpoint", $"unix://{Daemon.Socket}", "--timeout", "60s", "exec", id, "sh", "-c", "sleep 1000 & sleep 1001 & echo started; wait" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var crictl = Process.Start(start)!;
        var errors = crictl.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        string? line = await crictl.StandardOutput.ReadLineAsync(timeout.Token);
        Assert.True(line == "started", $"crictl exec printed '{line}' instead of 'started'; stderr: {(crictl.HasExited ? await errors : "(running)")}");
        // "started" can come before the shell's second child has exec'd its sleep: wait until both run.
        List<string> during = [];
        bool running = await EventuallyAsync(() =>
        {
            during = ProcessesIn(procs);
            return Task.FromResult(during.Any(p => p.EndsWith("sleep 1000", StringComparison.Ordinal))
                && during.Any(p => p.EndsWith("sleep 1001", StringComparison.Ordinal)));
        }, TimeSpan.FromSeconds(10));
        Output.WriteLine($"during: {string.Join("; ", during)}");
        Assert.True(running, $"the exec's two sleeps never both ran: {string.Join("; ", during)}");

        crictl.Kill();
        await crictl.WaitForExitAsync(timeout.Token);
        List<string> now = [];
        bool gone = await EventuallyAsync(() =>
        {
            now = ProcessesIn(procs);
            return Task.FromResult(!now.Any(p => p.Contains("sleep 100", StringComparison.Ordinal) || p.Contains("started", StringComparison.Ordinal)));
        }, TimeSpan.FromSeconds(30));
        Assert.True(gone, $"processes of the exec outlived its killed client: {string.Join("; ", now)}");
        Assert.Equal(baseline.Count, now.Count);
        // The container itself is untouched.
        Assert.Equal("alive\n", await ExecOkAsync(id, "echo", "alive"));
    }
}
