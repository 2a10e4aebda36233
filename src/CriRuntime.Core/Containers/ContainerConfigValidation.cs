using CriRuntime.Oci;
using Runtime.V1;

namespace CriRuntime.Containers;

/// <summary>
/// Checks of a CreateContainer config that used to pass to runc (or to the file system) and come back as Unknown or
/// INTERNAL: each answers InvalidArgument naming the field, before anything is mounted, written or spawned. Sizes
/// are <see cref="ContainerConfigLimits"/>'s concern; this is about values no runtime could use.
/// </summary>
public static class ContainerConfigValidation
{
    /// <summary>Host trees whose entries the kernel makes; a missing one cannot be created, and must never be tried.</summary>
    private static readonly string[] KernelTrees = ["/proc", "/sys"];

    /// <summary>The checks that need nothing but the request. <paramref name="cgroupV2"/> and
    /// <paramref name="hugepageSizes"/> describe the node (see <see cref="LinuxResourcesValidation.Validate"/>).</summary>
    public static void Validate(ContainerConfig config, bool cgroupV2, IReadOnlySet<string>? hugepageSizes)
    {
        if (!string.IsNullOrEmpty(config.WorkingDir) && !config.WorkingDir.StartsWith('/'))
            throw new InvalidArgumentException($"config.working_dir '{Preview(config.WorkingDir)}' is not absolute; give a path starting with /");
        NoNul(config.WorkingDir, "config.working_dir");

        // execve takes NUL-terminated strings: a NUL inside one would cut it silently, or the runtime refuses it.
        for (int i = 0; i < config.Command.Count; i++) NoNul(config.Command[i], $"config.command[{i}]");
        for (int i = 0; i < config.Args.Count; i++) NoNul(config.Args[i], $"config.args[{i}]");
        for (int i = 0; i < config.Envs.Count; i++)
        {
            string key = config.Envs[i].Key;
            if (key.Length == 0)
                throw new InvalidArgumentException($"config.envs[{i}].key is empty; every environment variable needs a name");
            if (key.Contains('=') || key.Contains('\0'))
                throw new InvalidArgumentException($"config.envs[{i}].key '{Preview(key)}' holds '=' or NUL, which cannot be in a variable's name");
            if (config.Envs[i].Value.Span.Contains((byte)0)) throw new InvalidArgumentException($"config.envs[{i}].value holds a NUL byte");
        }

        ValidateLogPath(config.LogPath);

        for (int i = 0; i < config.Mounts.Count; i++)
        {
            var mount = config.Mounts[i];
            if (!Enum.IsDefined(mount.Propagation))
                throw new InvalidArgumentException(
                    $"config.mounts[{i}].propagation {(int)mount.Propagation} is not a mount propagation (0 private, 1 host-to-container, 2 bidirectional)");
        }

        for (int i = 0; i < config.Devices.Count; i++)
        {
            string path = config.Devices[i].ContainerPath;
            if (!path.StartsWith('/') || HasDotDot(path))
                throw new InvalidArgumentException(
                    $"config.devices[{i}].container_path '{Preview(path)}' must be an absolute path without '..', such as /dev/fuse");
            if (string.IsNullOrEmpty(config.Devices[i].HostPath) || !config.Devices[i].HostPath.StartsWith('/'))
                throw new InvalidArgumentException($"config.devices[{i}].host_path '{Preview(config.Devices[i].HostPath)}' is not an absolute path");
        }

        LinuxResourcesValidation.Validate(config.Linux?.Resources, "config.linux.resources", cgroupV2, hugepageSizes);

        if (config.Linux?.SecurityContext?.Capabilities is { } caps)
        {
            const string at = "config.linux.security_context.capabilities";
            for (int i = 0; i < caps.AddCapabilities.Count; i++) Capability(caps.AddCapabilities[i], $"{at}.add_capabilities[{i}]", allowAll: true);
            for (int i = 0; i < caps.DropCapabilities.Count; i++) Capability(caps.DropCapabilities[i], $"{at}.drop_capabilities[{i}]", allowAll: true);
            for (int i = 0; i < caps.AddAmbientCapabilities.Count; i++) Capability(caps.AddAmbientCapabilities[i], $"{at}.add_ambient_capabilities[{i}]", allowAll: false);
        }

        if (config.Linux?.SecurityContext is { } security)
        {
            const string at = "config.linux.security_context";
            if (security.RunAsUser is { } user) UserOrGroupId(user.Value, $"{at}.run_as_user");
            if (security.RunAsGroup is { } group) UserOrGroupId(group.Value, $"{at}.run_as_group");
            for (int i = 0; i < security.SupplementalGroups.Count; i++) UserOrGroupId(security.SupplementalGroups[i], $"{at}.supplemental_groups[{i}]");
            KernelPaths(security.MaskedPaths, $"{at}.masked_paths");
            KernelPaths(security.ReadonlyPaths, $"{at}.readonly_paths");
        }
    }

    /// <summary>The most masked or read-only paths a container may ask for; the kubelet sends about ten.</summary>
    public const int MaxKernelPaths = 256;

    // runc (and the kernel's user namespaces) take ids 0..2^31-1 only.
    private static void UserOrGroupId(long id, string field)
    {
        if (id is < 0 or > int.MaxValue)
            throw new InvalidArgumentException($"{field} {id} is outside 0..{int.MaxValue}, the ids a container can run with");
    }

