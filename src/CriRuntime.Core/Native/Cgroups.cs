using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using Runtime.V1;

namespace CriRuntime.Native;

/// <summary>What a cgroup subtree uses right now, in the units the CRI stats messages use.</summary>
/// <param name="MemoryRssBytes">Anonymous memory and swap cache (v1 total_rss, v2 anon).</param>
/// <param name="MemoryLimitBytes">The memory limit; null when unlimited.</param>
/// <param name="SwapUsageBytes">Swap in use; null where the kernel does not account swap for this cgroup.</param>
/// <param name="SwapLimitBytes">The swap limit (v2 memory.swap.max; v1 memsw limit minus memory limit); null when unlimited or unknown.</param>
public sealed record CgroupUsage(
    ulong CpuUsageNanoseconds,
    ulong MemoryUsageBytes,
    ulong MemoryWorkingSetBytes,
    ulong Pids,
    ulong MemoryRssBytes = 0,
    ulong PageFaults = 0,
    ulong MajorPageFaults = 0,
    ulong? MemoryLimitBytes = null,
    ulong? SwapUsageBytes = null,
    ulong? SwapLimitBytes = null);

/// <summary>
/// cgroupfs-driver cgroups, the way runc lays them out: cgroup v1 (one hierarchy per controller
/// or group of co-mounted controllers, name=systemd included; on a hybrid host also the cgroup2 mount
/// under the root, as runc does) or the cgroup v2 unified hierarchy. Paths are cgroupfs style,
/// absolute within each hierarchy: <c>/kubepods/besteffort/pod&lt;uid&gt;</c>.
/// </summary>
public sealed partial class Cgroups
{
    // The v1 controllers runc's fs manager knows; a hierarchy with none of these is not runc's business.
    private static readonly string[] RuncV1Controllers =
        ["cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb", "net_cls", "net_prio",
         "perf_event", "freezer", "rdma", "misc", "name=systemd"];

