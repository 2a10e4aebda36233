using CriRuntime.Containers;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Oci;
using CriRuntime.Tests.Storage;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Oci;

/// <summary>Issue #10's spec logic: hostIPC mounts, the PID namespace TARGET, default sysctls, hugepages without hugetlb,
/// and the stop signal and user a container reports. Pure logic over a scratch rootfs.</summary>
public sealed class KubernetesWorkloadSpecTests : IDisposable
{
    private readonly TempDir tmp = new();
    private readonly string rootfs;

    public KubernetesWorkloadSpecTests()
    {
        rootfs = tmp["rootfs"];
        TestRootfs.Create(rootfs);
    }

    public void Dispose() => tmp.Dispose();

    private ContainerSpecInput Input(ContainerConfig? config = null, PodSandboxConfig? pod = null) => new()
    {
        Id = "c1",
        Config = config ?? new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" } },
        PodConfig = pod ?? new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "u1" } },
        Image = new ImageRuntimeConfig(),
        RootfsPath = rootfs,
        PidMode = PidNamespaceMode.Container,
        CgroupsPath = "/kubepods/podu1/c1",
        Hostname = "h1",
        SwapLimitSupported = true,
    };

    // ---- hostIPC

    [Fact]
    public void HostIpc_binds_the_nodes_dev_shm_instead_of_a_private_tmpfs()
    {
        var spec = RuntimeSpecBuilder.BuildContainer(Input() with { HostIpc = true });

        var shm = spec.Mounts.Where(m => m.Destination == "/dev/shm").ToList();
        Assert.True(shm.Count == 1, $"expected one /dev/shm mount, got: {string.Join("; ", shm.Select(m => $"{m.Type} {m.Source}"))}");
        Assert.Equal(("bind", "/dev/shm"), (shm[0].Type, shm[0].Source));
        Assert.Contains("rw", shm[0].Options!);
        Assert.DoesNotContain(spec.Linux!.Namespaces!, n => n.Type == NamespaceTypes.Ipc);
    }

    [Fact]
    public void HostIpc_binds_the_nodes_dev_mqueue_when_the_node_has_one()
    {
        bool nodeHasMqueue = Mounts.ReadMountInfo().LastOrDefault(m => m.MountPoint == "/dev/mqueue") is { FsType: "mqueue" };
        var spec = RuntimeSpecBuilder.BuildContainer(Input() with { HostIpc = true });
        var mqueue = spec.Mounts.Single(m => m.Destination == "/dev/mqueue");
        // Either way the queues are the node's: bound from it, or an mqueue mount made inside the node's IPC namespace.
        Assert.Equal(nodeHasMqueue ? ("bind", "/dev/mqueue") : ("mqueue", "mqueue"), (mqueue.Type, mqueue.Source));
    }

    [Fact]
    public void A_pod_with_its_own_ipc_keeps_the_pods_shm_and_a_cri_mount_of_dev_shm_wins_over_the_nodes()
    {
        string podShm = Files.RealPath(Directory.CreateDirectory(tmp["podshm"]).FullName);
        var own = RuntimeSpecBuilder.BuildContainer(Input() with { ShmPath = podShm, IpcNamespacePath = "/run/ipc" });
        Assert.Equal(podShm, own.Mounts.Single(m => m.Destination == "/dev/shm").Source);
        Assert.Equal("mqueue", own.Mounts.Single(m => m.Destination == "/dev/mqueue").Type);

        string mine = Files.RealPath(Directory.CreateDirectory(tmp["mine"]).FullName);
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" }, Mounts = { new Mount { HostPath = mine, ContainerPath = "/dev/shm" } } };
        var host = RuntimeSpecBuilder.BuildContainer(Input(config) with { HostIpc = true });
        Assert.Equal(mine, host.Mounts.Single(m => m.Destination == "/dev/shm").Source);
    }

    // ---- PID namespace TARGET

    [Fact]
    public void Target_pid_mode_joins_the_targets_pid_namespace()
    {
        var spec = RuntimeSpecBuilder.BuildContainer(Input() with { PidMode = PidNamespaceMode.Target, TargetPidNamespacePath = "/proc/4242/ns/pid" });
        Assert.Equal("/proc/4242/ns/pid", spec.Linux!.Namespaces!.Single(n => n.Type == NamespaceTypes.Pid).Path);
    }

    private static ContainerRecord Record(string id, string pod, ContainerPhase phase, int pid) => new()
    {
        Id = id,
        PodSandboxId = pod,
        ConfigBytes = Google.Protobuf.MessageExtensions.ToByteArray(new ContainerConfig { Metadata = new ContainerMetadata { Name = id } }),
        ImageId = "sha256:00",
        ImageRef = "sha256:00",
        RuntimeHandler = "runc",
        Phase = phase,
        CreatedAt = 1,
        Pid = pid,
        Bundle = "/b/" + id,
        WritableLayerDir = "/w/" + id,
        CgroupsPath = "/c/" + id,
    };

    [Fact]
    public void A_target_must_exist_be_in_the_pod_and_run()
    {
        Assert.Equal("/proc/77/ns/pid", PidNamespaceTarget.PathOf("t", Record("t", "pod1", ContainerPhase.Running, 77), "pod1", _ => true));

        var missing = Assert.Throws<NotFoundException>(() => PidNamespaceTarget.PathOf("nope", null, "pod1", _ => true));
        Assert.Contains("'nope' not found", missing.Message);
        Assert.Throws<InvalidArgumentException>(() => PidNamespaceTarget.PathOf("", null, "pod1", _ => true));
        var otherPod = Assert.Throws<InvalidArgumentException>(() => PidNamespaceTarget.PathOf("t", Record("t", "pod2", ContainerPhase.Running, 77), "pod1", _ => true));
        Assert.Contains("belongs to pod sandbox pod2", otherPod.Message);
        var created = Assert.Throws<FailedPreconditionException>(() => PidNamespaceTarget.PathOf("t", Record("t", "pod1", ContainerPhase.Created, 77), "pod1", _ => true));
        Assert.Contains("CREATED, not RUNNING", created.Message);
        Assert.Throws<FailedPreconditionException>(() => PidNamespaceTarget.PathOf("t", Record("t", "pod1", ContainerPhase.Exited, 77), "pod1", _ => true));
        // Recorded as running, but its process is gone (its exit not yet recorded).
        Assert.Throws<FailedPreconditionException>(() => PidNamespaceTarget.PathOf("t", Record("t", "pod1", ContainerPhase.Running, 77), "pod1", _ => false));
    }

    // ---- default sysctls

    private static PodSandboxConfig PodWithSysctls(params (string Key, string Value)[] sysctls)
    {
        var pod = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "u1" }, Linux = new LinuxPodSandboxConfig() };
        foreach (var (k, v) in sysctls) pod.Linux.Sysctls[k] = v;
        return pod;
    }

    [Fact]
    public void A_pod_with_its_own_network_gets_unprivileged_ports_and_icmp()
    {
        var spec = RuntimeSpecBuilder.BuildContainer(Input() with { NetworkNamespacePath = "/run/netns/n1", UnprivilegedPorts = true, UnprivilegedIcmp = true });
        Assert.Equal("0", spec.Linux!.Sysctl!["net.ipv4.ip_unprivileged_port_start"]);
        Assert.Equal("0 2147483647", spec.Linux.Sysctl["net.ipv4.ping_group_range"]);
    }

    [Fact]
    public void The_defaults_are_off_with_their_keys_off_and_never_in_the_nodes_network()
    {
        var off = RuntimeSpecBuilder.BuildContainer(Input() with { NetworkNamespacePath = "/run/netns/n1" });
        Assert.Null(off.Linux!.Sysctl);
        var portsOnly = RuntimeSpecBuilder.BuildContainer(Input() with { NetworkNamespacePath = "/run/netns/n1", UnprivilegedPorts = true });
        Assert.Equal(["net.ipv4.ip_unprivileged_port_start"], portsOnly.Linux!.Sysctl!.Keys);
        var hostNetwork = RuntimeSpecBuilder.BuildContainer(Input() with { NetworkNamespacePath = null, UnprivilegedPorts = true, UnprivilegedIcmp = true });
        Assert.Null(hostNetwork.Linux!.Sysctl);
    }

    [Fact]
    public void The_pods_own_sysctls_override_the_defaults_in_either_spelling()
    {
        var pod = PodWithSysctls(("net.ipv4.ip_unprivileged_port_start", "1024"), ("net/ipv4/ping_group_range", "1 1"), ("net.ipv4.ip_forward", "1"));
        var spec = RuntimeSpecBuilder.BuildContainer(Input(pod: pod) with { NetworkNamespacePath = "/run/netns/n1", UnprivilegedPorts = true, UnprivilegedIcmp = true });
        var sysctl = spec.Linux!.Sysctl!;
        Assert.Equal("1024", sysctl["net.ipv4.ip_unprivileged_port_start"]);
        Assert.Equal("1 1", sysctl["net/ipv4/ping_group_range"]);
        Assert.False(sysctl.ContainsKey("net.ipv4.ping_group_range"), "the default stayed beside the pod's own value in / spelling");
        Assert.Equal("1", sysctl["net.ipv4.ip_forward"]);
        Assert.Equal(3, sysctl.Count);
    }

    // ---- hugepages

    private static ContainerConfig WithHugepages()
    {
        var resources = new LinuxContainerResources { HugepageLimits = { new HugepageLimit { PageSize = "2MB", Limit = 0 }, new HugepageLimit { PageSize = "1GB", Limit = 0 } } };
        return new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" }, Linux = new LinuxContainerConfig { Resources = resources } };
    }

    [Fact]
    public void Hugepage_limits_are_left_out_without_the_hugetlb_controller()
    {
        var without = RuntimeSpecBuilder.BuildContainer(Input(WithHugepages()) with { HugetlbAvailable = false });
        Assert.Null(without.Linux!.Resources!.HugepageLimits);
        var with = RuntimeSpecBuilder.BuildContainer(Input(WithHugepages()) with { HugetlbAvailable = true });
        Assert.Equal(["2MB", "1GB"], with.Linux!.Resources!.HugepageLimits!.Select(h => h.PageSize));
        Assert.All(with.Linux.Resources.HugepageLimits!, h => Assert.Equal(0UL, h.Limit));
        // UpdateContainerResources builds its resources the same way.
        Assert.Null(RuntimeSpecBuilder.Resources(WithHugepages().Linux.Resources, true, hugetlbAvailable: false).HugepageLimits);
    }

    private static List<MountInfo> Parse(params string[] lines) => lines.Select(l => Mounts.ParseMountInfoLine(l)!).ToList();

    [Fact]
    public void Hugetlb_is_detected_from_the_mounted_v1_hierarchies_and_the_v2_kernel_list()
    {
        var kernelWith = new HashSet<string> { "cpu", "memory", "hugetlb" };
        var kernelWithout = new HashSet<string> { "cpu", "memory" };
        var v1 = Parse(
            "30 22 0:27 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755",
            "33 30 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu",
            "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory");
        var v1Hugetlb = v1.Concat(Parse("35 30 0:32 / /sys/fs/cgroup/hugetlb rw - cgroup cgroup rw,hugetlb")).ToList();
        Assert.False(Cgroups.Detect("/sys/fs/cgroup", v1, kernelWith).HasHugetlb);
        Assert.True(Cgroups.Detect("/sys/fs/cgroup", v1Hugetlb, kernelWith).HasHugetlb);

        string root = Directory.CreateDirectory(tmp["cg2"]).FullName;
        var v2 = Parse($"30 22 0:27 / {root} rw - cgroup2 cgroup2 rw");
        Assert.False(Cgroups.Detect(root, v2, kernelWithout).HasHugetlb);
        File.WriteAllText(Path.Combine(root, "cgroup.controllers"), "cpuset cpu io memory pids\n");
        Assert.False(Cgroups.Detect(root, v2, kernelWith).HasHugetlb);
        File.WriteAllText(Path.Combine(root, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n");
        Assert.True(Cgroups.Detect(root, v2, kernelWith).HasHugetlb);
    }

    // ---- stop signal and user

    [Theory]
    [InlineData(Signal.Sigkill, "SIGTERM", 9)]
    [InlineData(Signal.Sigusr1, "", 10)]
    [InlineData(Signal.RuntimeDefault, "SIGQUIT", 3)]
    [InlineData(Signal.RuntimeDefault, "", 15)]
    [InlineData(Signal.Sigrtmin, "", 34)]
    [InlineData(Signal.Sigrtminplus3, "", 37)]
    [InlineData(Signal.Sigrtmaxminus2, "", 62)]
    [InlineData(Signal.Sigrtmax, "", 64)]
    public void The_configs_stop_signal_overrides_the_images(Signal configured, string image, int expected) =>
        Assert.Equal(expected, StopSignals.Effective(configured, image));

    [Fact]
    public void An_undefined_stop_signal_is_an_argument_error() =>
        Assert.Throws<InvalidArgumentException>(() => StopSignals.Effective((Signal)99, "SIGTERM"));

    [Theory]
    [InlineData(15, Signal.Sigterm)]
    [InlineData(9, Signal.Sigkill)]
    [InlineData(6, Signal.Sigabrt)]
    [InlineData(17, Signal.Sigchld)]
    [InlineData(29, Signal.Sigio)]
    [InlineData(34, Signal.Sigrtmin)]
    [InlineData(50, Signal.Sigrtmaxminus14)]
    [InlineData(64, Signal.Sigrtmax)]
    [InlineData(0, Signal.RuntimeDefault)]
    public void A_signal_number_is_reported_by_its_first_cri_name(int number, Signal expected) => Assert.Equal(expected, StopSignals.ToCri(number));

    [Fact]
    public void Every_cri_signal_round_trips()
    {
        foreach (var signal in Enum.GetValues<Signal>().Where(s => s != Signal.RuntimeDefault))
        {
            int number = StopSignals.FromCri(signal)!.Value;
            Assert.InRange(number, 1, 64);
            Assert.Equal(number, StopSignals.FromCri(StopSignals.ToCri(number)));
        }
    }
}
