namespace CriRuntime.Oci.Spec;

/// <summary>
/// The io.kubernetes.cri.* annotations containerd's CRI plugin puts on specs: runtimes, OCI hooks and monitoring
/// read them to tell pods from containers and to find a container's pod. The CRI config's own annotations are
/// not copied, as under containerd.
/// </summary>
internal static class AnnotationSpecOptions
{
    public const string ContainerTypeAnnotation = "io.kubernetes.cri.container-type";
    public const string ContainerNameAnnotation = "io.kubernetes.cri.container-name";
    public const string SandboxIdAnnotation = "io.kubernetes.cri.sandbox-id";
    public const string SandboxNameAnnotation = "io.kubernetes.cri.sandbox-name";
    public const string SandboxNamespaceAnnotation = "io.kubernetes.cri.sandbox-namespace";
    public const string SandboxUidAnnotation = "io.kubernetes.cri.sandbox-uid";
    public const string ImageNameAnnotation = "io.kubernetes.cri.image-name";

    public static void WithCriAnnotations(RuntimeSpec spec, ContainerSpecInput input)
    {
        var annotations = new Dictionary<string, string>
        {
            [ContainerTypeAnnotation] = "container",
            [ContainerNameAnnotation] = input.Config.Metadata?.Name ?? "",
            [SandboxNameAnnotation] = input.PodConfig.Metadata?.Name ?? "",
            [SandboxNamespaceAnnotation] = input.PodConfig.Metadata?.Namespace ?? "",
            [SandboxUidAnnotation] = input.PodConfig.Metadata?.Uid ?? "",
        };
        if (input.SandboxId is not null) annotations[SandboxIdAnnotation] = input.SandboxId;
        if (input.ImageName is not null) annotations[ImageNameAnnotation] = input.ImageName;
        spec.Annotations = annotations;
    }
}
