using System.Diagnostics;
using System.Security.Cryptography;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// RunPodSandbox requests that used to fail late and leave records, cgroups or 1 MB log lines behind (issue #13):
/// oversized metadata, a log directory that is a file, sysctls that cannot be applied, cgroup parents the daemon
/// had to make, and 1 MB ids echoed into errors. Each must answer with the right code, a short message, and
/// leave nothing behind.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class PodValidationTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private const int OneMegabyte = 1024 * 1024;

    /// <summary>Far below a status a default client refuses (and below the daemon's 4 KiB cap): the value was cut.</summary>
    private const int ShortMessage = 2048;

    private readonly List<string> ownCgroupRoots = [];

    [Fact]
    public async Task Oversized_metadata_a_file_as_log_directory_and_unusable_sysctls_are_refused_before_anything_is_made()
    {
        await StartPodDaemonAsync();
        var cases = new (string What, string Field, Action<PodSandboxConfig> Configure)[]
        {
            ("1 MB name", "config.metadata.name", c => c.Metadata.Name = new string('n', OneMegabyte)),
            ("1 MB namespace", "config.metadata.namespace", c => c.Metadata.Namespace = new string('s', OneMegabyte)),
            ("1 MB uid", "config.metadata.uid", c => c.Metadata.Uid = new string('u', OneMegabyte)),
            ("uid with a '/'", "config.metadata.uid", c => c.Metadata.Uid = "../../etc"),
            ("name with a newline", "config.metadata.name", c => c.Metadata.Name = "pod\nforged log line"),
            ("log_directory /dev/null", "config.log_directory", c => c.LogDirectory = "/dev/null"),
            ("sysctl kernel.panic", "kernel.panic", c => c.Linux.Sysctls["kernel.panic"] = "10"),
            ("sysctl ../x", "../x", c => c.Linux.Sysctls["../x"] = "1"),
            ("net sysctl with host network", "net.ipv4.ip_forward", c =>
            {
                c.Linux.SecurityContext.NamespaceOptions.Network = NamespaceMode.Node;
                c.Linux.Sysctls["net.ipv4.ip_forward"] = "1";
            }),
            // Pod cgroup values the kernel refuses (found by the fuzz suite: INTERNAL from the cgroup write).
            ("pod cpu_quota above the kernel's", "config.linux.resources.cpu_quota", c => c.Linux.Resources = new LinuxContainerResources { CpuQuota = long.MaxValue }),
            ("pod cpu_period 1", "config.linux.resources.cpu_period", c => c.Linux.Resources = new LinuxContainerResources { CpuPeriod = 1 }),
            ("pod swap without a memory limit", "config.linux.resources.memory_swap_limit_in_bytes", c => c.Linux.Resources = new LinuxContainerResources { MemorySwapLimitInBytes = 2L << 30 }),
            ("pod overhead cpu_shares 1", "config.linux.overhead.cpu_shares", c => c.Linux.Overhead = new LinuxContainerResources { CpuShares = 1 }),
            ("IPC sysctl with host IPC", "kernel.shmmax", c =>
            {
                c.Linux.SecurityContext.NamespaceOptions.Ipc = NamespaceMode.Node;
                c.Linux.Sysctls["kernel.shmmax"] = "1";
            }),
        };

        var before = DaemonFiles();
        foreach (var (what, field, configure) in cases)
        {
            var config = NewPodConfig("refused");
            configure(config);
            var sw = Stopwatch.StartNew();
            var e = await ExpectErrorAsync(StatusCode.InvalidArgument, $"RunPodSandbox({what})",
                dl => Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }, deadline: dl));
            Output.WriteLine($"{what}: {e.StatusCode} in {sw.ElapsedMilliseconds} ms: {e.Status.Detail[..Math.Min(200, e.Status.Detail.Length)]}");
            Assert.Contains(field, e.Status.Detail);
            Assert.True(e.Status.Detail.Length < ShortMessage, $"{what}: the message is {e.Status.Detail.Length} characters");
            AssertIds(before, DaemonFiles(), $"files under the daemon's root and state after the refused {what}");
        }

        Assert.Empty((await Runtime.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: Deadline())).Items);
        Assert.Empty(Network.ReservedAddresses());
        Assert.Empty(Network.BridgePorts());
        AssertNoLongLogLines();

        // The same daemon still runs a pod with namespaced sysctls, and its containers see them.
        var pod = await RunPodAsync("sysctls", c =>
        {
            c.Linux.Sysctls["net.core.somaxconn"] = "1234";
            c.Linux.Sysctls["kernel.shmmni"] = "2048";
        });
        string container = await CreateAndStartAsync(pod, "reader", ["sleep", "3600"]);
        var exec = await CallAsync("ExecSync(cat sysctls)", dl => Runtime.ExecSyncAsync(new ExecSyncRequest
        {
            ContainerId = container,
            Cmd = { "cat", "/proc/sys/net/core/somaxconn", "/proc/sys/kernel/shmmni" },
            Timeout = 10,
        }, deadline: dl));
        Assert.Equal(0, exec.ExitCode);
        Assert.Equal("1234\n2048\n", exec.Stdout.ToStringUtf8());

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [container], []);
    }

    [Fact]
    public async Task A_megabyte_id_gets_not_found_or_ok_with_a_short_message_and_no_megabyte_log_line()
    {
        await StartPodDaemonAsync();
        string hugeId = new string('f', OneMegabyte);

        var podStatus = await ExpectErrorAsync(StatusCode.NotFound, "PodSandboxStatus(1 MB id)",
            dl => Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = hugeId }, deadline: dl));
        var containerStatus = await ExpectErrorAsync(StatusCode.NotFound, "ContainerStatus(1 MB id)",
            dl => Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = hugeId }, deadline: dl));
        var containerStats = await ExpectErrorAsync(StatusCode.NotFound, "ContainerStats(1 MB id)",
            dl => Runtime.ContainerStatsAsync(new ContainerStatsRequest { ContainerId = hugeId }, deadline: dl));
        var startContainer = await ExpectErrorAsync(StatusCode.NotFound, "StartContainer(1 MB id)",
            dl => Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = hugeId }, deadline: dl));
        foreach (var e in new[] { podStatus, containerStatus, containerStats, startContainer })
        {
            Output.WriteLine($"{e.StatusCode}: {e.Status.Detail}");
            Assert.True(e.Status.Detail.Length < ShortMessage, $"the NotFound message is {e.Status.Detail.Length} characters");
            Assert.Contains("ffff", e.Status.Detail);
        }

        // Stop and remove are idempotent in CRI: a pod that is not there is OK (containerd answers the same).
        await StopPodAsync(hugeId);
        await RemovePodAsync(hugeId);
        await RemoveContainerAsync(hugeId);

        // A 1 MB cgroup parent is refused by its length, not echoed.
        var cgroup = await ExpectErrorAsync(StatusCode.InvalidArgument, "RunPodSandbox(1 MB cgroup_parent)",
            dl => Runtime.RunPodSandboxAsync(new RunPodSandboxRequest
            {
                Config = WithConfig(NewPodConfig("huge-cgroup"), c => c.Linux.CgroupParent = "/" + new string('c', OneMegabyte)),
            }, deadline: dl));
        Assert.Contains("config.linux.cgroup_parent", cgroup.Status.Detail);
        Assert.True(cgroup.Status.Detail.Length < ShortMessage, $"the message is {cgroup.Status.Detail.Length} characters");

        AssertNoLongLogLines();
        // The daemon is fine and answers on the same connection.
        await Runtime.VersionAsync(new VersionRequest(), deadline: Deadline());
    }

    [Fact]
    public async Task Cgroup_parents_the_daemon_made_are_removed_with_the_pod_and_ones_that_existed_are_kept()
    {
        await StartPodDaemonAsync();
        string tag = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));

        // 59 levels below a top level that did not exist; and a single top level.
        string deepRoot = OwnCgroupRoot($"/criruntime-it-deep-{tag}");
        string deep = deepRoot + string.Concat(Enumerable.Repeat("/d", 58));
        string single = OwnCgroupRoot($"/criruntime-it-abs-{tag}");
        // A kubelet-made parent: it exists in every hierarchy before the pod; only the pod's level below it is new.
        string kubeletRoot = OwnCgroupRoot($"/criruntime-it-kubelet-{tag}");
        foreach (var hierarchy in HostState.CgroupHierarchies()) Directory.CreateDirectory(hierarchy + kubeletRoot + "/besteffort");
        string underKubelet = kubeletRoot + "/besteffort/pod" + tag;

        var pods = new List<TestPod>();
        foreach (var parent in new[] { deep, single, underKubelet })
        {
            var pod = await RunPodAsync("cgroups", c => c.Linux.CgroupParent = parent);
            pods.Add(pod);
            Assert.All(HostState.CgroupHierarchies(), h => Assert.True(Directory.Exists(h + parent), $"{h + parent} was not made"));
        }
        // A container under the deep parent: its cgroup is one more level, removed with it.
        string container = await CreateAndStartAsync(pods[0], "deep", ["sleep", "3600"]);

        foreach (var pod in pods)
        {
            await StopPodAsync(pod.Id);
            await RemovePodAsync(pod.Id);
        }

        foreach (var hierarchy in HostState.CgroupHierarchies())
        {
            Assert.False(Directory.Exists(hierarchy + deepRoot), $"{hierarchy + deepRoot} (made for a pod) is left");
            Assert.False(Directory.Exists(hierarchy + single), $"{hierarchy + single} (made for a pod) is left");
            Assert.False(Directory.Exists(hierarchy + underKubelet), $"{hierarchy + underKubelet} (made for a pod) is left");
            Assert.True(Directory.Exists(hierarchy + kubeletRoot + "/besteffort"), $"{hierarchy + kubeletRoot}/besteffort (the kubelet's) was removed");
        }
        await AssertNothingLeftAsync(pods, [container], []);
    }

    [Fact]
    public async Task The_cgroup_levels_a_pod_made_are_removed_by_a_restarted_daemon()
    {
        var first = await StartPodDaemonAsync();
        string tag = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        string top = OwnCgroupRoot($"/criruntime-it-restart-{tag}");
        var pod = await RunPodAsync("restart", c => c.Linux.CgroupParent = top + "/a/b");
        Assert.All(HostState.CgroupHierarchies(), h => Assert.True(Directory.Exists(h + top + "/a/b"), $"{h + top}/a/b was not made"));

        // What was made is in the pod's record, not in the daemon's memory.
        await first.KillAsync();
        await RestartPodDaemonAsync(first);
        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);

        Assert.All(HostState.CgroupHierarchies(), h => Assert.False(Directory.Exists(h + top), $"{h + top} is left"));
        await AssertNothingLeftAsync([pod], [], []);
    }

    [Fact]
    public async Task A_failed_run_pod_sandbox_removes_the_cgroup_levels_it_made()
    {
        // A runtime that cannot start the infra process: RunPodSandbox fails after the pod's cgroup is made.
        string dir = TempDir("criruntime-failing-runtime-");
        string failing = Path.Combine(dir, "failing-runtime");
        File.WriteAllText(failing, "#!/bin/sh\necho 'this runtime refuses every container' >&2\nexit 1\n");
        File.SetUnixFileMode(failing, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await StartPodDaemonAsync($"\n[runtime.handlers.failing]\npath = \"{failing}\"\n");

        string tag = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        string top = OwnCgroupRoot($"/criruntime-it-rollback-{tag}");
        var config = NewPodConfig("rollback");
        config.Linux.CgroupParent = top + "/a/b/c";
        // A shared PID namespace needs the infra process, which the failing runtime cannot run.
        config.Linux.SecurityContext.NamespaceOptions.Pid = NamespaceMode.Pod;
        TrackPod(config.Metadata.Uid);
        var before = DaemonFiles();
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config, RuntimeHandler = "failing" }, deadline: Deadline()));
        Output.WriteLine($"RunPodSandbox(failing runtime): {e.StatusCode}: {e.Status.Detail}");
        Assert.Contains("refuses every container", e.Status.Detail);

        Assert.All(HostState.CgroupHierarchies(), h => Assert.False(Directory.Exists(h + top), $"{h + top} is left after the rollback"));
        AssertIds(before, DaemonFiles(), "files under the daemon's root and state after the rolled-back RunPodSandbox");
    }

    /// <summary>Every file and directory under the daemon's pod records and pod state dirs.</summary>
    private List<string> DaemonFiles() =>
        new[] { Path.Combine(Daemon.Root, "pods"), Path.Combine(Daemon.State, "pods") }
            .Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFileSystemEntries(d, "*", SearchOption.AllDirectories))
            .ToList();

    private void AssertNoLongLogLines()
    {
        string log = File.ReadAllText(Daemon.LogFile);
        int longest = log.Split('\n').Max(l => l.Length);
        Assert.True(longest < 16 * 1024, $"the daemon log has a line of {longest} characters");
    }

    private static PodSandboxConfig WithConfig(PodSandboxConfig config, Action<PodSandboxConfig> configure)
    {
        configure(config);
        return config;
    }

    /// <summary>A top-level cgroup this test names; removed (with anything below) after the test if the daemon left it.</summary>
    private string OwnCgroupRoot(string path)
    {
        ownCgroupRoots.Add(path);
        return path;
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        foreach (var root in ownCgroupRoots)
            foreach (var dir in HostState.CgroupDirsAt(root))
            {
                try
                {
                    Directory.Delete(dir);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Output.WriteLine($"cleanup: cannot remove cgroup {dir}: {e.Message}");
                }
            }
    }
}
