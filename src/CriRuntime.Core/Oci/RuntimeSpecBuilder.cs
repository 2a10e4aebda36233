using CriRuntime.Native;
using CriRuntime.Storage;
using Runtime.V1;

namespace CriRuntime.Oci;

/// <summary>
/// Builds OCI runtime specs for CRI containers and the pod infra process, following containerd's
/// CRI plugin (container_create_linux.go and its spec options) so workloads see what they would see
/// under containerd.
/// </summary>
public static class RuntimeSpecBuilder
{
    public const string DefaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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

    /// <summary>
    /// The known capabilities in the daemon's effective set, in number order: what privileged and "ALL" grant. A node
    /// whose bounding set lacks one (CAP_SYS_RESOURCE on some hardened hosts) could not start a container asking for it.
    /// </summary>
    public static List<string> CurrentCapabilities() => CapabilitiesIn(ProcessCapabilities.Effective());

    /// <summary>The names of the known capabilities whose bits are set in <paramref name="mask"/>; unknown bits are left out.</summary>
    public static List<string> CapabilitiesIn(ulong mask) =>
        AllCapabilities.Where((_, bit) => (mask & (1UL << bit)) != 0).ToList();

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

    // Annotations containerd's CRI plugin puts on specs (io.kubernetes.cri.*).
    public const string ContainerTypeAnnotation = "io.kubernetes.cri.container-type";
    public const string ContainerNameAnnotation = "io.kubernetes.cri.container-name";
    public const string SandboxIdAnnotation = "io.kubernetes.cri.sandbox-id";
    public const string SandboxNameAnnotation = "io.kubernetes.cri.sandbox-name";
    public const string SandboxNamespaceAnnotation = "io.kubernetes.cri.sandbox-namespace";
    public const string SandboxUidAnnotation = "io.kubernetes.cri.sandbox-uid";
    public const string ImageNameAnnotation = "io.kubernetes.cri.image-name";

    private const string DevShm = "/dev/shm";

