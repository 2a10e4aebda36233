using CriRuntime.Native;
using CriRuntime.Storage;
using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>The container's file system: its rootfs, the default /proc, /dev, /sys mounts, and the CRI mounts with the
/// pod's files, as containerd's WithMounts arranges them.</summary>
internal static class MountSpecOptions
{
    private const string DevShm = "/dev/shm";

    public static void WithRootfs(RuntimeSpec spec, ContainerSpecInput input)
    {
        if (!Path.IsPathFullyQualified(input.RootfsPath))
            throw new ArgumentException($"rootfs path '{input.RootfsPath}' is not absolute");
        spec.Root = new SpecRoot { Path = input.RootfsPath, Readonly = input.SecurityContext().ReadonlyRootfs };
    }

    public static void WithDefaultMounts(RuntimeSpec spec, ContainerSpecInput input)
    {
        // containerd's default Unix spec without /run (its CRI plugin removes that), plus the cgroup mount.
        string sysMode = input.IsPrivileged() ? "rw" : "ro";
        spec.Mounts =
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

    public static void WithCriMounts(RuntimeSpec spec, ContainerSpecInput input) => ApplyMounts(spec, ContainerMounts(input));

    /// <summary>The CRI mounts plus the pod files (/etc/hostname, /etc/hosts, /etc/resolv.conf, /dev/shm and, hostIPC, /dev/mqueue)
    /// the container does not mount itself, as containerd adds them.</summary>
    private static List<Mount> ContainerMounts(ContainerSpecInput input)
    {
        var security = input.SecurityContext();
        var mounts = ImageMountSpecOptions.CriAndImageMounts(input);
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
        mounts.AddRange(IpcSpecOptions.IpcMounts(input, Mounted).ToList());
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
                // The kernel makes what is under /proc and /sys; creating there is never right (CreateContainer checks first).
                if (Containers.ContainerConfigValidation.IsUnderKernelTree(source))
                    throw new InvalidArgumentException($"mount {m.ContainerPath}: host path {source} does not exist, and entries under /proc and /sys cannot be created");
                // 0755 at every level made, as containerd's MkdirAll(src, 0755) under a 022 umask: not the daemon's 077.
                try { FileModes.CreateDirectory(source, FileModes.PublicDirectory); }
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
            if (ImageMountSpecOptions.IsImageMount(m)) options.AddRange(ImageMountSpecOptions.ImageMountOptions);
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
}
