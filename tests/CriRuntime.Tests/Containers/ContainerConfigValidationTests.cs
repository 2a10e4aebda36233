using CriRuntime.Containers;
using CriRuntime.Oci;
using Google.Protobuf;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Containers;

/// <summary>Issue #13 items 6 and 8, #11 item 6: values that reached runc (Unknown) or the file system (INTERNAL) are InvalidArgument.</summary>
public sealed class ContainerConfigValidationTests
{
    private static readonly IReadOnlySet<string> NodePageSizes = new HashSet<string> { "2MB", "1GB" };

    /// <summary>What the kubelet sends for a typical container with limits, caps, a device and a mount.</summary>
    private static ContainerConfig Kubelet() => new()
    {
        Metadata = new ContainerMetadata { Name = "app" },
        Image = new ImageSpec { Image = "registry.example/app:1" },
        Command = { "/bin/app" },
        WorkingDir = "/srv",
        LogPath = "app/0.log",
        Envs = { new KeyValue { Key = "PATH", Value = ByteString.CopyFromUtf8("/usr/bin:/bin") }, new KeyValue { Key = "EMPTY", Value = ByteString.Empty } },
        Mounts = { new Mount { ContainerPath = "/data", HostPath = "/var/lib/kubelet/pods/x/volumes/data", Propagation = MountPropagation.PropagationHostToContainer } },
        Devices = { new Device { ContainerPath = "/dev/fuse", HostPath = "/dev/fuse", Permissions = "rwm" } },
        Linux = new LinuxContainerConfig
        {
            Resources = new LinuxContainerResources
            {
                CpuPeriod = 100_000, CpuQuota = 50_000, CpuShares = 512, MemoryLimitInBytes = 128 << 20, MemorySwapLimitInBytes = 128 << 20,
                OomScoreAdj = 999, CpusetCpus = "0-3,8", CpusetMems = "0",
                HugepageLimits = { new HugepageLimit { PageSize = "2MB", Limit = 0 }, new HugepageLimit { PageSize = "1GB", Limit = 0 } },
            },
            SecurityContext = new LinuxContainerSecurityContext
            {
                Capabilities = new Capability { AddCapabilities = { "NET_ADMIN", "CAP_SYS_TIME", "sys_ptrace" }, DropCapabilities = { "ALL" }, AddAmbientCapabilities = { "NET_BIND_SERVICE" } },
                RunAsUser = new Int64Value { Value = 1000 }, RunAsGroup = new Int64Value { Value = 3000 }, SupplementalGroups = { 2000, 2147483647 },
                // The kubelet's defaults (containerd's and CRI-O's too).
                MaskedPaths = { "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware" },
                ReadonlyPaths = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger" },
            },
        },
    };

    private static InvalidArgumentException Refused(ContainerConfig c, bool cgroupV2 = false) =>
        Assert.Throws<InvalidArgumentException>(() => ContainerConfigValidation.Validate(c, cgroupV2, NodePageSizes));

    [Fact]
    public void What_the_kubelet_sends_passes()
    {
        ContainerConfigValidation.Validate(Kubelet(), cgroupV2: false, NodePageSizes);
        ContainerConfigValidation.Validate(Kubelet(), cgroupV2: true, hugepageSizes: null);
        ContainerConfigValidation.Validate(new ContainerConfig { Metadata = new ContainerMetadata { Name = "bare" } }, false, NodePageSizes);
        var unlimitedSwap = Kubelet();
        unlimitedSwap.Linux.Resources.MemorySwapLimitInBytes = -1;
        ContainerConfigValidation.Validate(unlimitedSwap, false, NodePageSizes);
        var v2 = Kubelet();
        v2.Linux.Resources.Unified.Add("memory.high", "100000000");
        ContainerConfigValidation.Validate(v2, cgroupV2: true, NodePageSizes);
    }

