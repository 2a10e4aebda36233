namespace CriRuntime.Oci;

/// <summary>Which PID namespace a container gets (CRI NamespaceMode for pid).</summary>
public enum PidNamespaceMode { Pod, Container, Node, Target }

/// <summary>Everything <see cref="RuntimeSpecBuilder.BuildContainer"/> needs for one CRI container.</summary>
public sealed record ContainerSpecInput
{
    public required string Id { get; init; }
    public required global::Runtime.V1.ContainerConfig Config { get; init; }
    public required global::Runtime.V1.PodSandboxConfig PodConfig { get; init; }
    public required CriRuntime.Images.ImageRuntimeConfig Image { get; init; }

    /// <summary>The mounted overlay rootfs.</summary>
    public required string RootfsPath { get; init; }

    /// <summary>null: the host network namespace (NODE).</summary>
    public string? NetworkNamespacePath { get; init; }

    /// <summary>null: the host IPC namespace.</summary>
    public string? IpcNamespacePath { get; init; }

    /// <summary>null: the host UTS namespace.</summary>
    public string? UtsNamespacePath { get; init; }

    public PidNamespaceMode PidMode { get; init; }

    /// <summary>For <see cref="PidNamespaceMode.Pod"/>: /proc/&lt;infra pid&gt;/ns/pid.</summary>
    public string? PodPidNamespacePath { get; init; }

    /// <summary>For <see cref="PidNamespaceMode.Target"/>: /proc/&lt;target's init pid&gt;/ns/pid (kubectl debug --target).</summary>
    public string? TargetPidNamespacePath { get; init; }

    /// <summary>The pod shares the node's IPC namespace (hostIPC): the container gets the node's /dev/shm and /dev/mqueue.</summary>
    public bool HostIpc { get; init; }

    /// <summary>Default sysctls for a pod with its own network namespace ([runtime] unprivileged_ports / unprivileged_icmp);
    /// the pod's own sysctls override them.</summary>
    public bool UnprivilegedPorts { get; init; }

    /// <inheritdoc cref="UnprivilegedPorts"/>
    public bool UnprivilegedIcmp { get; init; }

    /// <summary>Whether the hugetlb cgroup controller exists; without it hugepage limits are left out of the spec, as
    /// containerd leaves them (the kubelet sends a zero limit for every page size, which runc could not apply).</summary>
    public bool HugetlbAvailable { get; init; } = true;

    /// <summary>cgroupfs style, e.g. "/kubepods/pod&lt;uid&gt;/&lt;container id&gt;".</summary>
    public required string CgroupsPath { get; init; }

    /// <summary>Bind-mounted to /etc/hostname unless the container mounts its own.</summary>
    public string? HostnameFile { get; init; }

    /// <summary>Bind-mounted to /etc/hosts unless the container mounts its own.</summary>
    public string? HostsFile { get; init; }

    /// <summary>Bind-mounted to /etc/resolv.conf unless the container mounts its own.</summary>
    public string? ResolvConfFile { get; init; }

    /// <summary>The pod's /dev/shm tmpfs; null: a private 64 MiB tmpfs.</summary>
    public string? ShmPath { get; init; }

    /// <summary>By index in Config.Mounts: the node path each image mount (Mount.image) binds, its image mounted read-only
    /// and its image_sub_path resolved (see Containers/ImageMounts).</summary>
    public IReadOnlyDictionary<int, string> ImageMountSources { get; init; } = new Dictionary<int, string>();

    /// <summary>The image's VOLUMEs as read-write mounts of the container's own directories (see Containers/ImageVolumes).</summary>
    public IReadOnlyList<global::Runtime.V1.Mount> ImageVolumeMounts { get; init; } = [];

    /// <summary>Goes into the HOSTNAME environment variable.</summary>
    public required string Hostname { get; init; }

    /// <summary>For the io.kubernetes.cri.sandbox-id annotation.</summary>
    public string? SandboxId { get; init; }

    /// <summary>For the io.kubernetes.cri.image-name annotation (the name the user asked for).</summary>
    public string? ImageName { get; init; }

    /// <summary>Privileged containers get the host's /dev devices (containerd's default; its
    /// privileged_without_host_devices turns this off).</summary>
    public bool PrivilegedWithHostDevices { get; init; } = true;

    /// <summary>What privileged and capabilities.add ["ALL"] grant; null: the daemon's own effective set
    /// (<see cref="RuntimeSpecBuilder.CurrentCapabilities"/>), read at each build.</summary>
    public IReadOnlyList<string>? GrantableCapabilities { get; init; }

    /// <summary>Whether memory+swap limits exist (cgroup v1 memory.memsw.*). containerd sets swap equal to
    /// the memory limit when they do, so a container does not swap by default. Null: probe this host.</summary>
    public bool? SwapLimitSupported { get; init; }

    /// <summary>Whether the node runs cgroup v2 (a private cgroup namespace then); null: probe this host.</summary>
    public bool? CgroupV2 { get; init; }

    /// <summary>The node's Linux security modules (AppArmor, SELinux); null: <see cref="Spec.LsmHost.System"/>.</summary>
    public Spec.LsmHost? Lsm { get; init; }
}
