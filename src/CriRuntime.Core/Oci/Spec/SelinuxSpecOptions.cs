using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>
/// SELinux labels, as containerd's CRI plugin sets them when SELinux is enabled: the container's selinux_options (else
/// its pod's) become process.selinuxLabel and linux.mountLabel, and the host directories of mounts with
/// selinux_relabel get the mount label, so the container may use them. On a host without SELinux the options are
/// ignored, as containerd and CRI-O do, so manifests written for SELinux nodes still run; that is logged once.
/// </summary>
internal static class SelinuxSpecOptions
{
    // The fields a request leaves out come from the usual container policy's contexts.
    internal const string DefaultProcessLabel = "system_u:system_r:container_t:s0";
    internal const string DefaultMountLabel = "system_u:object_r:container_file_t:s0";

    /// <summary>After the CRI mounts: it relabels their sources.</summary>
    public static void WithSelinux(RuntimeSpec spec, ContainerSpecInput input)
    {
        var host = input.Lsm ?? LsmHost.System;
        var options = OptionsOf(input);
        bool relabels = input.Config.Mounts.Any(m => m.SelinuxRelabel);
        if (options is null && !relabels) return;
        if (!host.SelinuxEnabled)
        {
            host.NoteSelinuxOptionsIgnored(input.Id);
            return;
        }
        var (processLabel, mountLabel) = Labels(options);
        if (options is not null)
        {
            spec.Process!.SelinuxLabel = processLabel;
            spec.Linux!.MountLabel = mountLabel;
        }
        // A privileged container runs unconfined by policy; its volumes are still labelled when asked, as containerd does.
        foreach (var mount in input.Config.Mounts.Where(m => m.SelinuxRelabel))
            host.Relabel(mount.HostPath, mountLabel);
    }

    /// <summary>The container's options, else the pod's; null when neither names any field.</summary>
    internal static SELinuxOption? OptionsOf(ContainerSpecInput input)
    {
        static bool Any(SELinuxOption? o) => o is not null && (o.User.Length + o.Role.Length + o.Type.Length + o.Level.Length) > 0;
        var container = input.Config.Linux?.SecurityContext?.SelinuxOptions;
        if (Any(container)) return container;
        var pod = input.PodConfig.Linux?.SecurityContext?.SelinuxOptions;
        return Any(pod) ? pod : null;
    }

    /// <summary>
    /// user:role:type:level for the process; the file label takes only user and level from the options (role and type
    /// are the process's), as go-selinux's InitLabels does.
    /// </summary>
    internal static (string Process, string Mount) Labels(SELinuxOption? options)
    {
        string[] process = DefaultProcessLabel.Split(':', 4);
        string[] mount = DefaultMountLabel.Split(':', 4);
        if (options is not null)
        {
            foreach (var (value, index) in new[] { (options.User, 0), (options.Role, 1), (options.Type, 2), (options.Level, 3) })
            {
                if (value.Length == 0) continue;
                if (value.Contains('\n') || value.Contains('\0') || (index < 3 && value.Contains(':')))
                    throw new InvalidArgumentException($"selinux_options field {Echo.Of(value)} is not a valid SELinux context part");
                process[index] = value;
                if (index is 0 or 3) mount[index] = value;
            }
        }
        return (string.Join(':', process), string.Join(':', mount));
    }
}
