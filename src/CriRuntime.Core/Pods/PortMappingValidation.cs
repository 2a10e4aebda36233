using System.Net;
using Runtime.V1;

namespace CriRuntime.Pods;

/// <summary>
/// A RunPodSandbox's port mappings beyond their port numbers: a protocol outside CRI's enum and a host_ip that is not
/// an IP address used to pass to the CNI portmap plugin and fail there (Unknown) after the pod's network was made.
/// </summary>
public static class PortMappingValidation
{
    public static void Validate(IReadOnlyList<PortMapping> mappings)
    {
        for (int i = 0; i < mappings.Count; i++)
        {
            var p = mappings[i];
            if (!Enum.IsDefined(p.Protocol))
                throw new InvalidArgumentException($"config.port_mappings[{i}].protocol {(int)p.Protocol} is not a protocol (0 TCP, 1 UDP, 2 SCTP)");
            // Only a literal address: IPAddress.TryParse would also take "1", "0x7f.1" and other inet_aton forms.
            if (!string.IsNullOrEmpty(p.HostIp) && !IsLiteralAddress(p.HostIp))
                throw new InvalidArgumentException(
                    $"config.port_mappings[{i}].host_ip '{(p.HostIp.Length <= 64 ? p.HostIp : p.HostIp[..64] + "...")}' is not an IP address; give one such as 127.0.0.1 or ::1, or leave it empty for all addresses");
        }
    }

    private static bool IsLiteralAddress(string text)
    {
        if (text.Length > 45 || !IPAddress.TryParse(text, out var address)) return false;
        // Dotted quads only for IPv4; an IPv6 literal has ':' and no scope or brackets.
        return address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? text.Contains(':') && !text.Contains('%') && !text.Contains('[')
            : text.Split('.').Length == 4 && text.Split('.').All(o => o.Length is > 0 and <= 3 && o.All(char.IsAsciiDigit));
    }
}
