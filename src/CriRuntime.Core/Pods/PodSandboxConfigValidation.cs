using Runtime.V1;

namespace CriRuntime.Pods;

/// <summary>
/// Checks of a PodSandboxConfig that RunPodSandbox makes before anything exists: metadata (it reaches CNI_ARGS,
/// records and logs), the log directory, the cgroup parent's shape, and sysctls (only those the pod's own
/// namespaces hold can ever be applied). Each failure is InvalidArgument naming the field.
/// </summary>
public static class PodSandboxConfigValidation
{
    /// <summary>The longest name, namespace or uid: a DNS-1123 subdomain's limit, which every kubelet value fits.</summary>
    public const int MaxMetadataChars = 253;

    /// <summary>The longest cgroup parent: far above any kubelet's, and short enough that a container's cgroup path fits PATH_MAX.</summary>
    public const int MaxCgroupParentChars = 2048;

    /// <summary>A cgroup is a directory: one level's name is at most NAME_MAX bytes.</summary>
    public const int MaxCgroupLevelBytes = 255;

    public const int MaxLogDirectoryChars = 4096;
    public const int MaxSysctls = 1024;
    public const int MaxSysctlNameChars = 256;
    public const int MaxSysctlValueChars = 4096;

    // The sysctls the kubelet and runc accept as IPC-namespaced (k8s component-helpers node/util/sysctl; runc's validator).
    private static readonly HashSet<string> IpcSysctls = new(StringComparer.Ordinal)
    {
        "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",
    };

    private const string MqueuePrefix = "fs.mqueue.";
    private const string NetPrefix = "net.";

    public static void Validate(PodSandboxConfig config)
    {
        if (config.Metadata is { } m)
        {
            ValidateMetadataValue(m.Name, "config.metadata.name");
            ValidateMetadataValue(m.Namespace, "config.metadata.namespace");
            ValidateMetadataValue(m.Uid, "config.metadata.uid");
        }
        ValidateLogDirectory(config.LogDirectory);
        ValidateCgroupParent(config.Linux?.CgroupParent);
        var namespaces = config.Linux?.SecurityContext?.NamespaceOptions;
        if (config.Linux?.Sysctls is { Count: > 0 } sysctls)
            ValidateSysctls(sysctls, ownNetwork: namespaces?.Network != NamespaceMode.Node, ownIpc: namespaces?.Ipc != NamespaceMode.Node);
    }

    /// <summary>
    /// Name, namespace and uid. The kubelet sends DNS-1123 names and UUIDs; crictl and critest send freer ones, so
    /// only what breaks something is refused: over <see cref="MaxMetadataChars"/> characters, control characters
    /// (log and message forgery), '/' (path-like), and ';' or '=' (they separate CNI_ARGS, which carries these values).
    /// Empty values are the manager's check.
    /// </summary>
    public static void ValidateMetadataValue(string value, string field)
    {
        if (value.Length > MaxMetadataChars)
            throw new InvalidArgumentException(
                $"{field} is {value.Length} characters long; at most {MaxMetadataChars} are allowed (Kubernetes names are DNS-1123 names of at most 253): '{Echo.Of(value)}'", field);
        foreach (char c in value)
        {
            if (char.IsControl(c) || c is '/' or ';' or '=')
                throw new InvalidArgumentException(
                    $"{field} '{Echo.Of(value)}' contains {Describe(c)}; control characters, '/', ';' and '=' are not allowed (Kubernetes names are DNS-1123 names)", field);
        }
    }

    /// <summary>Absolute, bounded, and a directory if it exists (the daemon writes container logs under it).</summary>
    public static void ValidateLogDirectory(string logDirectory)
    {
        const string field = "config.log_directory";
        if (string.IsNullOrEmpty(logDirectory)) return;
        if (logDirectory.Length > MaxLogDirectoryChars)
            throw new InvalidArgumentException($"{field} is {logDirectory.Length} characters long; a path has at most {MaxLogDirectoryChars}: '{Echo.Of(logDirectory)}'", field);
        if (logDirectory.Contains('\0'))
            throw new InvalidArgumentException($"{field} '{Echo.Of(logDirectory)}' contains NUL", field);
        if (!logDirectory.StartsWith('/'))
            throw new InvalidArgumentException($"{field} '{Echo.Of(logDirectory)}' is relative; give an absolute directory such as /var/log/pods/<namespace>_<name>_<uid>", field);
        if (Path.Exists(logDirectory) && !Directory.Exists(logDirectory))
            throw new InvalidArgumentException($"{field} '{Echo.Of(logDirectory)}' exists and is not a directory; give a directory (or a path that does not exist yet)", field);
    }