    public static RuntimeSpec BuildContainer(ContainerSpecInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var config = input.Config;
        var security = config.Linux?.SecurityContext ?? new LinuxContainerSecurityContext();
        bool privileged = security.Privileged;
        if (privileged && !(input.PodConfig.Linux?.SecurityContext?.Privileged ?? false))
            throw new InvalidArgumentException($"container {input.Id} is privileged but its pod is not: set privileged in the pod's security context");
        if (!Path.IsPathFullyQualified(input.RootfsPath))
            throw new ArgumentException($"rootfs path '{input.RootfsPath}' is not absolute");

        var spec = new RuntimeSpec
        {
            Root = new SpecRoot { Path = input.RootfsPath, Readonly = security.ReadonlyRootfs },
            Process = new SpecProcess
            {
                Terminal = config.Tty,
                Args = ProcessArgs(config, input.Image),
                Cwd = !string.IsNullOrEmpty(config.WorkingDir) ? config.WorkingDir
                    : !string.IsNullOrEmpty(input.Image.WorkingDir) ? input.Image.WorkingDir : "/",
                NoNewPrivileges = security.NoNewPrivs,
            },
            Linux = new SpecLinux { CgroupsPath = input.CgroupsPath },
            Mounts = DefaultMounts(privileged),
        };
        var process = spec.Process;
        var linux = spec.Linux;

        process.Env = Environment(input);
        process.User = User(input, security);

        // Capabilities: the default set, then CRI's add/drop; privileged gets everything the daemon holds.
        bool wantsAll = privileged || security.Capabilities?.AddCapabilities.Any(IsAll) == true;
        var all = wantsAll ? input.GrantableCapabilities?.ToList() ?? CurrentCapabilities() : [];
        var caps = privileged ? all : ApplyCapabilityChanges(DefaultCapabilities, security.Capabilities, all);
        process.Capabilities = new SpecCapabilities { Bounding = caps, Effective = [.. caps], Permitted = [.. caps] };
        if (security.Capabilities?.AddAmbientCapabilities is { Count: > 0 } ambient)
        {
            var ambientCaps = ambient.Select(CapabilityName).Where(caps.Contains).Distinct().ToList();
            process.Capabilities.Ambient = ambientCaps;
            process.Capabilities.Inheritable = [.. ambientCaps];
        }

        // containerd's CRI drops the default spec's rlimits (containerd issue #515): containers inherit
        // the runtime's limits, so none are set here.
        process.Rlimits = null;

        var resources = config.Linux?.Resources;
        process.OomScoreAdj = ClampOomScoreAdj((int)(resources?.OomScoreAdj ?? 0));
        linux.Resources = Resources(resources, input.SwapLimitSupported ?? SwapLimitSupportedOnHost());
        linux.Resources.Devices = [new SpecDeviceCgroup { Allow = false, Access = "rwm" }];

        linux.Namespaces = Namespaces(input);
        linux.Sysctl = input.PodConfig.Linux?.Sysctls is { Count: > 0 } sysctls ? new Dictionary<string, string>(sysctls) : null;

        if (privileged)
        {
            linux.MaskedPaths = null;
            linux.ReadonlyPaths = null;
            linux.Resources.Devices = [new SpecDeviceCgroup { Allow = true, Access = "rwm" }];
            if (input.PrivilegedWithHostDevices) linux.Devices = HostDevices();
        }
        else
        {
            // Kubelet sends its own lists (the ProcMountType=Default set) and an empty list for Unmasked.
            linux.MaskedPaths = security.MaskedPaths.Count > 0 ? [.. security.MaskedPaths] : [.. DefaultMaskedPaths];
            linux.ReadonlyPaths = security.ReadonlyPaths.Count > 0 ? [.. security.ReadonlyPaths] : [.. DefaultReadonlyPaths];
        }
        AddDevices(spec, config.Devices);
#pragma warning disable CS0612 // the deprecated path still comes from older kubelets and from crictl configs
        linux.Seccomp = SeccompProfiles.ForContainer(security.Seccomp, security.SeccompProfilePath, privileged, caps);
#pragma warning restore CS0612

        ApplyMounts(spec, ContainerMounts(input, security));

        spec.Annotations = ContainerAnnotations(input);
        return spec;
    }

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

    private static int ClampOomScoreAdj(int requested) => Math.Max(requested, OomScoreAdjFloor);

