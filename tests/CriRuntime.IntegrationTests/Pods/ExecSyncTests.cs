using System.Diagnostics;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>ExecSync: output and exit code, the timeout, and containers that cannot run a command.</summary>
[Collection(RegistryCollection.Name)]
public sealed class ExecSyncTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task ExecSync_ReturnsStdoutStderrAndExitCode()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);

        // A non-zero exit is a result, not an RPC error.
        var r = await ExecSyncAsync(id, Sh("echo out; echo err >&2; exit 7"), timeoutSeconds: 30);
        Assert.Equal("out\n", r.Stdout.ToStringUtf8());
        Assert.Equal("err\n", r.Stderr.ToStringUtf8());
        Assert.Equal(7, r.ExitCode);

        // It runs inside the container: its rootfs, its hostname.
        Assert.Equal("exec\n", await ExecOkAsync(id, "hostname"));
        Assert.Contains("app:x:1000:1000", await ExecOkAsync(id, "cat", "/etc/passwd"));
    }

    [Fact]
    public async Task ExecSync_Timeout_IsDeadlineExceededAndKillsTheCommand()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-timeout");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);

        // containerd answers a timed-out ExecSync with DeadlineExceeded ("timeout 1s exceeded: context deadline
        // exceeded"), which the kubelet turns into a probe timeout.
        var sw = Stopwatch.StartNew();
        var error = await ExpectErrorAsync(StatusCode.DeadlineExceeded, "ExecSync(sleep 30, timeout 1)",
            dl => Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { "sleep", "30" }, Timeout = 1 }, deadline: dl));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"ExecSync with timeout 1 returned after {sw.Elapsed}");
        Assert.Contains("timeout", error.Status.Detail, StringComparison.OrdinalIgnoreCase);

        // The timed-out command was killed, not left running in the container.
        string ps = "";
        bool gone = await EventuallyAsync(async () =>
        {
            ps = await ExecOkAsync(id, "ps");
            return !ps.Contains("sleep 30", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(5));
        Assert.True(gone, $"the timed-out 'sleep 30' still runs in the container:\n{ps}");
        Assert.Equal(ContainerState.ContainerRunning, (await ContainerStatusAsync(id)).Status.State);
    }

    /// <summary>
    /// critest v1.26.1 "runtime should support execSync with timeout", step for step: the container runs
    /// `sh -c top` (busybox top as PID 1, which never reaps), ExecSync `sleep 4321` with a 1 s timeout must fail,
    /// and the very next ExecSync, `sh -c "pgrep sleep || true"`, must print nothing: no sleep, not even a zombie,
    /// at the moment the timed-out call returns (critest does not wait).
    /// </summary>
    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task ExecSync_Timeout_AsCritestChecksIt_LeavesNoSleepBehind(string handler)
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync($"exec-timeout-{handler}", runtimeHandler: handler);
        string id = await CreateAndStartAsync(pod, "target", Sh("top"));
        await WaitForStateAsync(id, ContainerState.ContainerRunning);

        var error = await ExpectErrorAsync(StatusCode.DeadlineExceeded, "ExecSync(sleep 4321, timeout 1)",
            dl => Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { "sleep", "4321" }, Timeout = 1 }, deadline: dl));
        Assert.Contains("timeout", error.Status.Detail, StringComparison.OrdinalIgnoreCase);

        // The test image's busybox has no pgrep applet; this is what pgrep does: match /proc/PID/comm (zombies too).
        var check = await ExecSyncAsync(id, Sh("for d in /proc/[0-9]*; do read -r c < $d/comm 2>/dev/null && [ \"$c\" = sleep ] && echo ${d#/proc/}; done; true"), 30);
        string stdout = check.Stdout.ToStringUtf8().Trim();
        if (stdout.Length > 0)
        {
            var ps = await ExecSyncAsync(id, ["ps", "-o", "pid,ppid,stat,comm"], 30);
            throw Failure($"sleep still in the container ({handler}) right after the timed-out ExecSync: pids [{stdout}]\n{ps.Stdout.ToStringUtf8()}");
        }
        Assert.Equal("", check.Stderr.ToStringUtf8());
        Assert.Equal(0, check.ExitCode);
        Assert.Equal(ContainerState.ContainerRunning, (await ContainerStatusAsync(id)).Status.State);
    }

    /// <summary>
    /// A timed-out probe script: the shell and the sleep it started are both killed. In a pod sharing one PID
    /// namespace its init (catatonit) reaps the orphaned child, so nothing is left, not even a zombie. (Under an init
    /// that never reaps, such as `top`, that child stays a zombie, as any orphan in that container would.)
    /// </summary>
    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task ExecSync_Timeout_KillsTheShellAndWhatItStarted(string handler)
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync($"exec-tree-{handler}", c => c.Linux.SecurityContext.NamespaceOptions.Pid = NamespaceMode.Pod, handler);
        string id = await CreateAndStartAsync(pod, "target", Sh("top"), c => c.Linux.SecurityContext.NamespaceOptions.Pid = NamespaceMode.Pod);
        await WaitForStateAsync(id, ContainerState.ContainerRunning);

        await ExpectErrorAsync(StatusCode.DeadlineExceeded, "ExecSync(sh -c 'sleep 4321; echo done', timeout 1)",
            dl => Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { Sh("sleep 4321; echo done > /tmp/done") }, Timeout = 1 }, deadline: dl));

        var ps = (await ExecSyncAsync(id, ["ps", "-o", "pid,ppid,stat,args"], 30)).Stdout.ToStringUtf8();
        Assert.False(ps.Contains("sleep", StringComparison.Ordinal) || ps.Contains("sh -c sleep", StringComparison.Ordinal),
            $"the timed-out script or its sleep is still in the pod ({handler}):\n{ps}");
        var done = await ExecSyncAsync(id, ["test", "-e", "/tmp/done"], 30);
        Assert.True(done.ExitCode != 0, "the killed script went on after its sleep");
    }

    [Fact]
    public async Task ExecSync_InStoppedContainerFails_InUnknownContainerIsNotFound()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exec-stopped");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        await StopContainerAsync(id, 0);

        // containerd: Unknown, "failed to exec in container: container is in CONTAINER_EXITED state";
        // FailedPrecondition is the gRPC code for exactly this. Either way the message must say why.
        RpcException error;
        try
        {
            var r = await Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { "true" }, Timeout = 10 }, deadline: Deadline());
            throw Failure($"ExecSync in an exited container succeeded with exit code {r.ExitCode}");
        }
        catch (RpcException e)
        {
            error = e;
        }
        Assert.True(error.StatusCode is StatusCode.FailedPrecondition or StatusCode.Unknown,
            $"ExecSync in an exited container: {error.StatusCode}: {error.Status.Detail}");
        Assert.True(error.Status.Detail.Contains("exited", StringComparison.OrdinalIgnoreCase) || error.Status.Detail.Contains("not running", StringComparison.OrdinalIgnoreCase),
            $"the error does not say the container is not running: {error.Status.Detail}");

        await ExpectErrorAsync(StatusCode.NotFound, "ExecSync in an unknown container",
            dl => Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = "0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de0badc0de", Cmd = { "true" } }, deadline: dl));
    }
}
