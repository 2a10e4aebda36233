namespace CriRuntime.Network.Cni;

/// <summary>One hostPort → containerPort forward, passed to plugins declaring the <c>portMappings</c> capability.</summary>
/// <param name="Protocol">"tcp", "udp" or "sctp" (lower case, as CNI's portmap expects).</param>
/// <param name="HostIp">Host address to bind, or null/empty for all addresses.</param>
public sealed record PodPortMapping(string Protocol, int ContainerPort, int HostPort, string? HostIp);

/// <summary>Traffic shaping for the <c>bandwidth</c> capability; rates in bits per second, bursts in bits.</summary>
public sealed record PodBandwidth(long IngressRateBitsPerSecond, long IngressBurstBits, long EgressRateBitsPerSecond, long EgressBurstBits);

/// <summary>DNS settings for the <c>dns</c> capability.</summary>
public sealed record PodDns(IReadOnlyList<string> Servers, IReadOnlyList<string> Searches, IReadOnlyList<string> Options);

/// <summary>What is needed to attach one pod sandbox to the CNI network (or detach it).</summary>
/// <param name="SandboxId">CNI_CONTAINERID and the name of the result cache entry; letters, digits, '_', '-', '.'.</param>
/// <param name="NetnsPath">The pinned network namespace (CNI_NETNS).</param>
/// <param name="Ips">Requested addresses for the <c>ips</c> capability (CIDR form, e.g. "10.1.2.3/24").</param>
public sealed record PodNetworkRequest(
    string SandboxId, string NetnsPath, string PodName, string PodNamespace, string PodUid,
    IReadOnlyList<PodPortMapping> PortMappings, PodBandwidth? Bandwidth = null, PodDns? Dns = null, IReadOnlyList<string>? Ips = null);

/// <summary>The outcome of a successful ADD.</summary>
/// <param name="Ips">Addresses of the pod's eth0 without prefix length: primary first, IPv4 before IPv6.</param>
/// <param name="ResultJson">The final plugin's result, in the network's cniVersion.</param>
public sealed record PodNetworkResult(IReadOnlyList<string> Ips, string ResultJson);

/// <summary>The CRI NetworkReady condition as CNI sees it.</summary>
/// <param name="Reason">"NetworkPluginNotReady" when not ready, else null.</param>
/// <param name="Message">What is wrong and where, when not ready.</param>
/// <param name="NetworkName">The network pods are attached to, when ready.</param>
/// <param name="ConfigFile">The file that network was read from, when ready.</param>
public sealed record CniStatus(bool Ready, string? Reason, string? Message, string? NetworkName, string? ConfigFile)
{
    public const string NotReadyReason = "NetworkPluginNotReady";

    internal static CniStatus NotReady(string message) => new(false, NotReadyReason, message, null, null);
}

/// <summary>A CNI operation failed: no usable config, a plugin error (its <c>msg</c> and <c>details</c>, or its stderr),
/// a plugin timeout, or a broken result.</summary>
public sealed class CniException(string message, Exception? inner = null) : CriException(CriErrorKind.Unknown, message, inner)
{
    /// <summary>The plugin type that failed, when the failure came from one plugin.</summary>
    public string? Plugin { get; init; }

    /// <summary>The CNI error code the plugin reported (spec: 1-99 are well-known, 100+ plugin specific), if any.</summary>
    public int? Code { get; init; }
}