    /// <summary>
    /// The pod infra process: <c>/catatonit -P</c> (reaps zombies, exits on SIGTERM/SIGINT) as PID 1 of a
    /// new PID namespace, joining the pod's net/ipc/uts namespaces. Nothing else in its rootfs, no
    /// capabilities at all: catatonit needs none to wait for children and forward signals.
    /// </summary>
    public static RuntimeSpec BuildInfra(string infraRootfs, string? netns, string? ipcns, string? utsns, string cgroupsPath, string hostname)
    {
        var namespaces = new List<SpecNamespace>
        {
            new() { Type = NamespaceTypes.Pid },
            new() { Type = NamespaceTypes.Mount },
        };
        if (netns is not null) namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Network, Path = netns });
        if (ipcns is not null) namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Ipc, Path = ipcns });
        if (utsns is not null) namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Uts, Path = utsns });
        return new RuntimeSpec
        {
            Root = new SpecRoot { Path = infraRootfs, Readonly = true },
            // Setting the hostname needs a UTS namespace of our own; in the host's it is left alone.
            Hostname = utsns is not null && hostname.Length > 0 ? hostname : null,
            Process = new SpecProcess
            {
                Args = ["/catatonit", "-P"],
                Env = [DefaultPathEnv],
                Cwd = "/",
                User = new SpecUser { Uid = 0, Gid = 0, AdditionalGids = [0] },
                Capabilities = new SpecCapabilities { Bounding = [], Effective = [], Permitted = [] },
                NoNewPrivileges = true,
                // Like the pause container under containerd: the last thing the OOM killer picks.
                OomScoreAdj = ClampOomScoreAdj(-998),
            },
            Mounts =
            [
                new SpecMount { Destination = "/proc", Type = "proc", Source = "proc", Options = ["nosuid", "noexec", "nodev"] },
                new SpecMount { Destination = "/dev", Type = "tmpfs", Source = "tmpfs", Options = ["nosuid", "strictatime", "mode=755", "size=65536k"] },
                new SpecMount { Destination = "/sys", Type = "sysfs", Source = "sysfs", Options = ["nosuid", "noexec", "nodev", "ro"] },
            ],
            Linux = new SpecLinux
            {
                CgroupsPath = cgroupsPath,
                Namespaces = namespaces,
                Resources = new SpecLinuxResources { Devices = [new SpecDeviceCgroup { Allow = false, Access = "rwm" }] },
                MaskedPaths = [.. DefaultMaskedPaths],
                ReadonlyPaths = [.. DefaultReadonlyPaths],
                // catatonit is ours and needs nothing beyond the built-in allow list, whatever the pod asked for.
                Seccomp = SeccompProfiles.RuntimeDefault([]),
            },
            Annotations = new Dictionary<string, string> { [ContainerTypeAnnotation] = "sandbox" },
        };
    }

    /// <summary>
    /// Makes <paramref name="dir"/> a minimal rootfs for the infra process: /catatonit (a hardlink to the
    /// static binary when on the same file system, else a copy) and empty /proc, /dev, /sys.
    /// Safe to call again on a finished directory.
    /// </summary>
    public static void PrepareInfraRootfs(string dir, string catatonitPath = "/usr/bin/catatonit")
    {
        if (Files.TryLstat(catatonitPath) is not { Type: FileType.RegularFile })
            throw new FileNotFoundException($"catatonit not found at {catatonitPath}: install the catatonit package or set its path in the config", catatonitPath);
        Directory.CreateDirectory(dir);
        foreach (string sub in new[] { "proc", "dev", "sys" }) Directory.CreateDirectory(Path.Combine(dir, sub));
        string target = Path.Combine(dir, "catatonit");
        if (Files.TryLstat(target) is { Type: FileType.RegularFile }) return;
        // Build under a temp name and rename, so a crash never leaves a half-copied binary in place.
        string temp = Path.Combine(dir, $".catatonit.tmp-{System.Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            try { Files.Link(catatonitPath, temp); }
            catch (NativeException e) when (e.Errno is Errno.EXDEV or Errno.EPERM or Errno.EMLINK)
            {
                File.Copy(catatonitPath, temp);
                Files.Chmod(temp, Convert.ToInt32("755", 8));
                Files.Fsync(temp);
            }
            Files.Rename(temp, target);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
        Files.FsyncDirectory(dir);
    }

    /// <summary>Writes &lt;bundleDir&gt;/config.json atomically and durably.</summary>
    public static void WriteBundle(string bundleDir, RuntimeSpec spec)
    {
        Directory.CreateDirectory(bundleDir);
        AtomicFile.WriteAllBytes(Path.Combine(bundleDir, "config.json"), spec.ToUtf8Json());
    }

    // ---- process ----

    /// <summary>containerd's rule (from moby): CRI command replaces the image Entrypoint, and then CRI args replace Cmd.</summary>
    internal static List<string> ProcessArgs(ContainerConfig config, Images.ImageRuntimeConfig image)
    {
        List<string> command = [.. config.Command];
        List<string> args = [.. config.Args];
        if (command.Count == 0)
        {
            if (args.Count == 0) args = [.. image.Cmd ?? []];
            // An Entrypoint of [""] is how an image says "no entrypoint".
            if (image.Entrypoint is { } entrypoint && !(entrypoint.Count == 1 && entrypoint[0].Length == 0))
                command = [.. entrypoint];
        }
        if (command.Count == 0 && args.Count == 0)
            throw new InvalidArgumentException($"container '{config.Metadata?.Name}' has no command: neither the CRI config nor the image sets a command or args");
        return [.. command, .. args];
    }

    private static List<string> Environment(ContainerSpecInput input)
    {
        var env = new List<string> { DefaultPathEnv };
        MergeEnv(env, [$"HOSTNAME={input.Hostname}"]);
        // Image env first so the CRI config's envs override it.
        MergeEnv(env, [.. input.Image.Env, .. input.Config.Envs.Select(e => $"{e.Key}={e.Value.ToStringUtf8()}")]);
        return env;
    }

    /// <summary>Replaces entries with the same key or appends; a bare "KEY" removes KEY (containerd's WithEnv).</summary>
    internal static void MergeEnv(List<string> env, IEnumerable<string> additions)
    {
        foreach (string entry in additions)
        {
            int eq = entry.IndexOf('=');
            string key = eq < 0 ? entry : entry[..eq];
            int existing = env.FindIndex(e => e == key || e.StartsWith(key + "=", StringComparison.Ordinal));
            if (eq < 0)
            {
                if (existing >= 0) env.RemoveAt(existing);
            }
            else if (existing >= 0) env[existing] = entry;
            else env.Add(entry);
        }
    }

    private static SpecUser User(ContainerSpecInput input, LinuxContainerSecurityContext security)
    {
        string? userSpec = null;
        if (!string.IsNullOrEmpty(security.RunAsUsername)) userSpec = security.RunAsUsername;
        else if (security.RunAsUser is not null) userSpec = security.RunAsUser.Value.ToString();
        if (security.RunAsGroup is not null)
        {
            if (userSpec is null)
                throw new InvalidArgumentException($"container '{input.Config.Metadata?.Name}': run_as_group is set without run_as_user or run_as_username");
            userSpec += ":" + security.RunAsGroup.Value;
        }
        userSpec ??= input.Image.User;
        if (security.RunAsUser is { Value: < 0 }) throw new InvalidArgumentException($"run_as_user {security.RunAsUser.Value} is negative");

        var resolved = ContainerUser.Resolve(input.RootfsPath, userSpec);
        var gids = resolved.AdditionalGids.ToList();
        foreach (long g in security.SupplementalGroups)
        {
            if (g < 0 || g > uint.MaxValue) throw new InvalidArgumentException($"supplemental group {g} is out of range");
            if (!gids.Contains((uint)g)) gids.Add((uint)g);
        }
        return new SpecUser { Uid = resolved.Uid, Gid = resolved.Gid, AdditionalGids = gids };
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

    // ---- resources ----

    /// <summary>CRI resources as OCI resources (containerd's WithResources); zero means "not set".</summary>
    public static SpecLinuxResources Resources(LinuxContainerResources? resources, bool swapLimitSupported)
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

        if (resources.HugepageLimits.Count > 0)
            result.HugepageLimits = resources.HugepageLimits.Select(h => new SpecHugepageLimit { PageSize = h.PageSize, Limit = h.Limit }).ToList();
        if (resources.Unified.Count > 0) result.Unified = new Dictionary<string, string>(resources.Unified);
        return result;
    }

    /// <summary>Whether this host limits memory+swap: cgroup v1 with swap accounting, or cgroup v2.</summary>
    public static bool SwapLimitSupportedOnHost() =>
        File.Exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") || File.Exists("/sys/fs/cgroup/cgroup.controllers");

    // ---- namespaces ----

    private static List<SpecNamespace> Namespaces(ContainerSpecInput input)
    {
        var namespaces = new List<SpecNamespace> { new() { Type = NamespaceTypes.Mount } };
        if (input.NetworkNamespacePath is not null)
            namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Network, Path = input.NetworkNamespacePath });
        if (input.IpcNamespacePath is not null)
            namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Ipc, Path = input.IpcNamespacePath });
        if (input.UtsNamespacePath is not null)
            namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Uts, Path = input.UtsNamespacePath });
        switch (input.PidMode)
        {
            case PidNamespaceMode.Pod:
                if (string.IsNullOrEmpty(input.PodPidNamespacePath))
                    throw new ArgumentException($"container {input.Id} shares the pod's PID namespace but no PodPidNamespacePath was given");
                namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Pid, Path = input.PodPidNamespacePath });
                break;
            case PidNamespaceMode.Container:
                namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Pid });
                break;
            case PidNamespaceMode.Node:
                break;
            default:
                throw new ArgumentException($"unsupported PID namespace mode {input.PidMode}");
        }
        return namespaces;
    }

    // ---- mounts ----

    private static List<SpecMount> DefaultMounts(bool privileged)
    {
        // containerd's default Unix spec without /run (its CRI plugin removes that), plus the cgroup mount.
        string sysMode = privileged ? "rw" : "ro";
        return
        [
            new() { Destination = "/proc", Type = "proc", Source = "proc", Options = ["nosuid", "noexec", "nodev"] },
            new() { Destination = "/dev", Type = "tmpfs", Source = "tmpfs", Options = ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            new() { Destination = "/dev/pts", Type = "devpts", Source = "devpts", Options = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            new() { Destination = DevShm, Type = "tmpfs", Source = "shm", Options = ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            new() { Destination = "/dev/mqueue", Type = "mqueue", Source = "mqueue", Options = ["nosuid", "noexec", "nodev"] },
            new() { Destination = "/sys", Type = "sysfs", Source = "sysfs", Options = ["nosuid", "noexec", "nodev", sysMode] },
            new() { Destination = "/sys/fs/cgroup", Type = "cgroup", Source = "cgroup", Options = ["nosuid", "noexec", "nodev", "relatime", sysMode] },
        ];
    }

    /// <summary>The CRI mounts plus the pod files (/etc/hostname, /etc/hosts, /etc/resolv.conf, /dev/shm)
    /// the container does not mount itself, as containerd adds them.</summary>
    private static List<Mount> ContainerMounts(ContainerSpecInput input, LinuxContainerSecurityContext security)
    {
        var mounts = input.Config.Mounts.ToList();
        bool Mounted(string path) => mounts.Any(m => CleanPath(m.ContainerPath) == path);
        void AddFile(string? hostPath, string containerPath)
        {
            if (hostPath is null || Mounted(containerPath)) return;
            // These follow the rootfs: read-only only when the rootfs is.
            mounts.Add(new Mount { HostPath = hostPath, ContainerPath = containerPath, Readonly = security.ReadonlyRootfs });
        }
        AddFile(input.HostnameFile, "/etc/hostname");
        AddFile(input.HostsFile, "/etc/hosts");
        AddFile(input.ResolvConfFile, "/etc/resolv.conf");
        if (input.ShmPath is not null && !Mounted(DevShm))
            mounts.Add(new Mount { HostPath = input.ShmPath, ContainerPath = DevShm, Readonly = false });
        return mounts;
    }

    /// <summary>containerd's WithMounts: drop default mounts the CRI mounts replace, then add the CRI
    /// mounts as rbinds, shallowest destination first.</summary>
    internal static void ApplyMounts(RuntimeSpec spec, IReadOnlyList<Mount> criMounts)
    {
        foreach (var m in criMounts)
        {
            if (!m.ContainerPath.StartsWith('/')) throw new InvalidArgumentException($"mount container path '{m.ContainerPath}' is not absolute");
            if (!m.HostPath.StartsWith('/')) throw new InvalidArgumentException($"mount host path '{m.HostPath}' for {m.ContainerPath} is not absolute");
        }
        var ordered = criMounts.OrderBy(m => Depth(m.ContainerPath)).ToList(); // OrderBy is stable
        var destinations = ordered.Select(m => CleanPath(m.ContainerPath)).ToHashSet();
        bool mountsDev = destinations.Contains("/dev");
        spec.Mounts.RemoveAll(m =>
        {
            string dst = CleanPath(m.Destination);
            return destinations.Contains(dst) || (mountsDev && dst.StartsWith("/dev/", StringComparison.Ordinal));
        });

        foreach (var m in ordered)
        {
            string source = m.HostPath;
            // Like containerd (and kubelet's expectations for hostPath volumes): a missing host path is created as a directory.
            if (Files.TryLstat(source) is null)
            {
                try { Directory.CreateDirectory(source); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new IOException($"mount {m.ContainerPath}: host path {source} does not exist and could not be created: {e.Message}", e);
                }
            }
            source = Files.RealPath(source);

            var options = new List<string> { "rbind" };
            switch (m.Propagation)
            {
                case MountPropagation.PropagationBidirectional:
                    RequirePropagation(source, m.ContainerPath, sharedOnly: true);
                    options.Add("rshared");
                    spec.Linux!.RootfsPropagation = "rshared";
                    break;
                case MountPropagation.PropagationHostToContainer:
                    RequirePropagation(source, m.ContainerPath, sharedOnly: false);
                    options.Add("rslave");
                    if (spec.Linux!.RootfsPropagation is not ("rshared" or "rslave")) spec.Linux.RootfsPropagation = "rslave";
                    break;
                default:
                    // runc's default root propagation is already rprivate.
                    options.Add("rprivate");
                    break;
            }
            options.Add(m.Readonly ? "ro" : "rw");
            spec.Mounts.Add(new SpecMount { Destination = m.ContainerPath, Type = "bind", Source = source, Options = options });
        }
    }

    /// <summary>A propagating bind needs its source to sit on a shared (or, host-to-container, slave) mount,
    /// else nothing would ever propagate; containerd refuses the same way.</summary>
    private static void RequirePropagation(string source, string containerPath, bool sharedOnly)
    {
        var mount = Mounts.ReadMountInfo()
            .Where(mi => source == mi.MountPoint || mi.MountPoint == "/" || source.StartsWith(mi.MountPoint + "/", StringComparison.Ordinal))
            .MaxBy(mi => mi.MountPoint.Length)
            ?? throw new IOException($"mount {containerPath}: no mount holds {source}");
        bool shared = mount.OptionalFields.Any(f => f.StartsWith("shared:", StringComparison.Ordinal));
        bool slave = mount.OptionalFields.Any(f => f.StartsWith("master:", StringComparison.Ordinal));
        if (shared || (!sharedOnly && slave)) return;
        throw new InvalidArgumentException(
            $"mount {containerPath}: {source} is on mount {mount.MountPoint}, which is not a {(sharedOnly ? "shared" : "shared or slave")} mount; " +
            $"{(sharedOnly ? "bidirectional" : "host-to-container")} propagation needs one (e.g. mount --make-shared {mount.MountPoint})");
    }

    private static int Depth(string path) => CleanPath(path).Split('/', StringSplitOptions.RemoveEmptyEntries).Length;

    /// <summary>Lexical cleanup like Go's filepath.Clean for absolute paths.</summary>
    internal static string CleanPath(string path)
    {
        var parts = new List<string>();
        foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".") continue;
            if (part == "..") { if (parts.Count > 0) parts.RemoveAt(parts.Count - 1); continue; }
            parts.Add(part);
        }
        return "/" + string.Join('/', parts);
    }

    // ---- devices ----

    private static void AddDevices(RuntimeSpec spec, IEnumerable<Device> devices)
    {
        foreach (var device in devices)
        {
            string permissions = string.IsNullOrEmpty(device.Permissions) ? "rwm" : device.Permissions;
            if (permissions.Any(c => c is not ('r' or 'w' or 'm')))
                throw new InvalidArgumentException($"device {device.HostPath}: invalid permissions '{device.Permissions}' (letters r, w, m)");
            string hostPath = Files.RealPath(device.HostPath);
            var st = Files.Lstat(hostPath);
            IEnumerable<(string Host, FileStatus Status)> nodes = st.IsDirectory
                ? EnumerateDeviceNodes(hostPath)
                : [(hostPath, st)];
            foreach (var (host, status) in nodes)
            {
                string type = status.Type switch
                {
                    FileType.CharacterDevice => "c",
                    FileType.BlockDevice => "b",
                    _ => throw new InvalidArgumentException($"device {device.HostPath}: {host} is not a device node"),
                };
                string containerPath = st.IsDirectory
                    ? CleanPath(device.ContainerPath + "/" + Path.GetRelativePath(hostPath, host))
                    : device.ContainerPath;
                (spec.Linux!.Devices ??= []).Add(new SpecDevice
                {
                    Type = type, Path = containerPath, Major = status.RDeviceMajor, Minor = status.RDeviceMinor,
                    FileMode = (uint)status.Permissions, Uid = status.Uid, Gid = status.Gid,
                });
                spec.Linux.Resources!.Devices!.Add(new SpecDeviceCgroup
                {
                    Allow = true, Type = type, Major = status.RDeviceMajor, Minor = status.RDeviceMinor, Access = permissions,
                });
            }
        }
    }

    private static IEnumerable<(string, FileStatus)> EnumerateDeviceNodes(string dir)
    {
        foreach (string entry in Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.TopDirectoryOnly))
        {
            var st = Files.TryLstat(entry);
            if (st is null) continue;
            if (st.Value.IsDirectory)
            {
                foreach (var nested in EnumerateDeviceNodes(entry)) yield return nested;
            }
            else if (st.Value.Type is FileType.CharacterDevice or FileType.BlockDevice)
            {
                yield return (entry, st.Value);
            }
        }
    }

    /// <summary>The host's /dev device nodes for privileged containers (what containerd's WithHostDevices lists).</summary>
    private static List<SpecDevice> HostDevices()
    {
        var skipDirs = new HashSet<string> { "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev" };
        var result = new List<SpecDevice>();
        void Walk(string dir)
        {
            foreach (string entry in Directory.EnumerateFileSystemEntries(dir))
            {
                var st = Files.TryLstat(entry);
                if (st is null) continue;
                if (st.Value.IsDirectory)
                {
                    if (!skipDirs.Contains(Path.GetFileName(entry))) Walk(entry);
                    continue;
                }
                if (entry == "/dev/console") continue;
                string? type = st.Value.Type switch { FileType.CharacterDevice => "c", FileType.BlockDevice => "b", _ => null };
                if (type is null) continue;
                result.Add(new SpecDevice
                {
                    Type = type, Path = entry, Major = st.Value.RDeviceMajor, Minor = st.Value.RDeviceMinor,
                    FileMode = (uint)st.Value.Permissions, Uid = st.Value.Uid, Gid = st.Value.Gid,
                });
            }
        }
        Walk("/dev");
        return result;
    }

    // ---- annotations ----

    private static Dictionary<string, string> ContainerAnnotations(ContainerSpecInput input)
    {
        var annotations = new Dictionary<string, string>
        {
            [ContainerTypeAnnotation] = "container",
            [ContainerNameAnnotation] = input.Config.Metadata?.Name ?? "",
            [SandboxNameAnnotation] = input.PodConfig.Metadata?.Name ?? "",
            [SandboxNamespaceAnnotation] = input.PodConfig.Metadata?.Namespace ?? "",
            [SandboxUidAnnotation] = input.PodConfig.Metadata?.Uid ?? "",
        };
        if (input.SandboxId is not null) annotations[SandboxIdAnnotation] = input.SandboxId;
        if (input.ImageName is not null) annotations[ImageNameAnnotation] = input.ImageName;
        return annotations;
    }
}
