using System.Globalization;
using Runtime.V1;

namespace CriRuntime.Oci;

/// <summary>
/// Checks a container's Linux resources before runc or crun sees them (CreateContainer and UpdateContainerResources),
/// so a value the runtime or the kernel would refuse answers InvalidArgument naming the field instead of the
/// runtime's error as Unknown. Only values nothing could ever accept are refused; zero still means "not set".
/// </summary>
public static class LinuxResourcesValidation
{
    /// <summary>
    /// The smallest memory limit accepted. runc has no minimum of its own: below a few MiB the kernel refuses the
    /// limit (v1: EBUSY, the runtime's init already uses more) or kills the container's first process at once.
    /// Docker refuses less than 6 MiB; this is that floor.
    /// </summary>
    public const long MinMemoryLimitBytes = 6 * 1024 * 1024;

    /// <summary>The kernel's range for cpu.cfs_period_us (1 ms to 1 s).</summary>
    public const long MinCpuPeriod = 1000, MaxCpuPeriod = 1_000_000;

    /// <summary>The kernel's smallest cpu.cfs_quota_us (1 ms); the kubelet never sends less.</summary>
    public const long MinCpuQuota = 1000;

    /// <summary>The kernel's largest cpu.cfs_quota_us (2^44 - 1 microseconds: its bandwidth is kept in 44 bits).</summary>
    public const long MaxCpuQuota = (1L << 44) - 1;

    /// <summary>The largest cpu.shares: the kernel's v1 maximum and the kubelet's; runc's v2 conversion of a larger one fails.</summary>
    public const long MaxCpuShares = 262_144;

    /// <summary>The highest CPU or memory-node number a list may name (the kernel's NR_CPUS is at most 8192).</summary>
    public const int MaxCpusetIndex = 1 << 16;

    /// <summary>
    /// Throws <see cref="InvalidArgumentException"/> naming the first bad field, under <paramref name="prefix"/>
    /// (e.g. "config.linux.resources"). <paramref name="cgroupV2"/>: the node's cgroup version (unified keys need v2).
    /// <paramref name="hugepageSizes"/>: the node's huge page sizes in the kubelet's form ("2MB", "1GB"), or null when
    /// they cannot be read (then only the form is checked).
    /// </summary>
    public static void Validate(LinuxContainerResources? resources, string prefix, bool cgroupV2, IReadOnlySet<string>? hugepageSizes)
    {
        if (resources is null) return;
        if (resources.CpuShares < 0)
            throw new InvalidArgumentException($"{prefix}.cpu_shares {resources.CpuShares} is negative; give a positive weight, or 0 for the default");
        // The kubelet never sends 1 (its smallest weight is 2); runc refuses it on both cgroup versions.
        if (resources.CpuShares == 1)
            throw new InvalidArgumentException($"{prefix}.cpu_shares 1 is below the minimum of 2; give 2 or more, or 0 for the default");
        if (resources.CpuShares > MaxCpuShares)
            throw new InvalidArgumentException($"{prefix}.cpu_shares {resources.CpuShares} is above the kernel's maximum of {MaxCpuShares}");
        if (resources.CpuQuota > MaxCpuQuota)
            throw new InvalidArgumentException($"{prefix}.cpu_quota {resources.CpuQuota} is above the kernel's maximum of {MaxCpuQuota} microseconds");
        if (resources.CpuQuota < 0)
            throw new InvalidArgumentException($"{prefix}.cpu_quota {resources.CpuQuota} is negative; give microseconds per period, or 0 for no limit");
        if (resources.CpuQuota is > 0 and < MinCpuQuota)
            throw new InvalidArgumentException($"{prefix}.cpu_quota {resources.CpuQuota} is below the kernel's minimum of {MinCpuQuota} microseconds");
        if (resources.CpuPeriod != 0 && resources.CpuPeriod is < MinCpuPeriod or > MaxCpuPeriod)
            throw new InvalidArgumentException(
                $"{prefix}.cpu_period {resources.CpuPeriod} is outside the kernel's range {MinCpuPeriod}..{MaxCpuPeriod} microseconds (0 for the default)");

        if (resources.MemoryLimitInBytes < 0)
            throw new InvalidArgumentException($"{prefix}.memory_limit_in_bytes {resources.MemoryLimitInBytes} is negative; give bytes, or 0 for no limit");
        if (resources.MemoryLimitInBytes is > 0 and < MinMemoryLimitBytes)
            throw new InvalidArgumentException(
                $"{prefix}.memory_limit_in_bytes {resources.MemoryLimitInBytes} is below the minimum of {MinMemoryLimitBytes} bytes (6 MiB): the container could not even start");
        // -1 is how the kubelet asks for unlimited swap.
        if (resources.MemorySwapLimitInBytes < -1)
            throw new InvalidArgumentException($"{prefix}.memory_swap_limit_in_bytes {resources.MemorySwapLimitInBytes} is negative; give bytes, -1 for unlimited or 0 for the default");
        // Memory plus swap cannot be bounded while memory is not: the kernel (v1) and runc (v2) refuse it.
        if (resources.MemorySwapLimitInBytes > 0 && resources.MemoryLimitInBytes == 0)
            throw new InvalidArgumentException(
                $"{prefix}.memory_swap_limit_in_bytes {resources.MemorySwapLimitInBytes} needs memory_limit_in_bytes too; set both, or -1 or 0 for swap");
        if (resources.MemorySwapLimitInBytes > 0 && resources.MemoryLimitInBytes > 0 && resources.MemorySwapLimitInBytes < resources.MemoryLimitInBytes)
            throw new InvalidArgumentException(
                $"{prefix}.memory_swap_limit_in_bytes {resources.MemorySwapLimitInBytes} is below memory_limit_in_bytes {resources.MemoryLimitInBytes}; it counts memory plus swap, so it must be at least the memory limit");

        if (resources.OomScoreAdj is < -1000 or > 1000)
            throw new InvalidArgumentException($"{prefix}.oom_score_adj {resources.OomScoreAdj} is outside the kernel's range -1000..1000");

        ValidateCpuset(resources.CpusetCpus, $"{prefix}.cpuset_cpus");
        ValidateCpuset(resources.CpusetMems, $"{prefix}.cpuset_mems");

        for (int i = 0; i < resources.HugepageLimits.Count; i++)
            ValidateHugepageSize(resources.HugepageLimits[i].PageSize, $"{prefix}.hugepage_limits[{i}].page_size", hugepageSizes);

        if (resources.Unified.Count > 0)
        {
            if (!cgroupV2)
                throw new InvalidArgumentException($"{prefix}.unified is set, but this node uses cgroup v1; unified cgroup settings need a cgroup v2 node");
            foreach (string key in resources.Unified.Keys)
            {
                // A cgroup interface file of the container's own cgroup: "controller.file", never a path.
                if (key.Length == 0 || key.Contains('/') || key.Contains('\0') || key is "." or ".." || !key.Contains('.'))
                    throw new InvalidArgumentException(
                        $"{prefix}.unified key '{Preview(key)}' is not a cgroup interface file name such as memory.high");
            }
        }
    }

