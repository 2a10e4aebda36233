namespace CriRuntime.Oci.Spec;

/// <summary>The container's seccomp filter (<see cref="SeccompProfiles"/>).</summary>
internal static class SeccompSpecOptions
{
    /// <summary>After the capabilities: the built-in profile allows some syscalls only with the capability that makes them legitimate.</summary>
    public static void WithSeccomp(RuntimeSpec spec, ContainerSpecInput input)
    {
        var security = input.SecurityContext();
        var bounding = spec.Process?.Capabilities?.Bounding
            ?? throw new InvalidOperationException("the seccomp option runs after the capabilities option");
#pragma warning disable CS0612 // the deprecated path still comes from older kubelets and from crictl configs
        spec.Linux!.Seccomp = SeccompProfiles.ForContainer(security.Seccomp, security.SeccompProfilePath, security.Privileged, bounding);
#pragma warning restore CS0612
    }
}
