namespace CriRuntime.Oci.Spec;

/// <summary>
/// The pod's sysctls, which apply to every container (they are per network or IPC namespace, which the pod's containers
/// share), over the defaults containerd 2.x gives a pod with its own network namespace: any port may be bound without
/// CAP_NET_BIND_SERVICE and any group may open ICMP echo sockets (its enable_unprivileged_ports and
/// enable_unprivileged_icmp), so non-root containers can listen on port 80 and ping.
/// </summary>
internal static class SysctlSpecOptions
{
    public const string UnprivilegedPortStart = "net.ipv4.ip_unprivileged_port_start";
    public const string PingGroupRange = "net.ipv4.ping_group_range";

    public static void WithSysctls(RuntimeSpec spec, ContainerSpecInput input)
    {
        var sysctls = new Dictionary<string, string>(StringComparer.Ordinal);
        // Only in the pod's own network namespace: in the node's they would change the node.
        if (input.NetworkNamespacePath is not null)
        {
            if (input.UnprivilegedPorts) sysctls[UnprivilegedPortStart] = "0";
            if (input.UnprivilegedIcmp) sysctls[PingGroupRange] = "0 2147483647";
        }
        if (input.PodConfig.Linux?.Sysctls is { Count: > 0 } podSysctls)
        {
            foreach (var (name, value) in podSysctls)
            {
                // The pod's own value wins, also when it spells the name with '/' (net/ipv4/ping_group_range), as the kubelet allows.
                sysctls.Remove(name.Replace('/', '.'));
                sysctls[name] = value;
            }
        }
        spec.Linux!.Sysctl = sysctls.Count > 0 ? sysctls : null;
    }
}
