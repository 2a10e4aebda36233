using CriRuntime.Native;
using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>
/// What confines the container's process, as containerd's CRI plugin sets it: the privileged switch, capabilities,
/// no_new_privs, and the masked and read-only /proc and /sys paths.
/// </summary>
internal static class SecuritySpecOptions
{
    /// <summary>containerd's default capability set for unprivileged containers.</summary>
    public static readonly IReadOnlyList<string> DefaultCapabilities =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ];

    /// <summary>
    /// Every capability Linux 5.9+ knows, indexed by its number. "ALL" and privileged mean those of them the daemon
    /// holds itself (<see cref="CurrentCapabilities"/>), as containerd's WithAllCurrentCapabilities does.
    /// </summary>
    public static readonly IReadOnlyList<string> AllCapabilities =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ];

    /// <summary>containerd's default masked /proc and /sys paths.</summary>
    public static readonly IReadOnlyList<string> DefaultMaskedPaths =
    [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi",
    ];

    /// <summary>containerd's default read-only /proc paths.</summary>
    public static readonly IReadOnlyList<string> DefaultReadonlyPaths =
    [
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    ];

    /// <summary>
    /// The known capabilities in the daemon's effective set, in number order: what privileged and "ALL" grant. A node
    /// whose bounding set lacks one (CAP_SYS_RESOURCE on some hardened hosts) could not start a container asking for it.
    /// </summary>
    public static List<string> CurrentCapabilities() => CapabilitiesIn(ProcessCapabilities.Effective());

    /// <summary>The names of the known capabilities whose bits are set in <paramref name="mask"/>; unknown bits are left out.</summary>
    public static List<string> CapabilitiesIn(ulong mask) =>
        AllCapabilities.Where((_, bit) => (mask & (1UL << bit)) != 0).ToList();

    /// <summary>A privileged container gets the host's devices and capabilities; only a privileged pod may hold one.</summary>
    public static void RequirePrivilegedPod(RuntimeSpec spec, ContainerSpecInput input)
    {
        if (input.IsPrivileged() && !(input.PodConfig.Linux?.SecurityContext?.Privileged ?? false))
            throw new InvalidArgumentException($"container {input.Id} is privileged but its pod is not: set privileged in the pod's security context");
    }

    public static void WithNoNewPrivileges(RuntimeSpec spec, ContainerSpecInput input) =>
        spec.Process!.NoNewPrivileges = input.SecurityContext().NoNewPrivs;

    /// <summary>The default set, then CRI's add/drop; privileged gets everything the daemon holds.</summary>
    public static void WithCapabilities(RuntimeSpec spec, ContainerSpecInput input)
    {
        var security = input.SecurityContext();
        bool privileged = security.Privileged;
        bool wantsAll = privileged || security.Capabilities?.AddCapabilities.Any(IsAll) == true;
        var all = wantsAll ? input.GrantableCapabilities?.ToList() ?? CurrentCapabilities() : [];
        var caps = privileged ? all : ApplyCapabilityChanges(DefaultCapabilities, security.Capabilities, all);
        var process = spec.Process!;
        process.Capabilities = new SpecCapabilities { Bounding = caps, Effective = [.. caps], Permitted = [.. caps] };
        if (security.Capabilities?.AddAmbientCapabilities is { Count: > 0 } ambient)
        {
            var ambientCaps = ambient.Select(CapabilityName).Where(caps.Contains).Distinct().ToList();
            process.Capabilities.Ambient = ambientCaps;
            process.Capabilities.Inheritable = [.. ambientCaps];
        }
    }

    /// <summary>CRI's add/drop on <paramref name="defaults"/>; "ALL" in add means <paramref name="all"/>.</summary>
    internal static List<string> ApplyCapabilityChanges(IReadOnlyList<string> defaults, Capability? changes, IReadOnlyList<string> all)
    {
        var caps = defaults.ToList();
        if (changes is null) return caps;
        // "ALL" is applied first so that "add ALL, drop CHOWN" means everything but CAP_CHOWN.
        if (changes.AddCapabilities.Any(IsAll)) caps = all.ToList();
        if (changes.DropCapabilities.Any(IsAll)) caps = [];
        foreach (string c in changes.AddCapabilities.Where(c => !IsAll(c)).Select(CapabilityName))
            if (!caps.Contains(c)) caps.Add(c);
        var drop = changes.DropCapabilities.Where(c => !IsAll(c)).Select(CapabilityName).ToHashSet();
        caps.RemoveAll(drop.Contains);
        return caps;
    }

    private static bool IsAll(string cap) => string.Equals(cap, "ALL", StringComparison.OrdinalIgnoreCase);

    /// <summary>CRI names capabilities without the CAP_ prefix; the OCI spec wants it.</summary>
    private static string CapabilityName(string cap)
    {
        string upper = cap.Trim().ToUpperInvariant();
        return upper.StartsWith("CAP_", StringComparison.Ordinal) ? upper : "CAP_" + upper;
    }

    /// <summary>Privileged containers see all of /proc and /sys; others get kubelet's lists, or containerd's defaults
    /// when kubelet sends none.</summary>
    public static void WithMaskedAndReadonlyPaths(RuntimeSpec spec, ContainerSpecInput input)
    {
        var linux = spec.Linux!;
        if (input.IsPrivileged())
        {
            linux.MaskedPaths = null;
            linux.ReadonlyPaths = null;
            return;
        }
        // Kubelet sends its own lists (the ProcMountType=Default set) and an empty list for Unmasked.
        var security = input.SecurityContext();
        linux.MaskedPaths = security.MaskedPaths.Count > 0 ? [.. security.MaskedPaths] : [.. DefaultMaskedPaths];
        linux.ReadonlyPaths = security.ReadonlyPaths.Count > 0 ? [.. security.ReadonlyPaths] : [.. DefaultReadonlyPaths];
    }
}
