using System.Text;
using Runtime.V1;

namespace CriRuntime.Containers;

/// <summary>
/// Bounds on what a CreateContainer request may carry, checked before anything is mounted or spawned.
/// Beyond them the kernel would refuse the exec anyway, and a runtime's error about a huge value (runc
/// quotes it) fills the 64 KiB stderr pipe conmon does not read until runc exits, so neither ever
/// finishes. Each bound is well above what a kubelet sends; a refused field is named in the message.
/// </summary>
public static class ContainerConfigLimits
{
    /// <summary>The kernel's MAX_ARG_STRLEN (32 pages): execve refuses a longer argument or variable.</summary>
    public const int MaxArgBytes = 128 * 1024;

    /// <summary>command + args + envs together, counted as execve does (with each string's NUL).</summary>
    public const int MaxArgvEnvBytes = 1024 * 1024;

    /// <summary>PATH_MAX.</summary>
    public const int MaxPathBytes = 4096;

    /// <summary>A CPU or memory-node list; a list of every second CPU of a 4096-CPU node is about 19 KiB.</summary>
    public const int MaxCpusetBytes = 32 * 1024;

    /// <summary>Names, labels' and capabilities' parts, SELinux fields, page sizes, unified cgroup keys.</summary>
    public const int MaxNameBytes = 1024;

    /// <summary>A unified cgroup value (a cgroup file's content as written).</summary>
    public const int MaxCgroupValueBytes = 32 * 1024;

    /// <summary>Labels plus annotations, as Kubernetes bounds an object's annotations (256 KiB).</summary>
    public const int MaxLabelsAndAnnotationsBytes = 256 * 1024;

