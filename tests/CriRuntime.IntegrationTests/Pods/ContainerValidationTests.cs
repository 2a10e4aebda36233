using System.Diagnostics;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Issue #13 items 6, 8 and 10 (and #11 item 6) through the real daemon: container inputs that used to reach runc or the
/// file system and come back as Unknown or INTERNAL answer InvalidArgument (NotFound for a missing device) before
/// anything is made, and ExecSync of a missing executable fails naming it instead of answering OK with exit code 255.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class ContainerValidationTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Bad_container_inputs_get_the_right_code_naming_the_field_and_leave_nothing()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("ctr-validation");

        // Item 6: was INTERNAL ("realpath ...: ENOENT").
        var device = await CreateExpectingAsync(pod, StatusCode.NotFound, "missing device host_path",
            c => c.Devices.Add(new Device { ContainerPath = "/dev/nope", HostPath = "/dev/criruntime-no-such-device", Permissions = "rw" }));
        Assert.Contains("config.devices[0].host_path", device.Status.Detail);

        // Item 6: the daemon tried to create these (and INTERNAL when it could not); they must never be created.
        foreach (string source in new[] { "/proc/criruntime-no-such-entry", "/sys/kernel/criruntime-no-such-entry" })
        {
            var e = await CreateExpectingAsync(pod, StatusCode.InvalidArgument, $"mount source {source}",
                c => c.Mounts.Add(new Mount { ContainerPath = "/k", HostPath = source }));
            Assert.Contains("config.mounts[0].host_path", e.Status.Detail);
            Assert.False(Path.Exists(source), $"{source} was created");
        }

        // Item 6 (was "spawn conmon: E2BIG") and #11 item 6: log_path stays inside the pod's log directory.
        var hugeLog = await CreateExpectingAsync(pod, StatusCode.InvalidArgument, "1 MB log_path", c => c.LogPath = new string('l', 1024 * 1024));
        Assert.Contains("config.log_path", hugeLog.Status.Detail);
        string outside = Path.Combine(TempDir("criruntime-outside-"), "escaped");
        foreach (string logPath in new[] { outside + "/0.log", "../../../../../../../.." + outside + "/0.log" })
        {
            var e = await CreateExpectingAsync(pod, StatusCode.InvalidArgument, $"log_path {logPath}", c => c.LogPath = logPath);
            Assert.Contains("config.log_path", e.Status.Detail);
            Assert.False(Path.Exists(outside), $"{outside} was created outside the pod's log directory");
        }

        // Item 8: each of these reached runc and came back as Unknown.
        var cases = new (string What, string Field, Action<ContainerConfig> Configure)[]
        {
            ("relative working_dir", "config.working_dir", c => c.WorkingDir = "relative/dir"),
            ("empty env key", "config.envs[0].key", c => c.Envs.Add(new KeyValue { Key = "" })),
            ("env key with =", "config.envs[0].key", c => c.Envs.Add(new KeyValue { Key = "A=B" })),
            ("env key with NUL", "config.envs[0].key", c => c.Envs.Add(new KeyValue { Key = "A\0B" })),
            ("negative cpu_shares", "cpu_shares", c => c.Linux.Resources.CpuShares = -5),
            ("negative cpu_quota", "cpu_quota", c => c.Linux.Resources.CpuQuota = -100),
            ("cpu_quota above the kernel's maximum", "cpu_quota", c => c.Linux.Resources.CpuQuota = long.MaxValue),
            ("4 KiB memory limit", "memory_limit_in_bytes", c => c.Linux.Resources.MemoryLimitInBytes = 4096),
            ("malformed cpuset_cpus", "cpuset_cpus", c => c.Linux.Resources.CpusetCpus = "0-x"),
            ("malformed cpuset_mems", "cpuset_mems", c => c.Linux.Resources.CpusetMems = "1-0"),
            ("oom_score_adj 5000", "oom_score_adj", c => c.Linux.Resources.OomScoreAdj = 5000),
            ("oom_score_adj -5000", "oom_score_adj", c => c.Linux.Resources.OomScoreAdj = -5000),
            ("hugepage size 3MB", "hugepage_limits[0].page_size", c => c.Linux.Resources.HugepageLimits.Add(new HugepageLimit { PageSize = "3MB", Limit = 1 << 21 })),
            ("hugepage size 2M", "hugepage_limits[0].page_size", c => c.Linux.Resources.HugepageLimits.Add(new HugepageLimit { PageSize = "2M", Limit = 1 << 21 })),
            ("unknown capability added", "add_capabilities[0]", c => c.Linux.SecurityContext.Capabilities = new Capability { AddCapabilities = { "CAP_FLY" } }),
            ("unknown capability dropped", "drop_capabilities[0]", c => c.Linux.SecurityContext.Capabilities = new Capability { DropCapabilities = { "teleport" } }),
            ("mount propagation 9", "config.mounts[0].propagation", c => c.Mounts.Add(new Mount { ContainerPath = "/m", HostPath = "/tmp", Propagation = (MountPropagation)9 })),
            ("mount source below a file", "config.mounts[0].host_path", c => c.Mounts.Add(new Mount { ContainerPath = "/m", HostPath = "/etc/passwd/criruntime-x" })),
            ("relative device container_path", "config.devices[0].container_path", c => c.Devices.Add(new Device { ContainerPath = "dev/null2", HostPath = "/dev/null", Permissions = "rw" })),
            ("device container_path with ..", "config.devices[0].container_path", c => c.Devices.Add(new Device { ContainerPath = "/dev/../etc/null2", HostPath = "/dev/null", Permissions = "rw" })),
        };
        foreach (var (what, field, configure) in cases)
        {
            var e = await CreateExpectingAsync(pod, StatusCode.InvalidArgument, what, configure);
            Assert.Contains(field, e.Status.Detail);
        }

        bool cgroupV2 = File.Exists("/sys/fs/cgroup/cgroup.controllers");
        if (!cgroupV2)
        {
            var e = await CreateExpectingAsync(pod, StatusCode.InvalidArgument, "unified on cgroup v1", c => c.Linux.Resources.Unified.Add("memory.high", "100000000"));
            Assert.Contains("config.linux.resources.unified", e.Status.Detail);
        }
        else
        {
            Output.WriteLine("this node runs cgroup v2: the 'unified on cgroup v1' case does not apply here");
        }

        // What a kubelet sends still works, and the memory floor is a limit a container starts with; ALL and both
        // spellings of a capability are accepted.
        string ok = await CreateAndStartAsync(pod, "fine", ["sleep", "3600"], c =>
        {
            c.Linux.Resources.MemoryLimitInBytes = 6L << 20;
            c.Linux.Resources.CpusetCpus = "0";
            c.Linux.SecurityContext.Capabilities = new Capability { AddCapabilities = { "net_admin", "CAP_SYS_TIME" }, DropCapabilities = { "ALL" } };
        });
        await WaitForStateAsync(ok, ContainerState.ContainerRunning);
        Assert.Equal("up\n", (await ExecSyncAsync(ok, ["echo", "up"], 30)).Stdout.ToStringUtf8());

        // UpdateContainerResources is checked the same way, and the container is left as it was.
        foreach (var (what, resources) in new (string, LinuxContainerResources)[]
        {
            ("malformed cpuset_cpus", new LinuxContainerResources { CpusetCpus = "0,,1" }),
            ("negative cpu_quota", new LinuxContainerResources { CpuQuota = -1 }),
            ("oom_score_adj 1001", new LinuxContainerResources { OomScoreAdj = 1001 }),
        })
        {
            var e = await ExpectErrorAsync(StatusCode.InvalidArgument, $"UpdateContainerResources({what})",
                dl => Runtime.UpdateContainerResourcesAsync(new UpdateContainerResourcesRequest { ContainerId = ok, Linux = resources }, deadline: dl));
            Assert.Contains("linux.", e.Status.Detail);
        }
        var status = (await ContainerStatusAsync(ok)).Status;
        Assert.Equal(ContainerState.ContainerRunning, status.State);
        Assert.Equal("0", status.Resources.Linux.CpusetCpus);

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [ok], []);
    }

    [Fact]
    public async Task Port_mappings_with_an_unknown_protocol_or_a_host_ip_that_is_no_address_are_invalid()
    {
        await StartPodDaemonAsync();
        foreach (var (what, mapping, field) in new (string, PortMapping, string)[]
        {
            ("protocol 7", new PortMapping { Protocol = (Protocol)7, ContainerPort = 80, HostPort = 0 }, "config.port_mappings[0].protocol"),
            ("host_ip localhost", new PortMapping { ContainerPort = 80, HostPort = 0, HostIp = "localhost" }, "config.port_mappings[0].host_ip"),
            ("host_ip 10.0.0.1/8", new PortMapping { ContainerPort = 80, HostPort = 0, HostIp = "10.0.0.1/8" }, "config.port_mappings[0].host_ip"),
        })
        {
            var config = NewPodConfig("ports-" + what.Replace(' ', '-').Replace('/', '-').Replace('.', '-'));
            config.PortMappings.Add(mapping);
            TrackPod(config.Metadata.Uid);
            var e = await ExpectErrorAsync(StatusCode.InvalidArgument, $"RunPodSandbox({what})",
                dl => Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }, deadline: dl));
            Assert.Contains(field, e.Status.Detail);
        }
        Assert.Empty(await ListPodsAsync());
    }

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task ExecSync_of_a_missing_executable_is_NotFound_naming_it(string handler)
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync($"exec-missing-{handler}", runtimeHandler: handler);
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);
        await WaitForStateAsync(id, ContainerState.ContainerRunning);

        // Before: OK, exit code 255, and the runtime's text in stderr.
        foreach (string missing in new[] { "no-such-executable", "/usr/bin/no-such-executable" })
        {
            var e = await ExpectErrorAsync(StatusCode.NotFound, $"ExecSync({missing})",
                dl => Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { missing, "arg" }, Timeout = 30 }, deadline: dl));
            Assert.Contains($"'{missing}'", e.Status.Detail);
        }
        var directory = await ExpectErrorAsync(StatusCode.FailedPrecondition, "ExecSync(/etc)",
            dl => Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { "/etc" }, Timeout = 30 }, deadline: dl));
        Assert.Contains("'/etc'", directory.Status.Detail);

        // A command that exits 255 is still a result, and the container still runs commands.
        var r = await ExecSyncAsync(id, Sh("echo 'executable file not found in $PATH' >&2; exit 255"), 30);
        Assert.Equal(255, r.ExitCode);
        Assert.Equal("ok\n", (await ExecSyncAsync(id, ["echo", "ok"], 30)).Stdout.ToStringUtf8());

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [id], []);
    }

    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task CreateContainer_whose_executable_is_missing_is_NotFound_and_leaves_nothing(string handler)
    {
        // A fuzz finding: args alone replace the image's cmd, so ["0", ...] names no executable; the runtime's
        // create fails, and that was UNKNOWN. The same mistake in ExecSync is NOT_FOUND.
        await StartPodDaemonAsync();
        var pod = await RunPodAsync($"create-missing-{handler}", runtimeHandler: handler);
        var byArgs = await CreateExpectingAsync(pod, StatusCode.NotFound, "args naming no executable", c =>
        {
            c.Command.Clear();
            c.Args.Clear();
            c.Args.Add(["0", "1"]);
        });
        Assert.Contains("executable", byArgs.Status.Detail);
        await CreateExpectingAsync(pod, StatusCode.NotFound, "a command path that does not exist", c =>
        {
            c.Command.Clear();
            c.Command.Add("/usr/bin/no-such-executable");
        });
        await CreateExpectingAsync(pod, StatusCode.FailedPrecondition, "a directory as the command", c =>
        {
            c.Command.Clear();
            c.Command.Add("/etc");
        });

        // The name is free again: the same config with a real command works.
        string id = await CreateAndStartAsync(pod, "refused", ["sleep", "3600"]);
        await WaitForStateAsync(id, ContainerState.ContainerRunning);
        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [id], []);
    }

    /// <summary>A busybox CreateContainer changed by <paramref name="configure"/> that must fail with <paramref name="expected"/>, quickly, creating no container.</summary>
    private async Task<RpcException> CreateExpectingAsync(TestPod pod, StatusCode expected, string what, Action<ContainerConfig> configure)
    {
        var config = NewContainerConfig(pod.Config, "refused", BusyboxImage, ["sleep", "3600"]);
        configure(config);
        var before = await ListContainersAsync();
        var sw = Stopwatch.StartNew();
        var e = await ExpectRpcErrorAsync(Daemon, expected, $"CreateContainer({what})", async () =>
            await Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod.Id, Config = config, SandboxConfig = pod.Config },
                deadline: DateTime.UtcNow + Quick));
        Output.WriteLine($"CreateContainer({what}): {e.StatusCode} after {sw.Elapsed.TotalSeconds:0.0}s: {e.Status.Detail[..Math.Min(200, e.Status.Detail.Length)]}");
        Assert.True(e.Status.Detail.Length < 2048, $"the message for {what} is {e.Status.Detail.Length} characters");
        AssertIds(before.Select(c => c.Id), (await ListContainersAsync()).Select(c => c.Id), $"containers after the refused {what}");
        return e;
    }
}