    // What a pod's cgroup needs delegated on v2 (hugetlb only when the kernel offers it, for hugepage limits).
    private static readonly string[] V2Controllers = ["cpuset", "cpu", "io", "memory", "pids", "hugetlb"];

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);

    private sealed record Hierarchy(string MountPoint, IReadOnlySet<string> Controllers, bool IsV2);

    private readonly IReadOnlyList<Hierarchy> hierarchies;

    private Cgroups(string mountRoot, bool unified, IReadOnlyList<Hierarchy> hierarchies, bool hasHugetlb)
    {
        MountRoot = mountRoot;
        IsUnified = unified;
        this.hierarchies = hierarchies;
        HasHugetlb = hasHugetlb;
    }

    /// <summary>
    /// Whether the hugetlb controller is there for containers: on v1 a hierarchy with it is mounted; on v2 the kernel has
    /// it and the root's cgroup.controllers offers it. Without it hugepage limits are skipped rather than handed to runc.
    /// </summary>
    public bool HasHugetlb { get; }

    /// <summary>Where the hierarchies were found, e.g. /sys/fs/cgroup.</summary>
    public string MountRoot { get; }

    /// <summary>True on a pure cgroup v2 host; false for v1 and hybrid.</summary>
    public bool IsUnified { get; }

    /// <summary>Every hierarchy mount point a cgroup is created in.</summary>
    public IReadOnlyList<string> HierarchyMountPoints => hierarchies.Select(h => h.MountPoint).ToList();

    /// <summary>v1 per-controller hierarchies (hybrid too) or v2 unified, from /proc/self/mountinfo.</summary>
    public static Cgroups Detect(string mountRoot = "/sys/fs/cgroup") => Detect(mountRoot, Mounts.ReadMountInfo(), KernelControllers());

    internal static Cgroups Detect(string mountRoot, IReadOnlyList<MountInfo> mounts, IReadOnlySet<string> kernelControllers)
    {
        ArgumentException.ThrowIfNullOrEmpty(mountRoot);
        mountRoot = mountRoot.Length > 1 ? mountRoot.TrimEnd('/') : mountRoot;

        // Later lines of mountinfo are mounted on top of earlier ones at the same mount point.
        var top = new Dictionary<string, MountInfo>(StringComparer.Ordinal);
        foreach (var m in mounts) top[m.MountPoint] = m;

        if (top.TryGetValue(mountRoot, out var atRoot) && atRoot.FsType == "cgroup2")
            return new Cgroups(mountRoot, unified: true, [new Hierarchy(mountRoot, V2Controllers.ToHashSet(), IsV2: true)],
                hasHugetlb: kernelControllers.Contains("hugetlb") && RootOffers(mountRoot, "hugetlb"));

        var found = new List<Hierarchy>();
        var seenDevices = new HashSet<(uint, uint)>();
        foreach (var m in top.Values.OrderBy(m => m.MountPoint, StringComparer.Ordinal))
        {
            if (Path.GetDirectoryName(m.MountPoint) != mountRoot || m.FsType is not ("cgroup" or "cgroup2")) continue;
            if (!seenDevices.Add((m.Major, m.Minor))) continue;  // the same hierarchy mounted twice
            if (m.FsType == "cgroup2")
            {
                // Hybrid: runc also places containers in the unified hierarchy, without controllers.
                found.Add(new Hierarchy(m.MountPoint, new HashSet<string>(), IsV2: true));
                continue;
            }
            var controllers = m.SuperOptions.Split(',')
                .Where(o => o.StartsWith("name=", StringComparison.Ordinal) || kernelControllers.Contains(o))
                .ToHashSet(StringComparer.Ordinal);
            if (controllers.Overlaps(RuncV1Controllers)) found.Add(new Hierarchy(m.MountPoint, controllers, IsV2: false));
        }
        if (!found.Any(h => !h.IsV2))
            throw new InvalidOperationException(
                $"no cgroup v1 or v2 hierarchy is mounted at or under {mountRoot}; mount cgroup2 there or the v1 controllers under it");
        return new Cgroups(mountRoot, unified: false, found, hasHugetlb: found.Any(h => !h.IsV2 && h.Controllers.Contains("hugetlb")));
    }

    /// <summary>Whether the v2 root's cgroup.controllers names <paramref name="controller"/>; true when it cannot be read
    /// (the kernel's list, already checked, is then all there is to go by).</summary>
    private static bool RootOffers(string mountRoot, string controller) =>
        ReadText(Path.Combine(mountRoot, "cgroup.controllers")) is not { } offered
        || offered.Split(' ', '\n', StringSplitOptions.RemoveEmptyEntries).Contains(controller);

    /// <summary>True when the cgroup directory exists in any hierarchy.</summary>
    public bool Exists(string path)
    {
        path = NormalizePath(path, allowRoot: true);
        return hierarchies.Any(h => Directory.Exists(DirOf(h, path)));
    }

    /// <summary>
    /// For each hierarchy (by mount point), how many leading levels of <paramref name="path"/> exist now: what a
    /// later <see cref="Create"/> makes is the rest, so this is what <see cref="RemoveCreatedLevels"/> must keep.
    /// </summary>
    public IReadOnlyDictionary<string, int> ExistingLevels(string path)
    {
        path = NormalizePath(path, allowRoot: false);
        var components = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var levels = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var h in hierarchies)
        {
            // mkdir -p makes a level only below ones that exist, so the existing levels are a prefix.
            string dir = h.MountPoint;
            int depth = 0;
            while (depth < components.Length && Directory.Exists(dir = Path.Combine(dir, components[depth]))) depth++;
            levels[h.MountPoint] = depth;
        }
        return levels;
    }

    /// <summary>
    /// Removes the levels of <paramref name="path"/> below those that existed before it was made (as
    /// <see cref="ExistingLevels"/> said then), deepest first, in every hierarchy; a level is only rmdir'ed, so one
    /// that holds another cgroup or a process stays (another pod may have been put under a level we made). A
    /// hierarchy missing from <paramref name="existingLevels"/> is left alone: nothing is known of what it held.
    /// Returns the levels that stayed for such reasons; missing ones are fine.
    /// </summary>
    public IReadOnlyList<string> RemoveCreatedLevels(string path, IReadOnlyDictionary<string, int> existingLevels)
    {
        path = NormalizePath(path, allowRoot: false);
        var components = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var kept = new List<string>();
        foreach (var h in hierarchies)
        {
            if (!existingLevels.TryGetValue(h.MountPoint, out int keep)) continue;
            for (int depth = components.Length; depth > Math.Max(keep, 0); depth--)
            {
                string dir = h.MountPoint + "/" + string.Join('/', components, 0, depth);
                if (RemoveDirectory(dir, out int errno)) continue;
                if (errno is not (Errno.EBUSY or Errno.ENOTEMPTY))
                    throw new NativeException("rmdir", dir, errno, $"remove cgroup level {dir} that the pod's cgroup parent created: rmdir");
                kept.Add(dir);
                break;  // its ancestors are not empty either
            }
        }
        return kept;
    }

    /// <summary>
    /// mkdir -p in every hierarchy runc would use. v1 cpuset: empty cpuset.cpus/mems are filled from the
    /// parent, or no process could join. v2: the pod's controllers are enabled in each ancestor's
    /// cgroup.subtree_control. Directories created here are removed again if a later step fails.
    /// </summary>
    public void Create(string path)
    {
        path = NormalizePath(path, allowRoot: false);
        var created = new List<string>();
        try
        {
            var components = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
            foreach (var h in hierarchies)
            {
                // A level another pod made may be removed with that pod while this walk is below it (ENOENT on the
                // next mkdir or control file write, ENODEV on reading a control file of the removed level): walk
                // again from the top, which makes it anew. Bounded, in case it keeps happening.
                for (int attempt = 1; ; attempt++)
                {
                    try
                    {
                        string dir = h.MountPoint;
                        foreach (var component in components)
                        {
                            if (IsUnified) EnableV2Controllers(dir);
                            dir = Path.Combine(dir, component);
                            if (MakeDirectory(dir)) created.Add(dir);
                            if (h.Controllers.Contains("cpuset") && !h.IsV2) InheritCpuset(dir);
                        }
                        break;
                    }
                    catch (IOException e) when (attempt < 10 && (e is not NativeException native || native.Errno is Errno.ENOENT or Errno.ENODEV))
                    {
                    }
                }
            }
        }
        catch
        {
            for (int i = created.Count - 1; i >= 0; i--) RemoveDirectory(created[i], out _);
            throw;
        }
    }

    /// <summary>
    /// Applies CPU shares/quota/period, cpuset, memory (and swap) limits, hugepage limits and, on v2,
    /// the raw unified map. Zero fields are left alone, as the CRI means "not set"; null does nothing.
    /// </summary>
    public void SetResources(string path, LinuxContainerResources? resources)
    {
        path = NormalizePath(path, allowRoot: false);
        if (resources is null) return;
        if (!Exists(path)) throw new InvalidOperationException($"cgroup {path} does not exist under {MountRoot}; Create it before setting resources");
        foreach (var limit in resources.HugepageLimits) HugepageSuffix(limit.PageSize);
        if (IsUnified) SetV2(path, resources);
        else SetV1(path, resources);
    }

    /// <summary>Moves a process into the cgroup in every hierarchy (cgroup.procs), as runc places a container's init.</summary>
    public void AddProcess(string path, int pid)
    {
        path = NormalizePath(path, allowRoot: false);
        if (pid <= 0) throw new ArgumentOutOfRangeException(nameof(pid), pid, "a pid is positive");
        foreach (var h in hierarchies)
            WriteControl(Path.Combine(DirOf(h, path), "cgroup.procs"), pid);
    }

    /// <summary>Every process in the subtree, in any hierarchy, sorted.</summary>
    public IReadOnlyList<int> Pids(string path)
    {
        path = NormalizePath(path, allowRoot: true);
        var pids = new SortedSet<int>();
        foreach (var h in hierarchies)
            foreach (var dir in SubtreeBottomUp(DirOf(h, path)))
                foreach (var line in ReadLines(Path.Combine(dir, "cgroup.procs")))
                    pids.Add(int.Parse(line, CultureInfo.InvariantCulture));
        return pids.ToList();
    }

    /// <summary>
    /// SIGKILLs every process in the subtree (v2: cgroup.kill when present; otherwise frozen first so
    /// nothing forks between listing and killing, then thawed so the kills land), waits until the
    /// subtree is empty (bounded by <paramref name="timeout"/>), then removes it bottom-up in every
    /// hierarchy. Idempotent; a missing cgroup is fine.
    /// </summary>
    public async Task KillAllAndRemoveAsync(string path, TimeSpan timeout, CancellationToken ct)
    {
        path = NormalizePath(path, allowRoot: false);
        if (!Exists(path)) return;
        var deadline = DateTime.UtcNow + timeout;

        var pids = Pids(path);
        if (pids.Contains(Environment.ProcessId))
            throw new InvalidOperationException($"refusing to kill cgroup {path}: it holds this daemon's own process {Environment.ProcessId}");

        if (pids.Count > 0)
        {
            string? killFile = IsUnified ? Path.Combine(DirOf(hierarchies[0], path), "cgroup.kill") : null;
            if (killFile is not null && File.Exists(killFile))
                WriteControl(killFile, "1");
            else
                await FreezeKillThawAsync(path, deadline, ct).ConfigureAwait(false);

            // A process in uninterruptible sleep dies only when its I/O returns; keep killing whatever is left
            // (also catches anything that was only in hierarchies the freezer does not cover).
            while ((pids = Pids(path)).Count > 0)
            {
                if (DateTime.UtcNow >= deadline)
                    throw new TimeoutException(
                        $"cgroup {path}: processes {string.Join(", ", pids)} still alive {timeout.TotalSeconds:0.###}s after SIGKILL " +
                        "(stuck in uninterruptible sleep?); the cgroup was left in place, retry later");
                foreach (int pid in pids) Signals.Kill(pid, Signals.SIGKILL);
                await Task.Delay(PollInterval, ct).ConfigureAwait(false);
            }
        }

        foreach (var h in hierarchies)
        {
            foreach (var dir in SubtreeBottomUp(DirOf(h, path)))
            {
                // "populated" drops a moment after the last exit; EBUSY until then.
                while (!RemoveDirectory(dir, out int errno))
                {
                    if (errno != Errno.EBUSY || DateTime.UtcNow >= deadline)
                        throw new NativeException("rmdir", dir, errno, $"remove cgroup {path}: rmdir");
                    await Task.Delay(PollInterval, ct).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>CPU, memory, swap and pid usage of the subtree; null when the cgroup does not exist.</summary>
    public CgroupUsage? ReadUsage(string path)
    {
        path = NormalizePath(path, allowRoot: true);
        if (!Exists(path)) return null;
        if (IsUnified)
        {
            string dir = DirOf(hierarchies[0], path);
            ulong cpuUsec = ReadKeyed(Path.Combine(dir, "cpu.stat"), "usage_usec") ?? 0;
            ulong memory = ReadNumber(Path.Combine(dir, "memory.current")) ?? 0;
            var stat = ReadFlatKeyed(Path.Combine(dir, "memory.stat"));
            ulong pids = ReadNumber(Path.Combine(dir, "pids.current")) ?? (ulong)Pids(path).Count;
            return new CgroupUsage(cpuUsec * 1000, memory, WorkingSet(memory, stat.GetValueOrDefault("inactive_file")), pids,
                MemoryRssBytes: stat.GetValueOrDefault("anon"),
                PageFaults: stat.GetValueOrDefault("pgfault"),
                MajorPageFaults: stat.GetValueOrDefault("pgmajfault"),
                MemoryLimitBytes: Limit(ReadText(Path.Combine(dir, "memory.max"))),
                SwapUsageBytes: ReadNumber(Path.Combine(dir, "memory.swap.current")),
                SwapLimitBytes: Limit(ReadText(Path.Combine(dir, "memory.swap.max"))));
        }
        else
        {
            ulong cpu = ControllerDir("cpuacct", path) is { } cpuacct ? ReadNumber(Path.Combine(cpuacct, "cpuacct.usage")) ?? 0 : 0;
            ulong pids = (ControllerDir("pids", path) is { } pidsDir ? ReadNumber(Path.Combine(pidsDir, "pids.current")) : null)
                ?? (ulong)Pids(path).Count;
            if (ControllerDir("memory", path) is not { } mem)
                return new CgroupUsage(cpu, 0, 0, pids);
            ulong memory = ReadNumber(Path.Combine(mem, "memory.usage_in_bytes")) ?? 0;
            // total_* count the whole subtree, as the usage file does.
            var stat = ReadFlatKeyed(Path.Combine(mem, "memory.stat"));
            ulong? limit = Limit(ReadText(Path.Combine(mem, "memory.limit_in_bytes")));
            // memsw exists only with swap accounting on; it counts memory plus swap.
            ulong? memsw = ReadNumber(Path.Combine(mem, "memory.memsw.usage_in_bytes"));
            ulong? memswLimit = Limit(ReadText(Path.Combine(mem, "memory.memsw.limit_in_bytes")));
            return new CgroupUsage(cpu, memory, WorkingSet(memory, stat.GetValueOrDefault("total_inactive_file")), pids,
                MemoryRssBytes: stat.GetValueOrDefault("total_rss"),
                PageFaults: stat.GetValueOrDefault("total_pgfault"),
                MajorPageFaults: stat.GetValueOrDefault("total_pgmajfault"),
                MemoryLimitBytes: limit,
                SwapUsageBytes: memsw is { } both ? (both > memory ? both - memory : 0) : null,
                SwapLimitBytes: memswLimit is { } l && limit is { } m ? (l > m ? l - m : 0) : null);
        }
    }

    /// <summary>
    /// A limit file's value, or null for no limit: v2 writes "max"; v1 writes a number near 2^63 rounded
    /// down to the page size (anything from 2^62 up is no real limit on any machine).
    /// </summary>
    internal static ulong? Limit(string? text)
    {
        if (text is null) return null;
        text = text.Trim();
        if (text == "max" || !ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong n)) return null;
        return n >= 1UL << 62 ? null : n;
    }

    /// <summary>How many processes the OOM killer killed in this cgroup: v1 memory.oom_control "oom_kill N", v2 memory.events "oom_kill N"; 0 if absent.</summary>
    public long OomKillCount(string path)
    {
        path = NormalizePath(path, allowRoot: true);
        string? file = IsUnified
            ? Path.Combine(DirOf(hierarchies[0], path), "memory.events")
            : ControllerDir("memory", path) is { } mem ? Path.Combine(mem, "memory.oom_control") : null;
        return file is null ? 0 : (long)(ReadKeyed(file, "oom_kill") ?? 0);
    }

    // ---- v1 / v2 resources ----

    private void SetV1(string path, LinuxContainerResources r)
    {
        if (r.Unified.Count > 0)
            throw new InvalidArgumentException(
                $"resources.unified ({string.Join(", ", r.Unified.Keys)}) can only be applied on a cgroup v2 host; this host uses cgroup v1", nameof(r));

        if (ControllerDir("cpu", path) is { } cpu)
        {
            if (r.CpuShares > 0) WriteControl(Path.Combine(cpu, "cpu.shares"), r.CpuShares);
            string period = Path.Combine(cpu, "cpu.cfs_period_us"), quota = Path.Combine(cpu, "cpu.cfs_quota_us");
            if (r.CpuPeriod > 0 && r.CpuQuota != 0)
            {
                // The kernel checks each write against the other value; if the new period is refused with the
                // old quota in place, the quota must go first.
                try { WriteControl(period, r.CpuPeriod); WriteControl(quota, r.CpuQuota); }
                catch (NativeException e) when (e.Errno == Errno.EINVAL) { WriteControl(quota, r.CpuQuota); WriteControl(period, r.CpuPeriod); }
            }
            else if (r.CpuPeriod > 0) WriteControl(period, r.CpuPeriod);
            else if (r.CpuQuota != 0) WriteControl(quota, r.CpuQuota);
        }
        else if (r.CpuShares > 0 || r.CpuPeriod > 0 || r.CpuQuota != 0)
            throw new InvalidOperationException($"cgroup {path}: CPU limits were requested but no cpu controller is mounted under {MountRoot}");

        if (ControllerDir("cpuset", path) is { } cpuset)
        {
            if (r.CpusetCpus.Length > 0) WriteControl(Path.Combine(cpuset, "cpuset.cpus"), ValidateCpuList(r.CpusetCpus, "cpuset_cpus"));
            if (r.CpusetMems.Length > 0) WriteControl(Path.Combine(cpuset, "cpuset.mems"), ValidateCpuList(r.CpusetMems, "cpuset_mems"));
        }

        if (ControllerDir("memory", path) is { } mem)
        {
            string limit = Path.Combine(mem, "memory.limit_in_bytes"), memsw = Path.Combine(mem, "memory.memsw.limit_in_bytes");
            bool setSwap = r.MemorySwapLimitInBytes != 0 && File.Exists(memsw);
            if (r.MemoryLimitInBytes != 0 && setSwap)
            {
                // memsw must stay >= limit after every single write: lowering goes limit-first, raising swap-first.
                try { WriteControl(limit, r.MemoryLimitInBytes); WriteControl(memsw, r.MemorySwapLimitInBytes); }
                catch (NativeException e) when (e.Errno == Errno.EINVAL) { WriteControl(memsw, r.MemorySwapLimitInBytes); WriteControl(limit, r.MemoryLimitInBytes); }
            }
            else if (r.MemoryLimitInBytes != 0) WriteControl(limit, r.MemoryLimitInBytes);
            else if (setSwap) WriteControl(memsw, r.MemorySwapLimitInBytes);
        }
        else if (r.MemoryLimitInBytes != 0)
            throw new InvalidOperationException($"cgroup {path}: a memory limit was requested but no memory controller is mounted under {MountRoot}");

        // Like runc: hugepage limits are skipped where the hugetlb controller is not mounted.
        if (ControllerDir("hugetlb", path) is { } hugetlb)
            foreach (var h in r.HugepageLimits)
                WriteControl(Path.Combine(hugetlb, $"hugetlb.{HugepageSuffix(h.PageSize)}.limit_in_bytes"), h.Limit.ToString(CultureInfo.InvariantCulture));
    }

    private void SetV2(string path, LinuxContainerResources r)
    {
        string dir = DirOf(hierarchies[0], path);
        if (r.CpuShares > 0) WriteControl(Path.Combine(dir, "cpu.weight"), SharesToWeight((ulong)r.CpuShares));
        if (r.CpuQuota != 0 || r.CpuPeriod > 0)
        {
            // "max" keeps the current period when none is given.
            string max = r.CpuQuota > 0 ? r.CpuQuota.ToString(CultureInfo.InvariantCulture) : "max";
            if (r.CpuPeriod > 0) max += " " + r.CpuPeriod.ToString(CultureInfo.InvariantCulture);
            WriteControl(Path.Combine(dir, "cpu.max"), max);
        }
        if (r.CpusetCpus.Length > 0) WriteControl(Path.Combine(dir, "cpuset.cpus"), ValidateCpuList(r.CpusetCpus, "cpuset_cpus"));
        if (r.CpusetMems.Length > 0) WriteControl(Path.Combine(dir, "cpuset.mems"), ValidateCpuList(r.CpusetMems, "cpuset_mems"));

        if (r.MemorySwapLimitInBytes != 0)
        {
            // CRI (like v1 memsw) counts memory+swap; v2's memory.swap.max is swap alone.
            string swap;
            if (r.MemorySwapLimitInBytes < 0) swap = "max";
            else if (r.MemoryLimitInBytes <= 0)
                throw new InvalidArgumentException("memory_swap_limit_in_bytes needs memory_limit_in_bytes on cgroup v2", nameof(r));
            else if (r.MemorySwapLimitInBytes < r.MemoryLimitInBytes)
                throw new InvalidArgumentException(
                    $"memory_swap_limit_in_bytes ({r.MemorySwapLimitInBytes}) is below memory_limit_in_bytes ({r.MemoryLimitInBytes}); it counts memory plus swap", nameof(r));
            else swap = (r.MemorySwapLimitInBytes - r.MemoryLimitInBytes).ToString(CultureInfo.InvariantCulture);
            string swapFile = Path.Combine(dir, "memory.swap.max");
            if (File.Exists(swapFile)) WriteControl(swapFile, swap);
        }
        if (r.MemoryLimitInBytes != 0)
            WriteControl(Path.Combine(dir, "memory.max"), r.MemoryLimitInBytes < 0 ? "max" : r.MemoryLimitInBytes.ToString(CultureInfo.InvariantCulture));

        if (Directory.EnumerateFiles(dir, "hugetlb.*.max").Any())
            foreach (var h in r.HugepageLimits)
                WriteControl(Path.Combine(dir, $"hugetlb.{HugepageSuffix(h.PageSize)}.max"), h.Limit.ToString(CultureInfo.InvariantCulture));

        foreach (var (key, value) in r.Unified)
        {
            if (!UnifiedKey().IsMatch(key))
                throw new InvalidArgumentException($"resources.unified key '{Namespaces.Printable(key)}' is not a cgroup v2 interface file name like memory.high", nameof(r));
            if (value.Contains('\n') || value.Contains('\0'))
                throw new InvalidArgumentException($"resources.unified[{key}] value '{Namespaces.Printable(value)}' contains a newline or NUL", nameof(r));
            WriteControl(Path.Combine(dir, key), value);
        }
    }

    /// <summary>cpu.shares (2..262144) to cpu.weight (1..10000), the mapping runc and the kubelet use.</summary>
    internal static string SharesToWeight(ulong shares)
    {
        shares = Math.Clamp(shares, 2, 262144);
        return (1 + (shares - 2) * 9999 / 262142).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>"2MB" / "1GB" as the CRI sends them, checked and returned as the kernel's file-name part.</summary>
    internal static string HugepageSuffix(string pageSize) =>
        HugepageSize().IsMatch(pageSize) ? pageSize
            : throw new InvalidArgumentException($"hugepage_limits page_size '{Namespaces.Printable(pageSize)}' must look like 2MB or 1GB", nameof(pageSize));

    private static string ValidateCpuList(string list, string field) =>
        CpuList().IsMatch(list) ? list
            : throw new InvalidArgumentException($"{field} '{Namespaces.Printable(list)}' is not a CPU/node list such as 0-3,6", field);

    [GeneratedRegex(@"^[0-9]+[KMG]B$")]
    private static partial Regex HugepageSize();

    [GeneratedRegex(@"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")]
    private static partial Regex CpuList();

    [GeneratedRegex(@"^[a-z][a-z0-9_]*\.[a-z0-9_.]+$")]
    private static partial Regex UnifiedKey();

    // ---- kill ----

    private async Task FreezeKillThawAsync(string path, DateTime deadline, CancellationToken ct)
    {
        string? freezeFile = null;
        string frozenWrite = "", thawWrite = "";
        if (IsUnified)
        {
            string f = Path.Combine(DirOf(hierarchies[0], path), "cgroup.freeze");
            if (File.Exists(f)) (freezeFile, frozenWrite, thawWrite) = (f, "1", "0");
        }
        else if (ControllerDir("freezer", path) is { } freezer && Directory.Exists(freezer))
        {
            (freezeFile, frozenWrite, thawWrite) = (Path.Combine(freezer, "freezer.state"), "FROZEN", "THAWED");
        }

        if (freezeFile is null)
        {
            foreach (int pid in Pids(path)) Signals.Kill(pid, Signals.SIGKILL);
            return;
        }

        WriteControl(freezeFile, frozenWrite);
        try
        {
            // Freezing is asynchronous; a task in vfork or uninterruptible sleep can hold it in FREEZING.
            // Give it a moment, then kill regardless: a kill without the freeze is still a kill.
            var freezeDeadline = Min(deadline, DateTime.UtcNow + TimeSpan.FromSeconds(1));
            while (!IsFrozen(path) && DateTime.UtcNow < freezeDeadline)
                await Task.Delay(PollInterval, ct).ConfigureAwait(false);
            foreach (int pid in Pids(path)) Signals.Kill(pid, Signals.SIGKILL);
        }
        finally
        {
            // Frozen tasks only act on the SIGKILL once thawed; never leave them frozen.
            WriteControl(freezeFile, thawWrite);
        }
    }

    private bool IsFrozen(string path)
    {
        if (IsUnified)
            return ReadKeyed(Path.Combine(DirOf(hierarchies[0], path), "cgroup.events"), "frozen") == 1;
        return ControllerDir("freezer", path) is { } freezer && ReadText(Path.Combine(freezer, "freezer.state"))?.Trim() == "FROZEN";
    }

    private static DateTime Min(DateTime a, DateTime b) => a < b ? a : b;

    // ---- hierarchy helpers ----

    private string? ControllerDir(string controller, string path) =>
        hierarchies.FirstOrDefault(h => !h.IsV2 && h.Controllers.Contains(controller)) is { } h ? DirOf(h, path) : null;

    private static string DirOf(Hierarchy h, string path) => path == "/" ? h.MountPoint : h.MountPoint + path;

    /// <summary>"/a/b" from "/a/b/" etc.; refuses relative paths, "." and ".." so nothing escapes a hierarchy.</summary>
    internal static string NormalizePath(string path, bool allowRoot)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (path[0] != '/')
            throw new InvalidArgumentException($"cgroup path '{Namespaces.Printable(path)}' must be absolute, like /kubepods/pod<uid>", nameof(path));
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        foreach (var part in parts)
        {
            if (part is "." or ".." || part.Contains('\0') || part.Contains('\n'))
                throw new InvalidArgumentException($"cgroup path '{Namespaces.Printable(path)}' has an invalid component '{Namespaces.Printable(part)}'", nameof(path));
        }
        if (parts.Length == 0 && !allowRoot)
            throw new InvalidArgumentException("refusing to operate on the root cgroup", nameof(path));
        return "/" + string.Join('/', parts);
    }

    private static void EnableV2Controllers(string dir)
    {
        var available = (ReadText(Path.Combine(dir, "cgroup.controllers")) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var enabled = (ReadText(Path.Combine(dir, "cgroup.subtree_control")) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var missing = V2Controllers.Where(c => available.Contains(c) && !enabled.Contains(c)).ToList();
        if (missing.Count == 0) return;
        try
        {
            WriteControl(Path.Combine(dir, "cgroup.subtree_control"), string.Join(' ', missing.Select(c => "+" + c)));
        }
        catch (NativeException e) when (e.Errno == Errno.EBUSY)
        {
            throw new InvalidOperationException(
                $"cannot enable {string.Join(", ", missing)} for children of {dir}: it has processes of its own " +
                "(cgroup v2 allows controllers only below cgroups without processes); move them into a leaf cgroup", e);
        }
    }

    /// <summary>A new v1 cpuset cgroup starts with no CPUs and no memory nodes: copy the parent's.</summary>
    private static void InheritCpuset(string dir)
    {
        string parent = Path.GetDirectoryName(dir)!;
        foreach (var file in new[] { "cpuset.cpus", "cpuset.mems" })
        {
            if ((ReadText(Path.Combine(dir, file)) ?? "").Trim().Length > 0) continue;
            string value = (ReadText(Path.Combine(parent, file)) ?? "").Trim();
            if (value.Length > 0) WriteControl(Path.Combine(dir, file), value);
        }
    }

    /// <summary>The directory and every directory below it, deepest first; empty when it does not exist.</summary>
    private static List<string> SubtreeBottomUp(string dir)
    {
        var result = new List<string>();
        Visit(dir);
        return result;

        void Visit(string d)
        {
            string[] children;
            try { children = Directory.GetDirectories(d); }
            catch (DirectoryNotFoundException) { return; }
            foreach (var child in children) Visit(child);
            result.Add(d);
        }
    }

    private static IReadOnlySet<string> KernelControllers()
    {
        // /proc/cgroups: "#subsys_name hierarchy num_cgroups enabled"
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in ReadLines("/proc/cgroups"))
            if (!line.StartsWith('#')) names.Add(line.Split('\t', ' ')[0]);
        return names;
    }

    private static ulong WorkingSet(ulong usage, ulong inactiveFile) => usage > inactiveFile ? usage - inactiveFile : 0;

    // ---- cgroupfs I/O ----

    /// <summary>A control file's text, or null when it (or its cgroup) does not exist.</summary>
    private static string? ReadText(string file)
    {
        try { return File.ReadAllText(file); }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
        catch (IOException) when (!Directory.Exists(Path.GetDirectoryName(file))) { return null; }  // removed mid-read (ENODEV)
    }

    private static IEnumerable<string> ReadLines(string file) =>
        (ReadText(file) ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static ulong? ReadNumber(string file) =>
        ReadText(file) is { } text && ulong.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out ulong n) ? n : null;

    /// <summary>The value of "key N" in a flat-keyed file (memory.stat, cpu.stat, memory.events, memory.oom_control).</summary>
    private static ulong? ReadKeyed(string file, string key)
    {
        foreach (var line in ReadLines(file))
            if (ParseKeyed(line) is (string k, ulong n) && k == key) return n;
        return null;
    }

    /// <summary>Every "key N" pair of a flat-keyed file; empty when the file does not exist.</summary>
    private static Dictionary<string, ulong> ReadFlatKeyed(string file)
    {
        var values = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var line in ReadLines(file))
            if (ParseKeyed(line) is (string k, ulong n)) values[k] = n;
        return values;
    }

    private static (string Key, ulong Value)? ParseKeyed(string line)
    {
        int space = line.IndexOf(' ');
        return space > 0 && ulong.TryParse(line.AsSpan(space + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ulong n)
            ? (line[..space], n)
            : null;
    }

    private static void WriteControl(string file, long value) => WriteControl(file, value.ToString(CultureInfo.InvariantCulture));

    /// <summary>One write(2) per value, as cgroupfs expects; errno kept so callers can react to EINVAL/EBUSY.</summary>
    private static unsafe void WriteControl(string file, string value)
    {
        var p = Interop.CString(file);
        var data = Encoding.ASCII.GetBytes(value);
        fixed (byte* pp = p, pd = data)
        {
            int fd = open(pp, O_WRONLY | O_CLOEXEC, 0);
            if (fd < 0) throw NativeException.Last("open", file, $"write '{value}' to");
            try
            {
                if (write(fd, pd, (nuint)data.Length) < 0) throw NativeException.Last("write", file, $"write '{value}' to");
            }
            finally
            {
                close(fd);
            }
        }
    }

    /// <summary>mkdir; false when it already existed.</summary>
    private static unsafe bool MakeDirectory(string dir)
    {
        var p = Interop.CString(dir);
        fixed (byte* pp = p)
        {
            if (mkdir(pp, 0x1ED /* 0755 */) == 0) return true;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Errno.EEXIST) return false;
            throw new NativeException("mkdir", dir, errno, "create cgroup: mkdir");
        }
    }

    /// <summary>rmdir; true when gone (including already missing).</summary>
    private static unsafe bool RemoveDirectory(string dir, out int errno)
    {
        var p = Interop.CString(dir);
        fixed (byte* pp = p)
        {
            errno = rmdir(pp) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        return errno is 0 or Errno.ENOENT;
    }

    private const int O_WRONLY = 1, O_CLOEXEC = 0x80000;

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static unsafe partial int open(byte* path, int flags, int mode);

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static unsafe partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static unsafe partial int mkdir(byte* path, int mode);

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static unsafe partial int rmdir(byte* path);
}