    /// <summary>Length, level names and characters; absoluteness and ".." are the manager's check.</summary>
    public static void ValidateCgroupParent(string? cgroupParent)
    {
        const string field = "config.linux.cgroup_parent";
        if (string.IsNullOrEmpty(cgroupParent)) return;
        if (cgroupParent.Length > MaxCgroupParentChars)
            throw new InvalidArgumentException($"{field} is {cgroupParent.Length} characters long; at most {MaxCgroupParentChars} are allowed: '{Echo.Of(cgroupParent)}'", field);
        foreach (char c in cgroupParent)
            if (char.IsControl(c))
                throw new InvalidArgumentException($"{field} '{Echo.Of(cgroupParent)}' contains {Describe(c)}", field);
        foreach (var level in cgroupParent.Split('/'))
            if (System.Text.Encoding.UTF8.GetByteCount(level) > MaxCgroupLevelBytes)
                throw new InvalidArgumentException($"{field}: the level '{Echo.Of(level)}' is longer than {MaxCgroupLevelBytes} bytes, the longest name a cgroup can have", field);
    }

    /// <summary>
    /// Only namespaced sysctls, as the kubelet and containerd (through runc's validation) allow: the IPC ones when the
    /// pod has its own IPC namespace, net.* when it has its own network namespace. A name may use '/' as separator
    /// (net/ipv4/ip_forward), converted as the kubelet does. Anything else could only fail later, in the runtime.
    /// </summary>
    public static void ValidateSysctls(IReadOnlyDictionary<string, string> sysctls, bool ownNetwork, bool ownIpc)
    {
        if (sysctls.Count > MaxSysctls)
            throw new InvalidArgumentException($"config.linux.sysctls has {sysctls.Count} entries; at most {MaxSysctls} are allowed", "config.linux.sysctls");
        foreach (var (rawName, value) in sysctls)
        {
            string field = $"config.linux.sysctls[\"{Echo.Of(rawName)}\"]";
            if (rawName.Length is 0 or > MaxSysctlNameChars)
                throw new InvalidArgumentException($"{field}: a sysctl name has 1 to {MaxSysctlNameChars} characters", field);
            string name = ToDotSeparated(rawName);
            // Each level is a file or directory under /proc/sys: empty ones (a..b, trailing '.') or ".." make no sense.
            foreach (var level in name.Split('.', '/'))
            {
                if (level.Length == 0)
                    throw new InvalidArgumentException($"{field}: the name has an empty level; sysctl names look like net.ipv4.ip_forward", field);
                foreach (char c in level)
                    if (char.IsControl(c) || char.IsWhiteSpace(c) || c is '=' or '\\')
                        throw new InvalidArgumentException($"{field}: the name contains {Describe(c)}; sysctl names look like net.ipv4.ip_forward", field);
            }
            if (value.Length > MaxSysctlValueChars || value.Contains('\0') || value.Contains('\n'))
                throw new InvalidArgumentException($"{field}: the value must be at most {MaxSysctlValueChars} characters without NUL or newline", field);

            if (IpcSysctls.Contains(name) || name.StartsWith(MqueuePrefix, StringComparison.Ordinal))
            {
                if (!ownIpc)
                    throw new InvalidArgumentException(
                        $"{field} is an IPC namespace sysctl, but the pod uses the node's IPC namespace (namespace_options.ipc NODE): setting it would change the node", field);
            }
            else if (name.StartsWith(NetPrefix, StringComparison.Ordinal))
            {
                if (!ownNetwork)
                    throw new InvalidArgumentException(
                        $"{field} is a network namespace sysctl, but the pod uses the node's network (namespace_options.network NODE): setting it would change the node", field);
            }
            else
            {
                throw new InvalidArgumentException(
                    $"{field} is not namespaced: a pod may only set net.* (with its own network namespace) and the IPC ones " +
                    "(kernel.sem, kernel.shmall, kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced, kernel.msgmax, kernel.msgmnb, kernel.msgmni, fs.mqueue.*; with its own IPC namespace)", field);
            }
        }
    }

    /// <summary>
    /// The kubelet's rule: a name whose first separator is '/' uses '/' between levels and '.' inside them
    /// (net/ipv4/conf/eth0.100/forwarding), so the two swap; otherwise it is dot-separated already.
    /// </summary>
    public static string ToDotSeparated(string name)
    {
        int first = name.AsSpan().IndexOfAny('.', '/');
        if (first < 0 || name[first] == '.') return name;
        return string.Create(name.Length, name, static (span, n) =>
        {
            for (int i = 0; i < n.Length; i++)
                span[i] = n[i] switch { '.' => '/', '/' => '.', var c => c };
        });
    }

    private static string Describe(char c) => char.IsControl(c) ? $"the control character U+{(int)c:X4}" : $"'{c}'";
}