    /// <summary>A kernel cpu or memory-node list: "", or comma-separated N, N-M or N-M:used/group items, N &lt;= M.</summary>
    public static void ValidateCpuset(string value, string field)
    {
        if (string.IsNullOrEmpty(value)) return;
        // The kernel accepts one trailing newline (what `echo` writes); nothing else around the list.
        string list = value.EndsWith('\n') ? value[..^1] : value;
        foreach (string item in list.Split(','))
        {
            if (!TryParseCpusetItem(item))
                throw new InvalidArgumentException(
                    $"{field} '{Preview(value)}' is not a CPU or node list: '{Preview(item)}' is not N, N-M or N-M:used/group with N <= M <= {MaxCpusetIndex} (e.g. 0-3,8)");
        }
    }

    private static bool TryParseCpusetItem(string item)
    {
        string range = item, stride = "";
        int colon = item.IndexOf(':');
        if (colon >= 0) { range = item[..colon]; stride = item[(colon + 1)..]; }
        int dash = range.IndexOf('-');
        if (dash < 0) return colon < 0 && TryIndex(range, out _);
        if (!TryIndex(range[..dash], out int first) || !TryIndex(range[(dash + 1)..], out int last) || first > last) return false;
        if (colon < 0) return true;
        int slash = stride.IndexOf('/');
        return slash > 0 && TryIndex(stride[..slash], out int used) && TryIndex(stride[(slash + 1)..], out int group)
            && used > 0 && group > 0 && used <= group;
    }

    private static bool TryIndex(string text, out int value)
    {
        value = 0;
        // Digits only: int.Parse alone would take signs, spaces and other digit scripts.
        if (text.Length is 0 or > 6 || !text.All(char.IsAsciiDigit)) return false;
        value = int.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);
        return value <= MaxCpusetIndex;
    }

    /// <summary>
    /// A huge page size as the kubelet sends it and runc names hugetlb files: a power of two followed by KB, MB or GB
    /// ("2MB", "1GB", "64KB"); when the node's sizes are known it must be one of them.
    /// </summary>
    public static void ValidateHugepageSize(string pageSize, string field, IReadOnlySet<string>? hugepageSizes)
    {
        if (!IsHugepageSizeForm(pageSize))
            throw new InvalidArgumentException($"{field} '{Preview(pageSize)}' is not a huge page size; give a power of two with KB, MB or GB, such as 2MB or 1GB");
        if (hugepageSizes is not null && !hugepageSizes.Contains(pageSize))
            throw new InvalidArgumentException(
                $"{field} '{pageSize}' is not a huge page size of this node; it has {(hugepageSizes.Count == 0 ? "none" : string.Join(", ", hugepageSizes.Order()))}");
    }

    private static bool IsHugepageSizeForm(string pageSize)
    {
        if (pageSize.Length < 3 || pageSize.Length > 12) return false;
        string unit = pageSize[^2..];
        if (unit is not ("KB" or "MB" or "GB")) return false;
        string number = pageSize[..^2];
        if (!number.All(char.IsAsciiDigit) || number.StartsWith('0')
            || !long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out long n)) return false;
        return long.IsPow2(n);
    }

    /// <summary>The node's huge page sizes in the kubelet's form, from /sys/kernel/mm/hugepages; null when unreadable.</summary>
    public static IReadOnlySet<string>? HostHugepageSizes(string dir = "/sys/kernel/mm/hugepages")
    {
        try
        {
            var sizes = new HashSet<string>(StringComparer.Ordinal);
            foreach (string entry in Directory.EnumerateDirectories(dir, "hugepages-*kB"))
            {
                string kb = Path.GetFileName(entry)["hugepages-".Length..^"kB".Length];
                if (long.TryParse(kb, NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n > 0) sizes.Add(KubeletPageSize(n * 1024));
            }
            return sizes;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Bytes as the kubelet and runc name a page size: the largest unit that divides it evenly.</summary>
    internal static string KubeletPageSize(long bytes) =>
        bytes % (1L << 30) == 0 ? $"{bytes >> 30}GB" : bytes % (1L << 20) == 0 ? $"{bytes >> 20}MB" : $"{bytes >> 10}KB";

    internal static string Preview(string value) => value.Length <= 64 ? value : value[..64] + "...";
}
