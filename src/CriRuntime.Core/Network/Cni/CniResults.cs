using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CriRuntime.Network.Cni;

/// <summary>Plugin results: parsing, conversion between spec versions, and the pod's addresses.</summary>
internal static class CniResults
{
    /// <summary>Parses an ADD result and converts it to <paramref name="targetVersion"/> (the network's), so the
    /// next plugin's prevResult, the cache and the caller all see one shape whatever version the plugin answered in.</summary>
    /// <exception cref="FormatException">Not a result object.</exception>
    public static JsonObject Parse(ReadOnlySpan<byte> output, string targetVersion)
    {
        JsonNode? node;
        try
        {
            node = output.IsEmpty ? null : JsonNode.Parse(output);
        }
        catch (JsonException e)
        {
            throw new FormatException($"result is not JSON: {e.Message}", e);
        }
        if (node is not JsonObject result) throw new FormatException("result is not a JSON object");
        return Convert(result, targetVersion);
    }

    public static JsonObject Convert(JsonObject result, string targetVersion)
    {
        string source = result["cniVersion"] is JsonValue v && v.TryGetValue(out string? s) ? s : targetVersion;
        var converted = CniVersions.IsLegacyResult(source) ? FromLegacy(result) : (JsonObject)result.DeepClone();
        bool tagVersion = CniVersions.ResultIpsHaveVersion(targetVersion);
        if (converted["ips"] is JsonArray ips)
        {
            foreach (var ip in ips.OfType<JsonObject>())
            {
                if (!tagVersion) ip.Remove("version");
                else if (!ip.ContainsKey("version") && TryAddress(ip, out var address))
                    ip["version"] = address.AddressFamily == AddressFamily.InterNetworkV6 ? "6" : "4";
            }
        }
        converted["cniVersion"] = targetVersion;
        return converted;
    }

    /// <summary>Addresses of <paramref name="ifName"/> inside the sandbox (all addresses when the result does not
    /// tie any to an interface), IPv4 before IPv6, each family in result order, so the first is the primary.</summary>
    public static IReadOnlyList<string> PodIps(JsonObject result, string ifName)
    {
        if (result["ips"] is not JsonArray ips) return [];
        var interfaces = result["interfaces"] as JsonArray;
        var all = new List<(IPAddress Address, bool OnPodInterface)>();
        foreach (var ip in ips.OfType<JsonObject>())
        {
            if (!TryAddress(ip, out var address)) continue;
            bool onPod = ip["interface"] is JsonValue index && index.TryGetValue(out int i)
                && interfaces is not null && i >= 0 && i < interfaces.Count && interfaces[i] is JsonObject iface
                && iface["name"]?.GetValueKind() == JsonValueKind.String && (string?)iface["name"] == ifName
                && iface["sandbox"] is JsonValue sandbox && sandbox.TryGetValue(out string? path) && path.Length > 0;
            all.Add((address, onPod));
        }
        var chosen = all.Any(a => a.OnPodInterface) ? all.Where(a => a.OnPodInterface) : all;
        return chosen
            .OrderBy(a => a.Address.AddressFamily == AddressFamily.InterNetwork ? 0 : 1)
            .Select(a => a.Address.ToString())
            .Distinct()
            .ToList();
    }

    private static bool TryAddress(JsonObject ip, out IPAddress address)
    {
        address = IPAddress.None;
        if (ip["address"] is not JsonValue value || !value.TryGetValue(out string? cidr)) return false;
        int slash = cidr.IndexOf('/');
        return IPAddress.TryParse(slash < 0 ? cidr : cidr[..slash], out address!);
    }

    /// <summary>0.1.0/0.2.0 results: {"ip4": {"ip", "gateway", "routes"}, "ip6": {...}, "dns"}.</summary>
    private static JsonObject FromLegacy(JsonObject legacy)
    {
        var ips = new JsonArray();
        var routes = new JsonArray();
        foreach (var (key, family) in new[] { ("ip4", "4"), ("ip6", "6") })
        {
            if (legacy[key] is not JsonObject config) continue;
            var ip = new JsonObject { ["version"] = family, ["address"] = config["ip"]?.DeepClone() };
            if (config["gateway"] is JsonNode gateway) ip["gateway"] = gateway.DeepClone();
            ips.Add((JsonNode)ip);
            if (config["routes"] is JsonArray r)
                foreach (var route in r) routes.Add(route?.DeepClone());
        }
        var result = new JsonObject { ["ips"] = ips };
        if (routes.Count > 0) result["routes"] = routes;
        if (legacy["dns"] is JsonNode dns) result["dns"] = dns.DeepClone();
        return result;
    }
}
