namespace CriRuntime.Oci.Spec;

/// <summary>The container's namespaces: a mount namespace of its own, the pod's network/IPC/UTS ones (or the host's), and a
/// PID namespace by the CRI's pid mode (the pod's, its own, the node's, or a target container's).</summary>
internal static class NamespaceSpecOptions
{
    public static void WithNamespaces(RuntimeSpec spec, ContainerSpecInput input)
    {
        var namespaces = new List<SpecNamespace> { new() { Type = NamespaceTypes.Mount } };
        // A null path means the host's namespace: no entry, so the runtime does not unshare one.
        if (input.NetworkNamespacePath is not null)
            namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Network, Path = input.NetworkNamespacePath });
        if (input.IpcNamespacePath is not null)
            namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Ipc, Path = input.IpcNamespacePath });
        if (input.UtsNamespacePath is not null)
            namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Uts, Path = input.UtsNamespacePath });
        switch (input.PidMode)
        {
            case PidNamespaceMode.Pod:
                if (string.IsNullOrEmpty(input.PodPidNamespacePath))
                    throw new ArgumentException($"container {input.Id} shares the pod's PID namespace but no PodPidNamespacePath was given");
                namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Pid, Path = input.PodPidNamespacePath });
                break;
            case PidNamespaceMode.Container:
                namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Pid });
                break;
            case PidNamespaceMode.Node:
                break;
            case PidNamespaceMode.Target:
                // kubectl debug --target: the target container's PID namespace, through its init process.
                if (string.IsNullOrEmpty(input.TargetPidNamespacePath))
                    throw new ArgumentException($"container {input.Id} targets another container's PID namespace but no TargetPidNamespacePath was given");
                namespaces.Add(new SpecNamespace { Type = NamespaceTypes.Pid, Path = input.TargetPidNamespacePath });
                break;
            default:
                throw new ArgumentException($"unsupported PID namespace mode {input.PidMode}");
        }
        spec.Linux!.Namespaces = namespaces;
    }
}