    // Each entry is one more mount the runtime makes: bound them, and refuse repeats, which only multiply mounts
    // (3,000 read-only "/" exhaust the mount table and fail inside runc).
    private static void KernelPaths(IReadOnlyList<string> paths, string field)
    {
        if (paths.Count > MaxKernelPaths)
            throw new InvalidArgumentException($"{field} has {paths.Count} entries, more than the {MaxKernelPaths} allowed");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < paths.Count; i++)
        {
            if (!paths[i].StartsWith('/'))
                throw new InvalidArgumentException($"{field}[{i}] '{Preview(paths[i])}' is not an absolute path");
            if (!seen.Add(paths[i]))
                throw new InvalidArgumentException($"{field}[{i}] '{Preview(paths[i])}' is listed twice");
        }
    }

    /// <summary>
    /// The checks against the host's files: a device that is not there is NotFound, and a mount source under /proc or
    /// /sys that is not there is InvalidArgument (it is never created). Run after <see cref="Validate"/>.
    /// </summary>
    public static void ValidateHostPaths(ContainerConfig config, Func<string, bool> exists, Func<string, bool>? isDirectory = null)
    {
        for (int i = 0; i < config.Devices.Count; i++)
        {
            string hostPath = config.Devices[i].HostPath;
            if (!exists(hostPath))
                throw new NotFoundException($"config.devices[{i}].host_path '{Preview(hostPath)}' does not exist on this node; name an existing device node or directory of them");
        }
        for (int i = 0; i < config.Mounts.Count; i++)
        {
            string hostPath = config.Mounts[i].HostPath;
            if (!hostPath.StartsWith('/') || exists(hostPath)) continue;
            if (IsUnderKernelTree(hostPath))
                throw new InvalidArgumentException(
                    $"config.mounts[{i}].host_path '{Preview(hostPath)}' does not exist, and entries under /proc and /sys cannot be created; name one the kernel provides");
            // A missing source is created as a directory (as the kubelet expects of hostPath volumes): that cannot
            // work below something that is not a directory (/etc/passwd/x).
            if (isDirectory is not null && NearestExistingAncestor(hostPath, exists) is { } ancestor && !isDirectory(ancestor))
                throw new InvalidArgumentException(
                    $"config.mounts[{i}].host_path '{Preview(hostPath)}' does not exist and cannot be created: {Preview(ancestor)} is not a directory");
        }
    }

    private static string? NearestExistingAncestor(string path, Func<string, bool> exists)
    {
        string clean = Oci.Spec.MountSpecOptions.CleanPath(path);
        while (clean != "/")
        {
            clean = clean[..Math.Max(1, clean.LastIndexOf('/'))];
            if (exists(clean)) return clean;
        }
        return null;
    }

    /// <summary>True when <paramref name="hostPath"/> lies in /proc or /sys (after lexical cleaning: /x/../proc is /proc).</summary>
    public static bool IsUnderKernelTree(string hostPath)
    {
        if (!hostPath.StartsWith('/')) return false;
        string clean = Oci.Spec.MountSpecOptions.CleanPath(hostPath);
        return KernelTrees.Any(t => clean == t || clean.StartsWith(t + "/", StringComparison.Ordinal));
    }

    /// <summary>
    /// log_path is relative to the pod's log_directory and must stay inside it: not absolute, no '..' (issue #11),
    /// and no NUL. The daemon creates its parent directories, so this is what keeps them in the log directory.
    /// </summary>
    public static void ValidateLogPath(string logPath)
    {
        if (string.IsNullOrEmpty(logPath)) return;
        if (logPath.StartsWith('/'))
            throw new InvalidArgumentException($"config.log_path '{Preview(logPath)}' is absolute; it is relative to the pod's log_directory (e.g. name/0.log)");
        if (HasDotDot(logPath))
            throw new InvalidArgumentException($"config.log_path '{Preview(logPath)}' holds '..'; it must stay inside the pod's log_directory");
        NoNul(logPath, "config.log_path");
        if (logPath.EndsWith('/') || logPath.Split('/').All(p => p is "" or "."))
            throw new InvalidArgumentException($"config.log_path '{Preview(logPath)}' names a directory, not a file");
    }

    /// <summary>A capability name as containerd takes it: any case, with or without CAP_, or ALL where a set is meant.</summary>
    private static void Capability(string name, string field, bool allowAll)
    {
        if (allowAll && string.Equals(name, "ALL", StringComparison.OrdinalIgnoreCase)) return;
        string upper = name.Trim().ToUpperInvariant();
        string full = upper.StartsWith("CAP_", StringComparison.Ordinal) ? upper : "CAP_" + upper;
        if (!Oci.Spec.SecuritySpecOptions.AllCapabilities.Contains(full))
            throw new InvalidArgumentException(
                $"{field} '{Preview(name)}' is not a Linux capability; use names such as NET_ADMIN or CAP_SYS_TIME{(allowAll ? ", or ALL" : "")}");
    }

    private static bool HasDotDot(string path) => path.Split('/').Contains("..");

    private static void NoNul(string value, string field)
    {
        if (value.Contains('\0')) throw new InvalidArgumentException($"{field} holds a NUL character");
    }

    private static string Preview(string value) => LinuxResourcesValidation.Preview(value);
}
