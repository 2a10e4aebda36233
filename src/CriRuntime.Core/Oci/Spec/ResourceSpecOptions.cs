using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>The container's cgroup and its limits (containerd's WithResources), also used on their own by UpdateContainerResources.</summary>
internal static class ResourceSpecOptions
{
    public static void WithCgroupsPath(RuntimeSpec spec, ContainerSpecInput input) => spec.Linux!.CgroupsPath = input.CgroupsPath;

    public static void WithOomScoreAdj(RuntimeSpec spec, ContainerSpecInput input) =>
        spec.Process!.OomScoreAdj = ClampOomScoreAdj((int)(input.Config.Linux?.Resources?.OomScoreAdj ?? 0));

    /// <summary>The CRI limits, and a device cgroup that denies every device: the device options open what the container may use.</summary>
    public static void WithResources(RuntimeSpec spec, ContainerSpecInput input)
    {
        var resources = FromCri(input.Config.Linux?.Resources, input.SwapLimitSupported ?? SwapLimitSupportedOnHost(), input.HugetlbAvailable);
        resources.Devices = [new SpecDeviceCgroup { Allow = false, Access = "rwm" }];
        spec.Linux!.Resources = resources;
    }

    /// <summary>CRI resources as OCI resources (containerd's WithResources); zero means "not set". Hugepage limits are
    /// left out without the hugetlb controller (<paramref name="hugetlbAvailable"/>), as containerd leaves them: the kubelet
    /// sends a limit (often zero) for every page size the node has, and runc or crun cannot set one without the controller.</summary>
    public static SpecLinuxResources FromCri(LinuxContainerResources? resources, bool swapLimitSupported, bool hugetlbAvailable = true)
    {
        var result = new SpecLinuxResources();
        if (resources is null) return result;
        var cpu = new SpecCpu();
        if (resources.CpuPeriod != 0) cpu.Period = (ulong)resources.CpuPeriod;
        if (resources.CpuQuota != 0) cpu.Quota = resources.CpuQuota;
        if (resources.CpuShares != 0) cpu.Shares = (ulong)resources.CpuShares;
        if (resources.CpusetCpus.Length > 0) cpu.Cpus = resources.CpusetCpus;
        if (resources.CpusetMems.Length > 0) cpu.Mems = resources.CpusetMems;
        if (cpu.Period is not null || cpu.Quota is not null || cpu.Shares is not null || cpu.Cpus is not null || cpu.Mems is not null)
            result.Cpu = cpu;

        var memory = new SpecMemory();
        if (resources.MemoryLimitInBytes != 0)
        {
            memory.Limit = resources.MemoryLimitInBytes;
            // Memory+swap equal to memory: the container does not swap unless asked to.
            if (swapLimitSupported) memory.Swap = resources.MemoryLimitInBytes;
        }
        if (resources.MemorySwapLimitInBytes != 0 && swapLimitSupported) memory.Swap = resources.MemorySwapLimitInBytes;
        if (memory.Limit is not null || memory.Swap is not null) result.Memory = memory;

        if (resources.HugepageLimits.Count > 0 && hugetlbAvailable)
            result.HugepageLimits = resources.HugepageLimits.Select(h => new SpecHugepageLimit { PageSize = h.PageSize, Limit = h.Limit }).ToList();
        if (resources.Unified.Count > 0) result.Unified = new Dictionary<string, string>(resources.Unified);
        return result;
    }

    /// <summary>Whether this host limits memory+swap: cgroup v1 with swap accounting, or cgroup v2.</summary>
    public static bool SwapLimitSupportedOnHost() =>
        File.Exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") || File.Exists("/sys/fs/cgroup/cgroup.controllers");

    /// <summary>Whether this host has the hugetlb controller (<see cref="Native.Cgroups.HasHugetlb"/>), probed once.</summary>
    public static bool HugetlbAvailableOnHost() => hugetlbOnHost.Value;

    private static readonly Lazy<bool> hugetlbOnHost = new(() =>
    {
        try
        {
            return Native.Cgroups.Detect().HasHugetlb;
        }
        catch (InvalidOperationException)
        {
            return false; // no cgroup hierarchy at all: no hugetlb either
        }
    });

    /// <summary>
    /// The lowest oom_score_adj this daemon may hand out. Going below one's own value needs
    /// CAP_SYS_RESOURCE; without it (in some containers and sandboxes) runc's write fails with EPERM
    /// and nothing can start, so the value is clamped to our own, as containerd's
    /// restrict_oom_score_adj does.
    /// </summary>
    public static int OomScoreAdjFloor => oomScoreAdjFloor.Value;

    private static readonly Lazy<int> oomScoreAdjFloor = new(() =>
    {
        const int CapSysResource = 24;
        try
        {
            string? capEff = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
            if (capEff is not null && (Convert.ToUInt64(capEff["CapEff:".Length..].Trim(), 16) & (1UL << CapSysResource)) != 0) return -1000;
            return int.Parse(File.ReadAllText("/proc/self/oom_score_adj").Trim());
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
        {
            return -1000;
        }
    });

    public static int ClampOomScoreAdj(int requested) => Math.Max(requested, OomScoreAdjFloor);
}
