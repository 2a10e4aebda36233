using CriRuntime.Native;

namespace CriRuntime.Oci.Spec;

/// <summary>What the pod infra process's spec is built from: the pod's namespaces (null: the host's), its cgroup and hostname.</summary>
internal sealed record InfraSpecInput(
    string RootfsPath, string? NetworkNamespacePath, string? IpcNamespacePath, string? UtsNamespacePath, string CgroupsPath, string Hostname);

/// <summary>One step of building the infra process's spec; see <see cref="ContainerSpecOption"/>.</summary>
internal delegate void InfraSpecOption(RuntimeSpec spec, InfraSpecInput input);

/// <summary>
/// The pod infra process: <c>/catatonit -P</c> (reaps zombies, exits on SIGTERM/SIGINT) as PID 1 of a
/// new PID namespace, joining the pod's net/ipc/uts namespaces. Nothing else in its rootfs, no
/// capabilities at all: catatonit needs none to wait for children and forward signals.
/// </summary>
internal static class InfraSpecOptions
{
    internal static readonly InfraSpecOption[] Options =
    [
        WithCatatonitProcess,
        WithNoPrivileges,
        WithNamespacesAndHostname,
        WithMinimalMounts,
        WithCgroup,
        WithSandboxAnnotation,
    ];

    public static RuntimeSpec Build(InfraSpecInput input)
    {
        var spec = new RuntimeSpec { Process = new SpecProcess(), Linux = new SpecLinux() };
        foreach (var option in Options) option(spec, input);
        return spec;
    }

    private static void WithCatatonitProcess(RuntimeSpec spec, InfraSpecInput input)
    {
        spec.Root = new SpecRoot { Path = input.RootfsPath, Readonly = true };
        var process = spec.Process!;
        process.Args = ["/catatonit", "-P"];
        process.Env = [ProcessSpecOptions.DefaultPathEnv];
        process.Cwd = "/";
        process.User = new SpecUser { Uid = 0, Gid = 0, AdditionalGids = [0] };
        // Like the pause container under containerd: the last thing the OOM killer picks.
        process.OomScoreAdj = ResourceSpecOptions.ClampOomScoreAdj(-998);
    }

    private static void WithNoPrivileges(RuntimeSpec spec, InfraSpecInput input)
    {
        spec.Process!.Capabilities = new SpecCapabilities { Bounding = [], Effective = [], Permitted = [] };
        spec.Process.NoNewPrivileges = true;
        var linux = spec.Linux!;
        linux.MaskedPaths = [.. SecuritySpecOptions.DefaultMaskedPaths];
        linux.ReadonlyPaths = [.. SecuritySpecOptions.DefaultReadonlyPaths];
        // catatonit is ours and needs nothing beyond the built-in allow list, whatever the pod asked for.
        linux.Seccomp = SeccompProfiles.RuntimeDefault([]);
    }

    private static void WithNamespacesAndHostname(RuntimeSpec spec, InfraSpecInput input)
    {
        var namespaces = new List<SpecNamespace>
        {
            new() { Type = NamespaceTypes.Pid },
            new() { Type = NamespaceTypes.Mount },
        };
        if (input.NetworkNamespacePath is { } netns) namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Network, Path = netns });
        if (input.IpcNamespacePath is { } ipcns) namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Ipc, Path = ipcns });
        if (input.UtsNamespacePath is { } utsns) namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Uts, Path = utsns });
        spec.Linux!.Namespaces = namespaces;
        // Setting the hostname needs a UTS namespace of our own; in the host's it is left alone.
        spec.Hostname = input.UtsNamespacePath is not null && input.Hostname.Length > 0 ? input.Hostname : null;
    }

    private static void WithMinimalMounts(RuntimeSpec spec, InfraSpecInput input) => spec.Mounts =
    [
        new SpecMount { Destination = "/proc", Type = "proc", Source = "proc", Options = ["nosuid", "noexec", "nodev"] },
        new SpecMount { Destination = "/dev", Type = "tmpfs", Source = "tmpfs", Options = ["nosuid", "strictatime", "mode=755", "size=65536k"] },
        new SpecMount { Destination = "/sys", Type = "sysfs", Source = "sysfs", Options = ["nosuid", "noexec", "nodev", "ro"] },
    ];

    private static void WithCgroup(RuntimeSpec spec, InfraSpecInput input)
    {
        spec.Linux!.CgroupsPath = input.CgroupsPath;
        spec.Linux.Resources = new SpecLinuxResources { Devices = [new SpecDeviceCgroup { Allow = false, Access = "rwm" }] };
    }

    private static void WithSandboxAnnotation(RuntimeSpec spec, InfraSpecInput input) =>
        spec.Annotations = new Dictionary<string, string> { [AnnotationSpecOptions.ContainerTypeAnnotation] = "sandbox" };

    /// <summary>
    /// Makes <paramref name="dir"/> a minimal rootfs for the infra process: /catatonit (a hardlink to the
    /// static binary when on the same file system, else a copy) and empty /proc, /dev, /sys.
    /// Safe to call again on a finished directory.
    /// </summary>
    public static void PrepareRootfs(string dir, string catatonitPath)
    {
        if (Files.TryLstat(catatonitPath) is not { Type: FileType.RegularFile })
            throw new FileNotFoundException($"catatonit not found at {catatonitPath}: install the catatonit package or set its path in the config", catatonitPath);
        // The infra's "/" and its mount points are 0755 as in any image, not the daemon's umask.
        FileModes.CreateDirectory(dir, FileModes.PublicDirectory);
        foreach (string sub in new[] { "proc", "dev", "sys" }) FileModes.CreateDirectory(Path.Combine(dir, sub), FileModes.PublicDirectory);
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
}