    [Theory]
    [InlineData("working_dir", "config.working_dir")]
    [InlineData("env_empty", "config.envs[2].key is empty")]
    [InlineData("env_eq", "config.envs[2].key 'A=B'")]
    [InlineData("env_nul", "config.envs[2].key")]
    [InlineData("env_value_nul", "config.envs[2].value")]
    [InlineData("arg_nul", "config.command[0]")]
    [InlineData("cpu_shares", "config.linux.resources.cpu_shares -2")]
    [InlineData("cpu_quota", "config.linux.resources.cpu_quota -1")]
    [InlineData("cpu_quota_small", "config.linux.resources.cpu_quota 10")]
    [InlineData("cpu_quota_huge", "config.linux.resources.cpu_quota 9223372036854775807 is above")]
    [InlineData("cpu_shares_huge", "config.linux.resources.cpu_shares 262145 is above")]
    [InlineData("uid_huge", "config.linux.security_context.run_as_user 2147483648 is outside")]
    [InlineData("gid_negative", "config.linux.security_context.run_as_group -1 is outside")]
    [InlineData("supplemental_huge", "config.linux.security_context.supplemental_groups[3] 4294967296 is outside")]
    [InlineData("readonly_repeated", "config.linux.security_context.readonly_paths[1] '/' is listed twice")]
    [InlineData("masked_relative", "config.linux.security_context.masked_paths[0] 'proc/kcore' is not an absolute path")]
    [InlineData("masked_many", "config.linux.security_context.masked_paths has 257 entries")]
    [InlineData("cpu_shares_one", "config.linux.resources.cpu_shares 1 is below the minimum of 2")]
    [InlineData("swap_without_memory", "config.linux.resources.memory_swap_limit_in_bytes 2147483648 needs memory_limit_in_bytes")]
    [InlineData("cpu_period", "config.linux.resources.cpu_period 5")]
    [InlineData("memory_negative", "config.linux.resources.memory_limit_in_bytes -5")]
    [InlineData("memory_small", "config.linux.resources.memory_limit_in_bytes 4096")]
    [InlineData("swap_below_memory", "config.linux.resources.memory_swap_limit_in_bytes")]
    [InlineData("swap_negative", "config.linux.resources.memory_swap_limit_in_bytes -2")]
    [InlineData("oom_low", "config.linux.resources.oom_score_adj -1001")]
    [InlineData("oom_high", "config.linux.resources.oom_score_adj 1001")]
    [InlineData("cpuset_cpus", "config.linux.resources.cpuset_cpus")]
    [InlineData("cpuset_mems", "config.linux.resources.cpuset_mems")]
    [InlineData("hugepage_form", "config.linux.resources.hugepage_limits[0].page_size '2M'")]
    [InlineData("hugepage_not_pow2", "config.linux.resources.hugepage_limits[1].page_size '3MB'")]
    [InlineData("hugepage_not_on_node", "config.linux.resources.hugepage_limits[0].page_size '64KB' is not a huge page size of this node")]
    [InlineData("unified_v1", "config.linux.resources.unified is set, but this node uses cgroup v1")]
    [InlineData("cap_add", "add_capabilities[3] 'CAP_NOPE'")]
    [InlineData("cap_drop", "drop_capabilities[1] 'FLY'")]
    [InlineData("cap_ambient_all", "add_ambient_capabilities[1] 'ALL'")]
    [InlineData("propagation", "config.mounts[0].propagation 7")]
    [InlineData("device_relative", "config.devices[0].container_path 'dev/fuse'")]
    [InlineData("device_dotdot", "config.devices[0].container_path '/dev/../etc/passwd'")]
    [InlineData("device_host_relative", "config.devices[0].host_path 'fuse'")]
    [InlineData("log_absolute", "config.log_path '/var/log/x.log' is absolute")]
    [InlineData("log_dotdot", "config.log_path 'app/../../../etc/cron.d/x' holds '..'")]
    [InlineData("log_dir", "config.log_path 'app/' names a directory")]
    public void Values_no_runtime_can_use_are_refused_naming_the_field(string what, string expected)
    {
        var c = Kubelet();
        var r = c.Linux.Resources;
        var caps = c.Linux.SecurityContext.Capabilities;
        switch (what)
        {
            case "working_dir": c.WorkingDir = "srv"; break;
            case "env_empty": c.Envs.Add(new KeyValue { Key = "", Value = ByteString.CopyFromUtf8("x") }); break;
            case "env_eq": c.Envs.Add(new KeyValue { Key = "A=B", Value = ByteString.CopyFromUtf8("x") }); break;
            case "env_nul": c.Envs.Add(new KeyValue { Key = "A\0B", Value = ByteString.CopyFromUtf8("x") }); break;
            case "env_value_nul": c.Envs.Add(new KeyValue { Key = "A", Value = ByteString.CopyFrom(1, 0, 2) }); break;
            case "arg_nul": c.Command[0] = "/bin/app\0evil"; break;
            case "cpu_shares": r.CpuShares = -2; break;
            case "cpu_quota": r.CpuQuota = -1; break;
            case "cpu_quota_small": r.CpuQuota = 10; break;
            case "cpu_quota_huge": r.CpuQuota = long.MaxValue; break;
            case "cpu_shares_huge": r.CpuShares = 262_145; break;
            case "cpu_shares_one": r.CpuShares = 1; break;
            case "uid_huge": c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = 2147483648 }; break;
            case "gid_negative": c.Linux.SecurityContext.RunAsGroup = new Int64Value { Value = -1 }; break;
            case "supplemental_huge": c.Linux.SecurityContext.SupplementalGroups.Add([1000, 4294967296]); break;
            case "readonly_repeated": c.Linux.SecurityContext.ReadonlyPaths.Clear(); c.Linux.SecurityContext.ReadonlyPaths.Add(["/", "/"]); break;
            case "masked_relative": c.Linux.SecurityContext.MaskedPaths.Clear(); c.Linux.SecurityContext.MaskedPaths.Add("proc/kcore"); break;
            case "masked_many": c.Linux.SecurityContext.MaskedPaths.Clear(); c.Linux.SecurityContext.MaskedPaths.Add(Enumerable.Range(0, 257).Select(i => $"/m{i}")); break;
            case "swap_without_memory": r.MemoryLimitInBytes = 0; r.MemorySwapLimitInBytes = 2L << 30; break;
            case "cpu_period": r.CpuPeriod = 5; break;
            case "memory_negative": r.MemoryLimitInBytes = -5; break;
            case "memory_small": r.MemoryLimitInBytes = 4096; r.MemorySwapLimitInBytes = 0; break;
            case "swap_below_memory": r.MemorySwapLimitInBytes = 64 << 20; break;
            case "swap_negative": r.MemorySwapLimitInBytes = -2; break;
            case "oom_low": r.OomScoreAdj = -1001; break;
            case "oom_high": r.OomScoreAdj = 1001; break;
            case "cpuset_cpus": r.CpusetCpus = "0-3,x"; break;
            case "cpuset_mems": r.CpusetMems = "3-1"; break;
            case "hugepage_form": r.HugepageLimits[0].PageSize = "2M"; break;
            case "hugepage_not_pow2": r.HugepageLimits[1].PageSize = "3MB"; break;
            case "hugepage_not_on_node": r.HugepageLimits[0].PageSize = "64KB"; break;
            case "unified_v1": r.Unified.Add("memory.high", "1"); break;
            case "cap_add": caps.AddCapabilities.Add("CAP_NOPE"); break;
            case "cap_drop": caps.DropCapabilities.Add("FLY"); break;
            case "cap_ambient_all": caps.AddAmbientCapabilities.Add("ALL"); break;
            case "propagation": c.Mounts[0].Propagation = (MountPropagation)7; break;
            case "device_relative": c.Devices[0].ContainerPath = "dev/fuse"; break;
            case "device_dotdot": c.Devices[0].ContainerPath = "/dev/../etc/passwd"; break;
            case "device_host_relative": c.Devices[0].HostPath = "fuse"; break;
            case "log_absolute": c.LogPath = "/var/log/x.log"; break;
            case "log_dotdot": c.LogPath = "app/../../../etc/cron.d/x"; break;
            case "log_dir": c.LogPath = "app/"; break;
            default: throw new ArgumentException(what);
        }
        var e = Refused(c);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("memory.high", true)]
    [InlineData("cpu.max", true)]
    [InlineData("../escape.max", false)]
    [InlineData("sub/memory.max", false)]
    [InlineData("", false)]
    [InlineData("noperiod", false)]
    public void Unified_keys_on_v2_must_be_cgroup_file_names(string key, bool ok)
    {
        var c = Kubelet();
        c.Linux.Resources.Unified.Add(key, "1");
        if (ok) ContainerConfigValidation.Validate(c, cgroupV2: true, NodePageSizes);
        else Assert.Contains("config.linux.resources.unified key", Refused(c, cgroupV2: true).Message);
    }

    [Theory]
    [InlineData("0", true)]
    [InlineData("0-7", true)]
    [InlineData("0-3,8-11,16", true)]
    [InlineData("0-31:2/4", true)]
    [InlineData("1\n", true)]
    [InlineData("", true)]
    [InlineData("a", false)]
    [InlineData("0,", false)]
    [InlineData(",0", false)]
    [InlineData("-1", false)]
    [InlineData("3-1", false)]
    [InlineData("1-", false)]
    [InlineData(" 1", false)]
    [InlineData("+1", false)]
    [InlineData("0-9999999", false)]
    [InlineData("0:1/2", false)]
    [InlineData("0-7:3/2", false)]
    [InlineData("0-7:0/2", false)]
    [InlineData("٣", false)]
    public void Cpuset_lists_follow_the_kernel_grammar(string list, bool ok)
    {
        if (ok) LinuxResourcesValidation.ValidateCpuset(list, "f");
        else Assert.Throws<InvalidArgumentException>(() => LinuxResourcesValidation.ValidateCpuset(list, "f"));
    }

    [Fact]
    public void UpdateContainerResources_values_are_checked_the_same_way()
    {
        var bad = new LinuxContainerResources { CpusetCpus = "zz" };
        var e = Assert.Throws<InvalidArgumentException>(() => LinuxResourcesValidation.Validate(bad, "linux", cgroupV2: false, NodePageSizes));
        Assert.Contains("linux.cpuset_cpus 'zz'", e.Message);
        LinuxResourcesValidation.Validate(new LinuxContainerResources { CpuQuota = 20_000, CpuPeriod = 100_000, MemoryLimitInBytes = 64 << 20 }, "linux", false, NodePageSizes);
        // The extremes the kernel takes.
        LinuxResourcesValidation.Validate(new LinuxContainerResources { CpuQuota = (1L << 44) - 1, CpuShares = 262_144, CpuPeriod = 1_000_000, MemoryLimitInBytes = long.MaxValue }, "linux", false, NodePageSizes);
    }

    [Fact]
    public void Missing_devices_are_not_found_and_missing_kernel_mount_sources_invalid()
    {
        var existing = new HashSet<string> { "/dev/fuse", "/var/lib/kubelet/pods/x/volumes/data", "/proc/cpuinfo" };
        var c = Kubelet();
        ContainerConfigValidation.ValidateHostPaths(c, existing.Contains);

        c.Devices.Add(new Device { ContainerPath = "/dev/nope", HostPath = "/dev/nope-1234", Permissions = "r" });
        var missing = Assert.Throws<NotFoundException>(() => ContainerConfigValidation.ValidateHostPaths(c, existing.Contains));
        Assert.Contains("config.devices[1].host_path '/dev/nope-1234'", missing.Message);

        foreach (string source in new[] { "/proc/no-such-entry", "/sys/kernel/no-such", "/x/../proc/nope", "/sys" })
        {
            var m = Kubelet();
            m.Mounts.Add(new Mount { ContainerPath = "/k", HostPath = source });
            var e = Assert.Throws<InvalidArgumentException>(() => ContainerConfigValidation.ValidateHostPaths(m, existing.Contains));
            Assert.Contains($"config.mounts[1].host_path '{source}'", e.Message);
        }
        // Elsewhere a missing source is created, as the kubelet expects of hostPath volumes: not refused here.
        var elsewhere = Kubelet();
        elsewhere.Mounts.Add(new Mount { ContainerPath = "/k", HostPath = "/var/lib/new-dir" });
        ContainerConfigValidation.ValidateHostPaths(elsewhere, existing.Contains);
        // ...unless something on the way is a file: creating it could never work.
        var underFile = Kubelet();
        underFile.Mounts.Add(new Mount { ContainerPath = "/k", HostPath = "/etc/passwd/x/y" });
        existing.Add("/etc/passwd");
        var notDir = Assert.Throws<InvalidArgumentException>(() => ContainerConfigValidation.ValidateHostPaths(underFile, existing.Contains, p => p != "/etc/passwd"));
        Assert.Contains("config.mounts[1].host_path '/etc/passwd/x/y' does not exist and cannot be created: /etc/passwd is not a directory", notDir.Message);
        ContainerConfigValidation.ValidateHostPaths(elsewhere, existing.Contains, _ => true);
        Assert.False(ContainerConfigValidation.IsUnderKernelTree("/processes"));
        Assert.False(ContainerConfigValidation.IsUnderKernelTree("/system"));
    }

    [Theory]
    [InlineData("2MB")]
    [InlineData("1GB")]
    [InlineData("64KB")]
    public void Page_sizes_in_the_kubelet_form_pass_when_the_node_has_them(string size) =>
        LinuxResourcesValidation.ValidateHugepageSize(size, "f", new HashSet<string> { "64KB", "2MB", "1GB" });

    [Fact]
    public void The_nodes_page_sizes_are_named_as_the_kubelet_names_them()
    {
        string dir = Directory.CreateTempSubdirectory("criruntime-hugepages-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "hugepages-2048kB"));
            Directory.CreateDirectory(Path.Combine(dir, "hugepages-1048576kB"));
            Directory.CreateDirectory(Path.Combine(dir, "hugepages-64kB"));
            Assert.Equal(["1GB", "2MB", "64KB"], LinuxResourcesValidation.HostHugepageSizes(dir)!.Order());
            Assert.Null(LinuxResourcesValidation.HostHugepageSizes(Path.Combine(dir, "missing")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
