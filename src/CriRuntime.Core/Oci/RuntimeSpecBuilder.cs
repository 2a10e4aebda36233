using CriRuntime.Oci.Spec;
using CriRuntime.Storage;
using Runtime.V1;

namespace CriRuntime.Oci;

/// <summary>
/// Builds OCI runtime specs for CRI containers and the pod infra process, following containerd's
/// CRI plugin (container_create_linux.go and its spec options) so workloads see what they would see
/// under containerd. The work is done by the ordered spec options in <c>Oci/Spec/</c>
/// (<see cref="ContainerSpecOptions"/>, <see cref="InfraSpecOptions"/>); this class is the entry point the
/// managers and OciRuntime call, and keeps the names the rest of the code already uses.
/// </summary>
public static class RuntimeSpecBuilder
{
    public const string DefaultPathEnv = ProcessSpecOptions.DefaultPathEnv;

    /// <inheritdoc cref="SecuritySpecOptions.DefaultCapabilities"/>
    public static IReadOnlyList<string> DefaultCapabilities => SecuritySpecOptions.DefaultCapabilities;

    /// <inheritdoc cref="SecuritySpecOptions.AllCapabilities"/>
    public static IReadOnlyList<string> AllCapabilities => SecuritySpecOptions.AllCapabilities;

    /// <inheritdoc cref="SecuritySpecOptions.CurrentCapabilities"/>
    public static List<string> CurrentCapabilities() => SecuritySpecOptions.CurrentCapabilities();

    /// <inheritdoc cref="SecuritySpecOptions.CapabilitiesIn"/>
    public static List<string> CapabilitiesIn(ulong mask) => SecuritySpecOptions.CapabilitiesIn(mask);

    /// <inheritdoc cref="SecuritySpecOptions.DefaultMaskedPaths"/>
    public static IReadOnlyList<string> DefaultMaskedPaths => SecuritySpecOptions.DefaultMaskedPaths;

    /// <inheritdoc cref="SecuritySpecOptions.DefaultReadonlyPaths"/>
    public static IReadOnlyList<string> DefaultReadonlyPaths => SecuritySpecOptions.DefaultReadonlyPaths;

    public const string ContainerTypeAnnotation = AnnotationSpecOptions.ContainerTypeAnnotation;
    public const string ContainerNameAnnotation = AnnotationSpecOptions.ContainerNameAnnotation;
    public const string SandboxIdAnnotation = AnnotationSpecOptions.SandboxIdAnnotation;
    public const string SandboxNameAnnotation = AnnotationSpecOptions.SandboxNameAnnotation;
    public const string SandboxNamespaceAnnotation = AnnotationSpecOptions.SandboxNamespaceAnnotation;
    public const string SandboxUidAnnotation = AnnotationSpecOptions.SandboxUidAnnotation;
    public const string ImageNameAnnotation = AnnotationSpecOptions.ImageNameAnnotation;

    /// <inheritdoc cref="ResourceSpecOptions.OomScoreAdjFloor"/>
    public static int OomScoreAdjFloor => ResourceSpecOptions.OomScoreAdjFloor;

    /// <summary>A CRI container's spec: <see cref="ContainerSpecOptions.Options"/> in order.</summary>
    public static RuntimeSpec BuildContainer(ContainerSpecInput input) => ContainerSpecOptions.Build(input);

    /// <summary>The pod infra process's spec (<see cref="InfraSpecOptions"/>).</summary>
    public static RuntimeSpec BuildInfra(string infraRootfs, string? netns, string? ipcns, string? utsns, string cgroupsPath, string hostname) =>
        InfraSpecOptions.Build(new InfraSpecInput(infraRootfs, netns, ipcns, utsns, cgroupsPath, hostname));

    /// <inheritdoc cref="InfraSpecOptions.PrepareRootfs"/>
    public static void PrepareInfraRootfs(string dir, string catatonitPath = "/usr/bin/catatonit") => InfraSpecOptions.PrepareRootfs(dir, catatonitPath);

    /// <summary>Writes &lt;bundleDir&gt;/config.json atomically and durably, 0600 in a 0700 dir: it holds the container's
    /// environment, secrets included.</summary>
    public static void WriteBundle(string bundleDir, RuntimeSpec spec)
    {
        Native.FileModes.CreateDirectory(bundleDir, Native.FileModes.PrivateDirectory);
        AtomicFile.WriteAllBytes(Path.Combine(bundleDir, "config.json"), spec.ToUtf8Json());
    }

    /// <inheritdoc cref="ResourceSpecOptions.FromCri"/>
    public static SpecLinuxResources Resources(LinuxContainerResources? resources, bool swapLimitSupported, bool hugetlbAvailable = true) =>
        ResourceSpecOptions.FromCri(resources, swapLimitSupported, hugetlbAvailable);

    /// <inheritdoc cref="ResourceSpecOptions.HugetlbAvailableOnHost"/>
    public static bool HugetlbAvailableOnHost() => ResourceSpecOptions.HugetlbAvailableOnHost();

    /// <inheritdoc cref="ResourceSpecOptions.SwapLimitSupportedOnHost"/>
    public static bool SwapLimitSupportedOnHost() => ResourceSpecOptions.SwapLimitSupportedOnHost();
}
