using System.Net;
using System.Net.Sockets;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// The daemon is killed (SIGKILL) with pods running and started again: containers keep running under
/// conmon, what happened meanwhile is picked up, and everything stays manageable.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class DaemonRestartTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task AfterSigkillAndRestart_RunningStaysRunning_ExitsMeanwhileAreRecorded_AndAllCanBeRemoved()
    {
        var first = await StartPodDaemonAsync();
        var pod = await RunPodAsync("restart", c => c.Labels["app"] = "restart");
        string server = await CreateAndStartAsync(pod, "server",
            Sh("echo survived > /tmp/index.html; exec /bin/busybox httpd -f -p 8080 -h /tmp"));
        // Exits with 5 once the test creates /tmp/go in its rootfs: after the daemon is dead.
        string quitter = await CreateAndStartAsync(pod, "quitter", Sh("while ! test -e /tmp/go; do sleep 0.1; done; exit 5"));
        string waiting = await CreateContainerAsync(pod.Id, pod.Config, "waiting", BusyboxImage, ["sleep", "3600"]);
        var ip = await PodIpAsync(pod.Id);
        int serverPid = await ContainerPidAsync(server);
        int quitterPid = await ContainerPidAsync(quitter);
        var podBefore = (await PodStatusAsync(pod.Id)).Status;
        var serverBefore = (await ContainerStatusAsync(server)).Status;
        await AssertServesAsync(ip);

        await first.KillAsync();
        File.WriteAllText($"/proc/{quitterPid}/root/tmp/go", "");
        Assert.True(await EventuallyAsync(() => !HostState.ProcessExists(quitterPid), StateTimeout),
            $"'quitter' (pid {quitterPid}) did not exit while the daemon was down: {HostState.TryRead(quitterPid)}");
        Assert.True(HostState.ProcessExists(serverPid), "'server' died with the daemon: containers must outlive it (conmon keeps them)");

        await RestartPodDaemonAsync(first);

        var podAfter = (await PodStatusAsync(pod.Id)).Status;
        Assert.Equal(PodSandboxState.SandboxReady, podAfter.State);
        Assert.Equal(podBefore.CreatedAt, podAfter.CreatedAt);
        Assert.Equal(ip.ToString(), podAfter.Network?.Ip);
        Assert.Equal(pod.Config.Labels, podAfter.Labels);

        var serverAfter = (await ContainerStatusAsync(server)).Status;
        Assert.Equal(ContainerState.ContainerRunning, serverAfter.State);
        Assert.Equal(serverBefore.StartedAt, serverAfter.StartedAt);
        Assert.Equal(serverPid, await ContainerPidAsync(server));
        await AssertServesAsync(ip);

        var quitterAfter = (await ContainerStatusAsync(quitter)).Status;
        Assert.True(quitterAfter.State == ContainerState.ContainerExited, $"'quitter' exited while the daemon was down, but its status is {quitterAfter}");
        Assert.Equal(5, quitterAfter.ExitCode);
        Assert.Equal("Error", quitterAfter.Reason);
        Assert.True(quitterAfter.FinishedAt >= quitterAfter.StartedAt, $"finished_at {quitterAfter.FinishedAt} < started_at {quitterAfter.StartedAt}");
        AssertDuringTest(quitterAfter.FinishedAt, "finished_at of the container that exited while the daemon was down");

        Assert.Equal(ContainerState.ContainerCreated, (await ContainerStatusAsync(waiting)).Status.State);

        AssertIds([pod.Id], (await ListPodsAsync(new PodSandboxFilter { State = new PodSandboxStateValue { State = PodSandboxState.SandboxReady } })).Select(p => p.Id), "ready pods after restart");
        AssertIds([server, quitter, waiting], (await ListContainersAsync()).Select(c => c.Id), "containers after restart");
        AssertIds([server], (await ListContainersAsync(State(ContainerState.ContainerRunning))).Select(c => c.Id), "running containers after restart");
        AssertIds([quitter], (await ListContainersAsync(State(ContainerState.ContainerExited))).Select(c => c.Id), "exited containers after restart");
        AssertIds([waiting], (await ListContainersAsync(State(ContainerState.ContainerCreated))).Select(c => c.Id), "created containers after restart");

        Assert.Equal("survived\n", await ExecOkAsync(server, "cat", "/tmp/index.html"));

        // Created before the crash, started after it.
        await StartContainerAsync(waiting);
        Assert.Equal(ContainerState.ContainerRunning, (await ContainerStatusAsync(waiting)).Status.State);

        await StopContainerAsync(server, 2);
        Assert.Equal(ContainerState.ContainerExited, (await ContainerStatusAsync(server)).Status.State);
        await RemoveContainerAsync(server);
        await RemoveContainerAsync(quitter);
        await StopPodAsync(pod.Id);
        Assert.Equal(ContainerState.ContainerExited, (await ContainerStatusAsync(waiting)).Status.State);
        await RemovePodAsync(pod.Id);
        AssertIds([], (await ListPodsAsync()).Select(p => p.Id), "pods after removal");
        await AssertNothingLeftAsync([pod], [server, quitter, waiting], [ip.ToString()]);
    }

    private static ContainerFilter State(ContainerState state) => new() { State = new ContainerStateValue { State = state } };

    private async Task AssertServesAsync(IPAddress ip)
    {
        string last = "";
        bool served = await EventuallyAsync(async () =>
        {
            try
            {
                using var tcp = new TcpClient();
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await tcp.ConnectAsync(ip, 8080, cts.Token);
                await using var stream = tcp.GetStream();
                await stream.WriteAsync("GET /index.html HTTP/1.0\r\n\r\n"u8.ToArray(), cts.Token);
                using var reader = new StreamReader(stream);
                last = await reader.ReadToEndAsync(cts.Token);
                return last.StartsWith("HTTP/1.", StringComparison.Ordinal) && last.Contains(" 200 ", StringComparison.Ordinal) && last.EndsWith("survived\n", StringComparison.Ordinal);
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
            {
                last = e.Message;
                return false;
            }
        }, TimeSpan.FromSeconds(20));
        Assert.True(served, $"the pod's server on {ip}:8080 does not answer: {last}");
    }
}
