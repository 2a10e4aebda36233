using System.Text.Json;
using System.Text.Json.Nodes;

namespace CriRuntime.Network.Cni;

/// <summary>One plugin of a network's chain: its type (the binary's name), its config object as written in the
/// file, and the runtime capabilities it asks for.</summary>
internal sealed record CniPlugin(string Type, JsonObject Config, IReadOnlySet<string> Capabilities);

/// <summary>A parsed network configuration list: the unit ADD, CHECK and DEL run over.</summary>
internal sealed class CniNetwork
{
    private CniNetwork(string name, string cniVersion, bool disableCheck, IReadOnlyList<CniPlugin> plugins, JsonObject json)
    {
        Name = name;
        CniVersion = cniVersion;
        DisableCheck = disableCheck;
        Plugins = plugins;
        Json = json;
    }

    public string Name { get; }
    public string CniVersion { get; }
    public bool DisableCheck { get; }
    public IReadOnlyList<CniPlugin> Plugins { get; }

    /// <summary>The list in conflist form (a single .conf is wrapped), as stored in the result cache.</summary>
    public JsonObject Json { get; }

    /// <summary>The network the runtime attaches as "lo" before the pod's network, as containerd does, so the
    /// loopback interface is up. Same spec version as the pod network: the same plugin set speaks it.</summary>
    public static CniNetwork Loopback(string cniVersion) =>
        FromList(new JsonObject
        {
            ["cniVersion"] = cniVersion,
            ["name"] = "cni-loopback",
            ["plugins"] = new JsonArray(new JsonObject { ["type"] = "loopback" }),
        });

    /// <summary>Parses a config file's bytes: a list when it has "plugins", else a single plugin config that is
    /// wrapped into a one-plugin list (keeping its name and cniVersion on the list, as libcni does).</summary>
    /// <exception cref="FormatException">Not JSON, or not a usable network config; the message says what is wrong.</exception>
    public static CniNetwork Parse(ReadOnlySpan<byte> bytes)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException e)
        {
            throw new FormatException($"invalid JSON: {e.Message}", e);
        }
        if (node is not JsonObject root) throw new FormatException("not a JSON object");
        if (root.ContainsKey("plugins")) return FromList(root);

        var single = (JsonObject)root.DeepClone();
        var list = new JsonObject
        {
            ["cniVersion"] = single["cniVersion"]?.DeepClone(),
            ["name"] = single["name"]?.DeepClone(),
            ["plugins"] = new JsonArray(single),
        };
        if (single["disableCheck"] is JsonNode disableCheck) list["disableCheck"] = disableCheck.DeepClone();
        return FromList(list);
    }

    /// <summary>Validates a list-form object (from a file or the result cache).</summary>
    public static CniNetwork FromList(JsonObject list)
    {
        string name = StringField(list, "name", "network") ?? throw new FormatException("no \"name\"");
        if (name.Length == 0) throw new FormatException("\"name\" is empty");
        string version = StringField(list, "cniVersion", "network") ?? throw new FormatException("no \"cniVersion\"");
        if (!CniVersions.IsSupported(version))
            throw new FormatException($"cniVersion \"{version}\" is not supported (supported: {string.Join(", ", CniVersions.Supported)})");
        bool disableCheck = list["disableCheck"] switch
        {
            null => false,
            JsonValue v when v.TryGetValue(out bool b) => b,
            // libcni accepts the string forms too.
            JsonValue v when v.TryGetValue(out string? s) && bool.TryParse(s, out bool b) => b,
            _ => throw new FormatException("\"disableCheck\" is not a boolean"),
        };
        if (list["plugins"] is not JsonArray array || array.Count == 0) throw new FormatException("\"plugins\" is missing or empty");

        var plugins = new List<CniPlugin>();
        for (int i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject config) throw new FormatException($"plugins[{i}] is not an object");
            string type = StringField(config, "type", $"plugins[{i}]") ?? throw new FormatException($"plugins[{i}] has no \"type\"");
            // The type is looked up as a file name in the bin dirs: no paths.
            if (type.Length == 0 || type.Contains('/') || type is "." or "..")
                throw new FormatException($"plugins[{i}] has an invalid type \"{type}\" (want a plugin binary name)");
            var capabilities = new HashSet<string>(StringComparer.Ordinal);
            if (config["capabilities"] is JsonObject declared)
                foreach (var (capability, enabled) in declared)
                    if (enabled is JsonValue v && v.TryGetValue(out bool on) && on) capabilities.Add(capability);
            plugins.Add(new CniPlugin(type, (JsonObject)config.DeepClone(), capabilities));
        }
        return new CniNetwork(name, version, disableCheck, plugins, (JsonObject)list.DeepClone());
    }

    private static string? StringField(JsonObject o, string key, string where) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        _ => throw new FormatException($"{where} \"{key}\" is not a string"),
    };
}
