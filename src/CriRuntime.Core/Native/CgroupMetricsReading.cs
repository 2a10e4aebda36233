namespace CriRuntime.Native;

/// <summary>
/// The cgroup figures the CRI metrics RPCs report beyond <see cref="CgroupUsage"/> (cadvisor's names in brackets):
/// user and system CPU time, CFS periods and throttling, page cache, mapped files, kernel memory, peak usage,
/// limit hits. Nanoseconds and bytes; 0 where this kernel or cgroup version has no such file.
/// </summary>
public sealed record CgroupMetricsDetail(
    ulong CpuUserNanoseconds,
    ulong CpuSystemNanoseconds,
    ulong CfsPeriods,
    ulong CfsThrottledPeriods,
    ulong CfsThrottledNanoseconds,
    ulong MemoryCacheBytes,
    ulong MemoryMappedFileBytes,
    ulong MemoryKernelBytes,
    ulong MemoryMaxUsageBytes,
    ulong MemoryFailcnt);

public sealed partial class Cgroups
{
    // cpuacct.stat counts in USER_HZ, which is 100 on every Linux architecture's ABI.
    private const ulong NanosecondsPerUserHzTick = 10_000_000;

    /// <summary>The details of the cgroup at <paramref name="path"/>, or null when it does not exist.</summary>
    public CgroupMetricsDetail? ReadMetricsDetail(string path)
    {
        path = NormalizePath(path, allowRoot: true);
        if (!Exists(path)) return null;
        if (IsUnified)
        {
            string dir = DirOf(hierarchies[0], path);
            var cpu = ReadFlatKeyed(Path.Combine(dir, "cpu.stat"));
            var memory = ReadFlatKeyed(Path.Combine(dir, "memory.stat"));
            ulong kernel = memory.TryGetValue("kernel", out ulong k) ? k : memory.GetValueOrDefault("kernel_stack") + memory.GetValueOrDefault("slab");
            return new CgroupMetricsDetail(
                cpu.GetValueOrDefault("user_usec") * 1000, cpu.GetValueOrDefault("system_usec") * 1000,
                cpu.GetValueOrDefault("nr_periods"), cpu.GetValueOrDefault("nr_throttled"), cpu.GetValueOrDefault("throttled_usec") * 1000,
                memory.GetValueOrDefault("file"), memory.GetValueOrDefault("file_mapped"), kernel,
                ReadNumber(Path.Combine(dir, "memory.peak")) ?? 0,
                ReadKeyed(Path.Combine(dir, "memory.events"), "max") ?? 0);
        }
        var cpuacct = ControllerDir("cpuacct", path) is { } a ? ReadFlatKeyed(Path.Combine(a, "cpuacct.stat")) : new Dictionary<string, ulong>();
        var cfs = ControllerDir("cpu", path) is { } c ? ReadFlatKeyed(Path.Combine(c, "cpu.stat")) : new Dictionary<string, ulong>();
        string? mem = ControllerDir("memory", path);
        var stat = mem is null ? new Dictionary<string, ulong>() : ReadFlatKeyed(Path.Combine(mem, "memory.stat"));
        return new CgroupMetricsDetail(
            cpuacct.GetValueOrDefault("user") * NanosecondsPerUserHzTick, cpuacct.GetValueOrDefault("system") * NanosecondsPerUserHzTick,
            cfs.GetValueOrDefault("nr_periods"), cfs.GetValueOrDefault("nr_throttled"), cfs.GetValueOrDefault("throttled_time"),
            stat.GetValueOrDefault("total_cache"), stat.GetValueOrDefault("total_mapped_file"),
            mem is null ? 0 : ReadNumber(Path.Combine(mem, "memory.kmem.usage_in_bytes")) ?? 0,
            mem is null ? 0 : ReadNumber(Path.Combine(mem, "memory.max_usage_in_bytes")) ?? 0,
            mem is null ? 0 : ReadNumber(Path.Combine(mem, "memory.failcnt")) ?? 0);
    }
}
