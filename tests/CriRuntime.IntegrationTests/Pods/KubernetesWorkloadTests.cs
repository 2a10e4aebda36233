using System.Text.Json;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Issue #10 through the project's gRPC client with real runc containers: hostIPC pods see the node's /dev/shm, a debug
/// container joins its target's PID namespace, pods with their own network get the unprivileged port and ICMP sysctls,
/// ContainerConfig.stop_signal is the signal StopContainer sends and ContainerStatus reports it and the process's user,
/// kubelet-style zero hugepage limits start, and StartContainer in a pod that is not ready is FAILED_PRECONDITION.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class KubernetesWorkloadTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task HostIpc_pod_sees_and_shares_the_nodes_dev_shm()
    {
        await StartPodDaemonAsync();
        string name = $"criruntime-test-{Guid.NewGuid():N}";
        string nodeFile = Path.Combine("/dev/shm", name);
        string fromContainer = nodeFile + "-from-container";
        File.WriteAllText(nodeFile, "written by the node\n");
        try
        {
            var hostIpc = await RunPodAsync("hostipc", c => c.Linux.SecurityContext.NamespaceOptions.Ipc = NamespaceMode.Node);
            string c = await CreateAndStartAsync(hostIpc, "shm", ["sleep", "3600"]);
            Assert.Equal("written by the node\n", await ExecOkAsync(c, "cat", nodeFile));
            await ExecOkAsync(c, "sh", "-c", $"echo written by the container > {fromContainer}");
            Assert.Equal("written by the container\n", File.ReadAllText(fromContainer));
            // The node's IPC namespace: the container's is the daemon's own.
            int pid = await ContainerPidAsync(c);
            Assert.Equal(new FileInfo("/proc/self/ns/ipc").LinkTarget, new FileInfo($"/proc/{pid}/ns/ipc").LinkTarget);

            // The contrast: a pod with its own IPC namespace keeps its own /dev/shm.
            var ownIpc = await RunPodAsync("ownipc");
            string other = await CreateAndStartAsync(ownIpc, "shm", ["sleep", "3600"]);
            var r = await ExecSyncAsync(other, ["cat", nodeFile], 30);
            Assert.True(r.ExitCode != 0, $"a pod with its own IPC namespace sees the node's /dev/shm: {r.Stdout.ToStringUtf8()}");
        }
        finally
        {
            File.Delete(nodeFile);
            File.Delete(fromContainer);
        }
    }

    [Fact]
    public async Task A_debug_container_with_pid_target_sees_its_targets_processes()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("debugtarget");
        string target = await CreateAndStartAsync(pod, "app", ["sleep", "31341"]);
        string debug = await CreateAndStartAsync(pod, "debugger", ["sleep", "3600"], c =>
        {
            c.Linux.SecurityContext.NamespaceOptions.Pid = NamespaceMode.Target;
            c.Linux.SecurityContext.NamespaceOptions.TargetId = target;
        });

        // The target's process is PID 1 of the namespace the debug container joined.
        Assert.Equal("sleep\n", await ExecOkAsync(debug, "cat", "/proc/1/comm"));
        string ps = await ExecOkAsync(debug, "ps");
        Assert.True(ps.Contains("sleep 31341", StringComparison.Ordinal), $"the debug container does not see its target's process:\n{ps}");
        Assert.Equal(new FileInfo($"/proc/{await ContainerPidAsync(target)}/ns/pid").LinkTarget,
            new FileInfo($"/proc/{await ContainerPidAsync(debug)}/ns/pid").LinkTarget);

        // Unknown target: NOT_FOUND naming it; a target that is not running: FAILED_PRECONDITION.
        var missing = await CreateTargetingAsync(pod, "missing", StatusCode.NotFound, "0123456789abcdef-no-such-container");
        Assert.Contains("0123456789abcdef-no-such-container", missing.Status.Detail);
        string created = await CreateContainerAsync(pod.Id, pod.Config, "notstarted", BusyboxImage, ["sleep", "3600"]);
        var notRunning = await CreateTargetingAsync(pod, "late", StatusCode.FailedPrecondition, created);
        Assert.Contains("not RUNNING", notRunning.Status.Detail);

        // A container of another pod is not a target.
        var otherPod = await RunPodAsync("othertarget");
        var foreign = await CreateTargetingAsync(otherPod, "foreign", StatusCode.InvalidArgument, target);
        Assert.Contains($"belongs to pod sandbox {pod.Id}", foreign.Status.Detail);
    }

    private Task<RpcException> CreateTargetingAsync(TestPod pod, string name, StatusCode expected, string targetId)
    {
        var config = NewContainerConfig(pod.Config, name, BusyboxImage, ["sleep", "3600"]);
        config.Linux.SecurityContext.NamespaceOptions.Pid = NamespaceMode.Target;
        config.Linux.SecurityContext.NamespaceOptions.TargetId = targetId;
        return ExpectErrorAsync(expected, $"CreateContainer({name} targeting {targetId})",
            dl => Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod.Id, Config = config, SandboxConfig = pod.Config }, deadline: dl));
    }

    private async Task<(string Ports, string Ping)> ReadNetSysctlsAsync(TestPod pod, string name)
    {
        string c = await CreateAndStartAsync(pod, name, ["sleep", "3600"]);
        return ((await ExecOkAsync(c, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")).Trim(),
            (await ExecOkAsync(c, "cat", "/proc/sys/net/ipv4/ping_group_range")).Trim());
    }

    [Fact]
    public async Task Pods_with_their_own_network_get_unprivileged_ports_and_icmp_and_their_own_sysctls_override_them()
    {
        await StartPodDaemonAsync();
        var plain = await RunPodAsync("sysctl-defaults");
        Assert.Equal(("0", "0\t2147483647"), await ReadNetSysctlsAsync(plain, "read"));

        var overriding = await RunPodAsync("sysctl-override", c =>
        {
            c.Linux.Sysctls["net.ipv4.ip_unprivileged_port_start"] = "80";
            c.Linux.Sysctls["net/ipv4/ping_group_range"] = "100 200";
        });
        Assert.Equal(("80", "100\t200"), await ReadNetSysctlsAsync(overriding, "read"));

        // What it is for: a non-root process binds port 80.
        var web = await RunPodAsync("sysctl-web");
        string server = await CreateAndStartAsync(web, "web", ["nc", "-l", "-p", "80"], c => c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1000 });
        await Task.Delay(1000);
        var status = (await ContainerStatusAsync(server)).Status;
        Assert.True(status.State == ContainerState.ContainerRunning, $"nc -l -p 80 as uid 1000 did not keep running: {status}");
    }

    [Fact]
    public async Task With_the_keys_off_the_kernel_defaults_stay()
    {
        await StartPodDaemonAsync(runtimeKeys: "unprivileged_ports = false\nunprivileged_icmp = false\n");
        var pod = await RunPodAsync("sysctl-off");
        var (ports, ping) = await ReadNetSysctlsAsync(pod, "read");
        // The kernel's defaults for a new network namespace.
        Assert.Equal("1024", ports);
        Assert.Equal("1\t0", ping);
    }

    [Fact]
    public async Task Stop_signal_of_the_config_is_sent_and_reported_with_the_user()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("stopsignal");
        string c = await CreateAndStartAsync(pod, "usr1",
            Sh("trap 'echo got USR1; exit 0' USR1; echo ready; while true; do sleep 1; done"), config =>
            {
                config.StopSignal = Signal.Sigusr1;
                config.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 1000 };
                config.Linux.SecurityContext.RunAsGroup = new Int64Value { Value = 1000 };
                config.Linux.SecurityContext.SupplementalGroups.Add(new long[] { 5, 6 });
            });
        var status = (await ContainerStatusAsync(c)).Status;
        Assert.Equal(Signal.Sigusr1, status.StopSignal);
        Assert.NotNull(status.User?.Linux);
        Assert.Equal(1000, status.User.Linux.Uid);
        Assert.Equal(1000, status.User.Linux.Gid);
        // The requested groups, besides those /etc/group of the image gives uid 1000: what PID 1 holds (/proc/1/status Groups).
        Assert.Contains(5L, status.User.Linux.SupplementalGroups);
        Assert.Contains(6L, status.User.Linux.SupplementalGroups);
        string groups = (await ExecOkAsync(c, "sh", "-c", "grep ^Groups: /proc/1/status")).Split(':')[1];
        Assert.Equal(groups.Split([' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries).Select(long.Parse).Order(), status.User.Linux.SupplementalGroups.Order());
        // What PID 1 runs as, seen from inside.
        Assert.Contains("uid=1000", await ExecOkAsync(c, "id"));

        await StopContainerAsync(c, 20);
        var exited = await WaitForExitAsync(c);
        Assert.True(exited.ExitCode == 0, $"the container was not stopped by its trap for SIGUSR1 (exit {exited.ExitCode}); log:\n{ReadLog(pod, "usr1")}");
        Assert.Contains("got USR1", ReadLog(pod, "usr1"));

        // Without stop_signal: the image's (none in the test image) or SIGTERM, and root.
        string plain = await CreateAndStartAsync(pod, "plain", ["sleep", "3600"]);
        var plainStatus = (await ContainerStatusAsync(plain)).Status;
        Assert.Equal(Signal.Sigterm, plainStatus.StopSignal);
        Assert.Equal(0, plainStatus.User.Linux.Uid);
    }

    private static string ReadLog(TestPod pod, string container)
    {
        string path = Path.Combine(pod.LogDirectory, container, "0.log");
        return File.Exists(path) ? File.ReadAllText(path) : "(no log file)";
    }

    [Fact]
    public async Task Zero_hugepage_limits_for_every_page_size_as_the_kubelet_sends_them_start_a_container()
    {
        await StartPodDaemonAsync();
        var sizes = Directory.Exists("/sys/kernel/mm/hugepages")
            ? Directory.GetDirectories("/sys/kernel/mm/hugepages").Select(d => long.Parse(Path.GetFileName(d)["hugepages-".Length..^2]))
                .Select(kb => kb >= 1024 * 1024 ? $"{kb / (1024 * 1024)}GB" : $"{kb / 1024}MB").ToList()
            : [];
        Output.WriteLine($"node page sizes: [{string.Join(", ", sizes)}]; hugetlb controller: {Directory.Exists("/sys/fs/cgroup/hugetlb") || (File.Exists("/sys/fs/cgroup/cgroup.controllers") && File.ReadAllText("/sys/fs/cgroup/cgroup.controllers").Contains("hugetlb"))}");
        var pod = await RunPodAsync("hugepages");
        string c = await CreateAndStartAsync(pod, "huge", ["sleep", "3600"], config =>
        {
            foreach (var size in sizes) config.Linux.Resources.HugepageLimits.Add(new HugepageLimit { PageSize = size, Limit = 0 });
        });
        Assert.Equal(ContainerState.ContainerRunning, (await ContainerStatusAsync(c)).Status.State);
        // Where the controller exists the limits reach runc; where it does not they are left out (unit tests cover that).
        using var info = JsonDocument.Parse((await ContainerStatusAsync(c, verbose: true)).Info["info"]);
        var resources = info.RootElement.GetProperty("runtimeSpec").GetProperty("linux").GetProperty("resources");
        bool hasHugetlb = Directory.Exists("/sys/fs/cgroup/hugetlb")
            || (File.Exists("/sys/fs/cgroup/cgroup.controllers") && File.ReadAllText("/sys/fs/cgroup/cgroup.controllers").Contains("hugetlb"));
        int inSpec = resources.TryGetProperty("hugepageLimits", out var limits) ? limits.GetArrayLength() : 0;
        Assert.Equal(hasHugetlb ? sizes.Count : 0, inSpec);
    }

    [Fact]
    public async Task StartContainer_in_a_stopped_pod_is_failed_precondition_naming_the_pod()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("notready");
        string c = await CreateContainerAsync(pod.Id, pod.Config, "late", BusyboxImage, ["sleep", "3600"]);
        await StopPodAsync(pod.Id);
        var e = await ExpectErrorAsync(StatusCode.FailedPrecondition, $"StartContainer({c}) in stopped pod",
            dl => Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = c }, deadline: dl));
        Assert.Contains($"pod sandbox {pod.Id} is not ready", e.Status.Detail);
    }
}
