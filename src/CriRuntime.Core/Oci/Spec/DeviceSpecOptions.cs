using CriRuntime.Native;
using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>
/// Device nodes the container gets and the device cgroup rules that let it use them: every host device for a
/// privileged container, and the CRI config's devices (a node, or a directory of nodes) for any container.
/// Runs after the resources option, which starts the rules with "deny all".
/// </summary>
internal static class DeviceSpecOptions
{
    public static void WithPrivilegedDevices(RuntimeSpec spec, ContainerSpecInput input)
    {
        if (!input.IsPrivileged()) return;
        var linux = spec.Linux!;
        linux.Resources!.Devices = [new SpecDeviceCgroup { Allow = true, Access = "rwm" }];
        if (input.PrivilegedWithHostDevices) linux.Devices = HostDevices();
    }

    public static void WithCriDevices(RuntimeSpec spec, ContainerSpecInput input)
    {
        foreach (var device in input.Config.Devices)
        {
            string permissions = string.IsNullOrEmpty(device.Permissions) ? "rwm" : device.Permissions;
            if (permissions.Any(c => c is not ('r' or 'w' or 'm')))
                throw new InvalidArgumentException($"device {device.HostPath}: invalid permissions '{device.Permissions}' (letters r, w, m)");
            string hostPath;
            try { hostPath = Files.RealPath(device.HostPath); }
            catch (NativeException e) when (e.Errno is Errno.ENOENT or Errno.ENOTDIR)
            {
                throw new NotFoundException($"device host path {device.HostPath} does not exist on this node");
            }
            var st = Files.Lstat(hostPath);
            IEnumerable<(string Host, FileStatus Status)> nodes = st.IsDirectory
                ? EnumerateDeviceNodes(device.HostPath, hostPath, new DeviceWalkBudget())
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
                    ? MountSpecOptions.CleanPath(device.ContainerPath + "/" + Path.GetRelativePath(hostPath, host))
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

    /// <summary>
    /// How much of a directory device walk may visit: a /dev tree has a few hundred entries, while a request naming
    /// "/" would otherwise walk the whole host (and fail on /proc as INTERNAL, found by the fuzz suite).
    /// </summary>
    private sealed class DeviceWalkBudget
    {
        public const int MaxEntries = 16384;
        public const int MaxDepth = 16;
        public int Entries;
    }

    private static IEnumerable<(string, FileStatus)> EnumerateDeviceNodes(string requested, string dir, DeviceWalkBudget budget, int depth = 0)
    {
        if (depth > DeviceWalkBudget.MaxDepth)
            throw new InvalidArgumentException($"device {requested}: directories nest more than {DeviceWalkBudget.MaxDepth} deep; name a directory of device nodes such as /dev/snd");
        List<string> entries;
        try
        {
            entries = [.. Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.TopDirectoryOnly)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidArgumentException($"device {requested}: cannot list {dir}: {e.Message}");
        }
        foreach (string entry in entries)
        {
            if (++budget.Entries > DeviceWalkBudget.MaxEntries)
                throw new InvalidArgumentException($"device {requested}: holds more than {DeviceWalkBudget.MaxEntries} entries; name a directory of device nodes such as /dev/snd");
            var st = Files.TryLstat(entry);
            if (st is null) continue;
            if (st.Value.IsDirectory)
            {
                foreach (var nested in EnumerateDeviceNodes(requested, entry, budget, depth + 1)) yield return nested;
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
}
