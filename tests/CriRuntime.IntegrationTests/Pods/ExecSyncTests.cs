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
