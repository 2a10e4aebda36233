using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>
/// One step of building a container's OCI spec, like one of containerd's SpecOpts: it reads the CRI input and what
/// earlier steps wrote, and fills in its own part of the spec, or refuses an input it cannot express.
/// </summary>
internal delegate void ContainerSpecOption(RuntimeSpec spec, ContainerSpecInput input);

/// <summary>
/// A CRI container's spec: <see cref="Options"/> applied in order to an empty spec. A new feature (AppArmor, SELinux,
/// CDI devices, image volumes) is one file with its option and one line in this list.
/// </summary>
internal static class ContainerSpecOptions
{
    /// <summary>
    /// The order matters twice: later options read what earlier ones wrote (seccomp reads the bounding set, devices
    /// add to the device cgroup rules resources began, CRI mounts replace default mounts), and the first option that
    /// refuses the input decides which of several errors the caller sees.
    /// </summary>
    internal static readonly ContainerSpecOption[] Options =
    [
        SecuritySpecOptions.RequirePrivilegedPod,
        MountSpecOptions.WithRootfs,
        ProcessSpecOptions.WithArgsTerminalAndCwd,
        SecuritySpecOptions.WithNoNewPrivileges,
        ResourceSpecOptions.WithCgroupsPath,
        MountSpecOptions.WithDefaultMounts,
        ProcessSpecOptions.WithEnv,
        ProcessSpecOptions.WithUser,
        SecuritySpecOptions.WithCapabilities,
        ResourceSpecOptions.WithOomScoreAdj,
        ResourceSpecOptions.WithResources,
        NamespaceSpecOptions.WithNamespaces,
        CgroupNamespaceSpecOptions.WithCgroupNamespace,
        SysctlSpecOptions.WithSysctls,
        SecuritySpecOptions.WithMaskedAndReadonlyPaths,
        DeviceSpecOptions.WithPrivilegedDevices,
        DeviceSpecOptions.WithCriDevices,
        SeccompSpecOptions.WithSeccomp,
        AppArmorSpecOptions.WithAppArmor,
        MountSpecOptions.WithCriMounts,
        SelinuxSpecOptions.WithSelinux,
        AnnotationSpecOptions.WithCriAnnotations,
    ];

    public static RuntimeSpec Build(ContainerSpecInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var spec = new RuntimeSpec { Process = new SpecProcess(), Linux = new SpecLinux() };
        foreach (var option in Options) option(spec, input);
        return spec;
    }
}

/// <summary>Readings of the input that several options share.</summary>
internal static class ContainerSpecInputExtensions
{
    /// <summary>The container's security context; an absent one means all defaults.</summary>
    public static LinuxContainerSecurityContext SecurityContext(this ContainerSpecInput input) =>
        input.Config.Linux?.SecurityContext ?? new LinuxContainerSecurityContext();

    public static bool IsPrivileged(this ContainerSpecInput input) => input.Config.Linux?.SecurityContext?.Privileged ?? false;
}
