namespace CriRuntime.Oci.Spec;

/// <summary>
/// A private cgroup namespace for every non-privileged container on cgroup v2, as Docker, Podman and containerd 2.x
/// give one: the container sees its own cgroup as <c>/</c> (/proc/self/cgroup reads <c>0::/</c>) and learns nothing of
/// the node's hierarchy above it. Privileged containers keep the host's, as containerd does, so that node agents that
/// manage cgroups see the real paths. On cgroup v1 the host's namespace stays: runc mounts v1 hierarchies by their host
/// paths and containerd 2.x makes no namespace there either.
/// </summary>
internal static class CgroupNamespaceSpecOptions
{
    /// <summary>After <see cref="NamespaceSpecOptions.WithNamespaces"/>, which sets the list this adds to.</summary>
    public static void WithCgroupNamespace(RuntimeSpec spec, ContainerSpecInput input)
    {
        if (input.IsPrivileged()) return;
        if (!(input.CgroupV2 ?? IsCgroupV2Host())) return;
        spec.Linux!.Namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Cgroup });
    }

    /// <summary>The unified hierarchy is mounted at /sys/fs/cgroup when its root has cgroup.controllers (runc's test).</summary>
    internal static bool IsCgroupV2Host() => File.Exists("/sys/fs/cgroup/cgroup.controllers");
}