    /// <summary>Throws <see cref="InvalidArgumentException"/> naming the first field over its bound.</summary>
    public static void Validate(ContainerConfig config)
    {
        Name(config.Metadata?.Name, "config.metadata.name");
        Path(config.Image?.Image, "config.image.image");
        Path(config.WorkingDir, "config.working_dir");
        Path(config.LogPath, "config.log_path");

        long argvEnv = 0;
        for (int i = 0; i < config.Command.Count; i++) argvEnv += Arg(config.Command[i], $"config.command[{i}]");
        for (int i = 0; i < config.Args.Count; i++) argvEnv += Arg(config.Args[i], $"config.args[{i}]");
        for (int i = 0; i < config.Envs.Count; i++)
        {
            var env = config.Envs[i];
            long bytes = Encoding.UTF8.GetByteCount(env.Key) + 1 + env.Value.Length + 1; // KEY=value\0
            if (bytes > MaxArgBytes)
                throw new InvalidArgumentException($"config.envs[{i}] ({Preview(env.Key)}) is {bytes} bytes; the kernel's limit for one variable is {MaxArgBytes}");
            argvEnv += bytes;
        }
        if (argvEnv > MaxArgvEnvBytes)
            throw new InvalidArgumentException(
                $"config.command, config.args and config.envs are {argvEnv} bytes together, more than the {MaxArgvEnvBytes} allowed; pass large data in a file or volume");

        for (int i = 0; i < config.Mounts.Count; i++)
        {
            Path(config.Mounts[i].ContainerPath, $"config.mounts[{i}].container_path");
            Path(config.Mounts[i].HostPath, $"config.mounts[{i}].host_path");
            Path(config.Mounts[i].ImageSubPath, $"config.mounts[{i}].image_sub_path");
            for (int j = 0; j < config.Mounts[i].MountOptions.Count; j++) Name(config.Mounts[i].MountOptions[j], $"config.mounts[{i}].mount_options[{j}]");
        }
        for (int i = 0; i < config.Devices.Count; i++)
        {
            Path(config.Devices[i].ContainerPath, $"config.devices[{i}].container_path");
            Path(config.Devices[i].HostPath, $"config.devices[{i}].host_path");
            Name(config.Devices[i].Permissions, $"config.devices[{i}].permissions");
        }
        for (int i = 0; i < config.CDIDevices.Count; i++) Name(config.CDIDevices[i].Name, $"config.CDI_devices[{i}].name");

        long labels = 0;
        foreach (var (k, v) in config.Labels) labels += Encoding.UTF8.GetByteCount(k) + Encoding.UTF8.GetByteCount(v);
        foreach (var (k, v) in config.Annotations) labels += Encoding.UTF8.GetByteCount(k) + Encoding.UTF8.GetByteCount(v);
        if (labels > MaxLabelsAndAnnotationsBytes)
            throw new InvalidArgumentException($"config.labels and config.annotations are {labels} bytes together, more than the {MaxLabelsAndAnnotationsBytes} allowed");

        if (config.Linux?.Resources is { } r)
        {
            Check(r.CpusetCpus, MaxCpusetBytes, "config.linux.resources.cpuset_cpus");
            Check(r.CpusetMems, MaxCpusetBytes, "config.linux.resources.cpuset_mems");
            for (int i = 0; i < r.HugepageLimits.Count; i++) Name(r.HugepageLimits[i].PageSize, $"config.linux.resources.hugepage_limits[{i}].page_size");
            foreach (var (k, v) in r.Unified)
            {
                Name(k, "config.linux.resources.unified key");
                Check(v, MaxCgroupValueBytes, $"config.linux.resources.unified[{Preview(k)}]");
            }
        }
        if (config.Linux?.SecurityContext is { } s)
        {
            if (s.Capabilities is { } caps)
            {
                for (int i = 0; i < caps.AddCapabilities.Count; i++) Name(caps.AddCapabilities[i], $"config.linux.security_context.capabilities.add_capabilities[{i}]");
                for (int i = 0; i < caps.DropCapabilities.Count; i++) Name(caps.DropCapabilities[i], $"config.linux.security_context.capabilities.drop_capabilities[{i}]");
                for (int i = 0; i < caps.AddAmbientCapabilities.Count; i++) Name(caps.AddAmbientCapabilities[i], $"config.linux.security_context.capabilities.add_ambient_capabilities[{i}]");
            }
            if (s.SelinuxOptions is { } se)
            {
                Name(se.User, "config.linux.security_context.selinux_options.user");
                Name(se.Role, "config.linux.security_context.selinux_options.role");
                Name(se.Type, "config.linux.security_context.selinux_options.type");
                Name(se.Level, "config.linux.security_context.selinux_options.level");
            }
            Name(s.RunAsUsername, "config.linux.security_context.run_as_username");
            for (int i = 0; i < s.MaskedPaths.Count; i++) Path(s.MaskedPaths[i], $"config.linux.security_context.masked_paths[{i}]");
            for (int i = 0; i < s.ReadonlyPaths.Count; i++) Path(s.ReadonlyPaths[i], $"config.linux.security_context.readonly_paths[{i}]");
            Path(s.Seccomp?.LocalhostRef, "config.linux.security_context.seccomp.localhost_ref");
            Path(s.Apparmor?.LocalhostRef, "config.linux.security_context.apparmor.localhost_ref");
            Path(s.SeccompProfilePath, "config.linux.security_context.seccomp_profile_path");
            Path(s.ApparmorProfile, "config.linux.security_context.apparmor_profile");
        }
    }

    private static long Arg(string value, string field)
    {
        long bytes = Encoding.UTF8.GetByteCount(value) + 1;
        if (bytes > MaxArgBytes)
            throw new InvalidArgumentException($"{field} is {bytes} bytes; the kernel's limit for one argument is {MaxArgBytes}");
        return bytes;
    }

    private static void Path(string? value, string field) => Check(value, MaxPathBytes, field);

    private static void Name(string? value, string field) => Check(value, MaxNameBytes, field);

    private static void Check(string? value, int max, string field)
    {
        // A UTF-8 byte count is at most three times the UTF-16 length: skip the count for short strings.
        if (value is null || value.Length * 3 <= max) return;
        int bytes = Encoding.UTF8.GetByteCount(value);
        if (bytes > max) throw new InvalidArgumentException($"{field} is {bytes} bytes, more than the {max} allowed");
    }

    /// <summary>The start of a value for a message, never the whole of a huge one.</summary>
    private static string Preview(string value) => value.Length <= 64 ? value : value[..64] + "...";
}
