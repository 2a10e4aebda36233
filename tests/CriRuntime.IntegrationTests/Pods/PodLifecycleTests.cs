using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>The pod and container lifecycle as the kubelet drives it, and the states, lists and errors it sees.</summary>
[Collection(RegistryCollection.Name)]
public sealed class PodLifecycleTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    /// <summary>
    /// critest names pods with long uuids and gives them no hostname. As under containerd, a pod without one gets the
    /// node's hostname (UTS namespace, /etc/hostname, $HOSTNAME), however long its name; it keeps that
    /// hostname across a daemon restart; an explicit hostname longer than the kernel's 64 is InvalidArgument.
    /// </summary>
    [Fact]
    public async Task PodWithoutHostname_GetsTheNodesHostname_AndATooLongHostnameIsInvalidArgument()
    {
        var first = await StartPodDaemonAsync();
        string nodeHostname = File.ReadAllText("/proc/sys/kernel/hostname").Trim();
        string longName = "hostless-" + new string('x', 91);
        Assert.Equal(100, longName.Length);
        var pod = await RunPodAsync(longName, c => c.Hostname = "");
        string id = await CreateAndStartAsync(pod, "app", ["sleep", "3600"]);

        Assert.Equal(nodeHostname + "\n", await ExecOkAsync(id, "hostname"));
        Assert.Equal(nodeHostname + "\n", await ExecOkAsync(id, "cat", "/etc/hostname"));
        Assert.Equal(nodeHostname + "\n", await ExecOkAsync(id, "sh", "-c", "echo $HOSTNAME"));

        // The hostname is the pod's from RunPodSandbox on: a restarted daemon gives new containers the same one.
        await first.KillAsync();
        await RestartPodDaemonAsync(first);
        string second = await CreateAndStartAsync(pod, "after-restart", ["sleep", "3600"]);
        Assert.Equal(nodeHostname + "\n", await ExecOkAsync(second, "hostname"));
        Assert.Equal(nodeHostname + "\n", await ExecOkAsync(second, "sh", "-c", "echo $HOSTNAME"));

        string tooLong = new string('h', 70);
        var config = NewPodConfig("hostname-too-long");
        config.Hostname = tooLong;
        var error = await ExpectErrorAsync(StatusCode.InvalidArgument, "RunPodSandbox with a 70-character hostname",
            dl => Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }, deadline: dl));
        Assert.Contains("hostname", error.Status.Detail);
        Assert.Contains("64", error.Status.Detail);
    }

    [Fact]
    public async Task FullLifecycle_StatusListsAndFiltersFollowEveryStep()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("lifecycle", c =>
        {
            c.Labels["app"] = "lifecycle";
            c.Labels["tier"] = "web";
            c.Annotations["example.com/note"] = "returned exactly as given";
            c.Annotations["example.com/empty"] = "";
        });
        // A second pod, whose container stays CREATED, so every filter has something to leave out.
        var other = await RunPodAsync("lifecycle-other", c => c.Labels["app"] = "other");

        // ---- the sandbox
        var status = (await PodStatusAsync(pod.Id)).Status;
        Assert.Equal(pod.Id, status.Id);
        Assert.Equal(pod.Config.Metadata, status.Metadata);
        Assert.Equal(PodSandboxState.SandboxReady, status.State);
        AssertDuringTest(status.CreatedAt, "PodSandboxStatus.created_at");
        Assert.Equal(pod.Config.Labels, status.Labels);
        Assert.Equal(pod.Config.Annotations, status.Annotations);
        Assert.Equal(pod.Config.Linux.SecurityContext.NamespaceOptions, status.Linux?.Namespaces?.Options);
        var ip = await PodIpAsync(pod.Id);
        var otherIp = await PodIpAsync(other.Id);
        Assert.NotEqual(Network.Gateway, ip);
        Assert.NotEqual(ip, otherIp);

        // ---- a container: CREATED
        string main = await CreateContainerAsync(pod.Id, pod.Config, "main", BusyboxImage,
            Sh("echo hello; echo err >&2; sleep 3600"), configure: c =>
            {
                c.Labels["role"] = "main";
                c.Annotations["example.com/container-note"] = "also returned as given";
            });
        string idle = await CreateContainerAsync(other.Id, other.Config, "idle", BusyboxImage, ["sleep", "3600"]);

        var created = (await ContainerStatusAsync(main)).Status;
        Assert.Equal(main, created.Id);
        Assert.Equal(ContainerState.ContainerCreated, created.State);
        Assert.Equal("main", created.Metadata.Name);
        Assert.Equal(0u, created.Metadata.Attempt);
        AssertDuringTest(created.CreatedAt, "ContainerStatus.created_at");
        Assert.Equal(0, created.StartedAt);
        Assert.Equal(0, created.FinishedAt);
        Assert.Equal(BusyboxImage, created.Image.Image);
        Assert.Equal(BusyboxImageRef, created.ImageId);
        Assert.False(string.IsNullOrEmpty(created.ImageRef), "ContainerStatus.image_ref is empty");
        Assert.Equal(new Dictionary<string, string> { ["io.kubernetes.container.name"] = "main", ["role"] = "main" }, created.Labels.ToDictionary());
        Assert.Equal(new Dictionary<string, string> { ["example.com/container-note"] = "also returned as given" }, created.Annotations.ToDictionary());
        Assert.Equal(Path.Combine(pod.LogDirectory, "main", "0.log"), created.LogPath);

        // ---- RUNNING once StartContainer returns
        await StartContainerAsync(main);
        var running = (await ContainerStatusAsync(main)).Status;
        Assert.True(running.State == ContainerState.ContainerRunning, $"state right after StartContainer is {running.State}: {running}");
        Assert.Equal(created.CreatedAt, running.CreatedAt);
        Assert.True(running.StartedAt >= running.CreatedAt, $"started_at {running.StartedAt} < created_at {running.CreatedAt}");
        AssertDuringTest(running.StartedAt, "ContainerStatus.started_at");
        Assert.Equal(0, running.FinishedAt);

        // ---- lists and every filter, unary and streaming alike
        var all = await ListContainersAsync();
        AssertIds([main, idle], all.Select(c => c.Id), "ListContainers()");
        var item = all.Single(c => c.Id == main);
        Assert.Equal(pod.Id, item.PodSandboxId);
        Assert.Equal(created.Metadata, item.Metadata);
        Assert.Equal(BusyboxImage, item.Image.Image);
        Assert.Equal(BusyboxImageRef, item.ImageId);
        Assert.Equal(ContainerState.ContainerRunning, item.State);
        Assert.Equal(created.CreatedAt, item.CreatedAt);
        Assert.Equal(created.Labels, item.Labels);
        Assert.Equal(created.Annotations, item.Annotations);
        Assert.Equal(ContainerState.ContainerCreated, all.Single(c => c.Id == idle).State);

        await ExpectContainers([main], new ContainerFilter { Id = main });
        await ExpectContainers([], new ContainerFilter { Id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" });
        await ExpectContainers([main], State(ContainerState.ContainerRunning));
        await ExpectContainers([idle], State(ContainerState.ContainerCreated));
        await ExpectContainers([], State(ContainerState.ContainerExited));
        await ExpectContainers([main], new ContainerFilter { PodSandboxId = pod.Id });
        await ExpectContainers([idle], new ContainerFilter { PodSandboxId = other.Id });
        await ExpectContainers([main], new ContainerFilter { LabelSelector = { ["role"] = "main" } });
        await ExpectContainers([main], new ContainerFilter { LabelSelector = { ["role"] = "main", ["io.kubernetes.container.name"] = "main" } });
        await ExpectContainers([], new ContainerFilter { LabelSelector = { ["role"] = "main", ["io.kubernetes.container.name"] = "idle" } });
        await ExpectContainers([], new ContainerFilter { PodSandboxId = pod.Id, State = new ContainerStateValue { State = ContainerState.ContainerCreated } });
        await ExpectContainers([], new ContainerFilter { Id = main, PodSandboxId = other.Id });

        var pods = await ListPodsAsync();
        AssertIds([pod.Id, other.Id], pods.Select(p => p.Id), "ListPodSandbox()");
        var podItem = pods.Single(p => p.Id == pod.Id);
        Assert.Equal(pod.Config.Metadata, podItem.Metadata);
        Assert.Equal(PodSandboxState.SandboxReady, podItem.State);
        Assert.Equal(status.CreatedAt, podItem.CreatedAt);
        Assert.Equal(pod.Config.Labels, podItem.Labels);
        Assert.Equal(pod.Config.Annotations, podItem.Annotations);

        await ExpectPods([pod.Id], new PodSandboxFilter { Id = pod.Id });
        await ExpectPods([], new PodSandboxFilter { Id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" });
        await ExpectPods([pod.Id, other.Id], PodState(PodSandboxState.SandboxReady));
        await ExpectPods([], PodState(PodSandboxState.SandboxNotready));
        await ExpectPods([pod.Id], new PodSandboxFilter { LabelSelector = { ["app"] = "lifecycle" } });
        await ExpectPods([pod.Id], new PodSandboxFilter { LabelSelector = { ["app"] = "lifecycle", ["tier"] = "web" } });
        await ExpectPods([], new PodSandboxFilter { LabelSelector = { ["app"] = "lifecycle", ["tier"] = "db" } });
        await ExpectPods([other.Id], new PodSandboxFilter { Id = other.Id, State = new PodSandboxStateValue { State = PodSandboxState.SandboxReady } });

        // ---- StopContainer: sh as PID 1 has no TERM handler, so the grace period ends in SIGKILL (or TERM kills it)
        await StopContainerAsync(main, 2);
        var exited = (await ContainerStatusAsync(main)).Status;
        Assert.True(exited.State == ContainerState.ContainerExited, $"state right after StopContainer is {exited.State}: {exited}");
        Assert.True(exited.ExitCode is 137 or 143, $"exit code {exited.ExitCode}, expected 137 (SIGKILL) or 143 (SIGTERM)");
        Assert.Equal("Error", exited.Reason);
        Assert.Equal(running.StartedAt, exited.StartedAt);
        Assert.True(exited.FinishedAt >= exited.StartedAt, $"finished_at {exited.FinishedAt} < started_at {exited.StartedAt}");
        AssertDuringTest(exited.FinishedAt, "ContainerStatus.finished_at");
        await StopContainerAsync(main, 2); // idempotent
        await ExpectContainers([main], State(ContainerState.ContainerExited));
        await ExpectContainers([], State(ContainerState.ContainerRunning));

        // ---- RemoveContainer
        await RemoveContainerAsync(main);
        await ExpectErrorAsync(StatusCode.NotFound, $"ContainerStatus of removed container {main}",
            dl => Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = main }, deadline: dl));
        await ExpectContainers([idle], null);
        await RemoveContainerAsync(main); // idempotent

        // ---- StopPodSandbox -> NOTREADY
        await StopPodAsync(pod.Id);
        var stopped = (await PodStatusAsync(pod.Id)).Status;
        Assert.Equal(PodSandboxState.SandboxNotready, stopped.State);
        Assert.Equal(status.CreatedAt, stopped.CreatedAt);
        Assert.Equal(pod.Config.Metadata, stopped.Metadata);
        await ExpectPods([pod.Id], PodState(PodSandboxState.SandboxNotready));
        await ExpectPods([other.Id], PodState(PodSandboxState.SandboxReady));
        await StopPodAsync(pod.Id); // idempotent

        // ---- RemovePodSandbox -> gone
        await RemovePodAsync(pod.Id);
        await ExpectErrorAsync(StatusCode.NotFound, $"PodSandboxStatus of removed pod {pod.Id}",
            dl => Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = pod.Id }, deadline: dl));
        await ExpectPods([other.Id], null);
        await RemovePodAsync(pod.Id); // idempotent

        // Removing a sandbox force-removes the containers still in it, even one never started.
        await StopPodAsync(other.Id);
        await RemovePodAsync(other.Id);
        await ExpectErrorAsync(StatusCode.NotFound, $"ContainerStatus of {idle} after its pod was removed",
            dl => Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = idle }, deadline: dl));
        await ExpectPods([], null);
        await ExpectContainers([], null);

        await AssertNothingLeftAsync([pod, other], [main, idle], [ip.ToString(), otherIp.ToString()]);
    }

    [Fact]
    public async Task ExitCodesAndReasons_AreReportedAsTheKubeletExpects()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("exits");
        string failing = await CreateAndStartAsync(pod, "fails", Sh("exit 3"));
        string succeeding = await CreateAndStartAsync(pod, "succeeds", ["true"]);

        var failed = await WaitForExitAsync(failing);
        Assert.Equal(3, failed.ExitCode);
        Assert.Equal("Error", failed.Reason);
        AssertTimesOrdered(failed);

        var completed = await WaitForExitAsync(succeeding);
        Assert.Equal(0, completed.ExitCode);
        Assert.Equal("Completed", completed.Reason);
        AssertTimesOrdered(completed);

        await ExpectContainers([failing, succeeding], State(ContainerState.ContainerExited));

        void AssertTimesOrdered(ContainerStatus s)
        {
            Assert.True(s.StartedAt > 0, $"{s.Metadata.Name}: started_at is 0 after it ran: {s}");
            Assert.True(s.StartedAt >= s.CreatedAt, $"{s.Metadata.Name}: started_at {s.StartedAt} < created_at {s.CreatedAt}");
            Assert.True(s.FinishedAt >= s.StartedAt, $"{s.Metadata.Name}: finished_at {s.FinishedAt} < started_at {s.StartedAt}");
            AssertDuringTest(s.FinishedAt, $"{s.Metadata.Name}: finished_at");
        }
    }

    [Fact]
    public async Task SameMetadataTwice_IsAlreadyExists_UntilRemoved_AndStopRemoveAreIdempotent()
    {
        await StartPodDaemonAsync();
        var config = NewPodConfig("duplicate");
        var first = await RunPodAsync(config);

        await ExpectErrorAsync(StatusCode.AlreadyExists, "RunPodSandbox with the name/namespace/uid/attempt of a running pod",
            dl => Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }, deadline: dl));
        AssertIds([first.Id], (await ListPodsAsync()).Select(p => p.Id), "ListPodSandbox after the refused duplicate");

        // The kubelet's next attempt of the same pod is a different sandbox.
        var nextAttemptConfig = config.Clone();
        nextAttemptConfig.Metadata.Attempt = 1;
        nextAttemptConfig.LogDirectory = TempDir("criruntime-podlogs-");
        var nextAttempt = await RunPodAsync(nextAttemptConfig);
        Assert.NotEqual(first.Id, nextAttempt.Id);

        await StopPodAsync(first.Id);
        await StopPodAsync(first.Id);
        // Stopped but not removed: the name is still taken.
        await ExpectErrorAsync(StatusCode.AlreadyExists, "RunPodSandbox with the metadata of a stopped, not removed pod",
            dl => Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }, deadline: dl));
        await RemovePodAsync(first.Id);
        // Every resource of the removed pod is reclaimed, so stopping it again is not an error (CRI comments).
        await StopPodAsync(first.Id);

        var again = await RunPodAsync(config);
        Assert.NotEqual(first.Id, again.Id);
        Assert.Equal(PodSandboxState.SandboxReady, (await PodStatusAsync(again.Id)).Status.State);

        const string unknown = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        await RemovePodAsync(unknown);
        await RemoveContainerAsync(unknown);
        await ExpectErrorAsync(StatusCode.NotFound, "ContainerStatus of an unknown id",
            dl => Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = unknown }, deadline: dl));
        await ExpectErrorAsync(StatusCode.NotFound, "PodSandboxStatus of an unknown id",
            dl => Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = unknown }, deadline: dl));

        AssertIds([nextAttempt.Id, again.Id], (await ListPodsAsync()).Select(p => p.Id), "ListPodSandbox at the end");
    }

    private static ContainerFilter State(ContainerState state) => new() { State = new ContainerStateValue { State = state } };

    private static PodSandboxFilter PodState(PodSandboxState state) => new() { State = new PodSandboxStateValue { State = state } };

    private async Task ExpectContainers(string[] expected, ContainerFilter? filter) =>
        AssertIds(expected, (await ListContainersAsync(filter)).Select(c => c.Id), $"ListContainers({filter})");

    private async Task ExpectPods(string[] expected, PodSandboxFilter? filter) =>
        AssertIds(expected, (await ListPodsAsync(filter)).Select(p => p.Id), $"ListPodSandbox({filter})");
}
