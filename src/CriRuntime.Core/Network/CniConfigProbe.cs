using System.Text.Json;

namespace CriRuntime.Network;

/// <summary>
/// Tells whether a usable CNI network configuration is present, for the NetworkReady condition.
/// Reads the directory on each call (kubelet asks every few seconds; a directory listing is cheap),
/// so adding or fixing a config is noticed without a restart.
/// </summary>
public sealed class CniConfigProbe(string confDir)
{
    public string ConfDir => confDir;

    /// <summary>The file that would be used, or null with the reason there is none.</summary>
    public (string? File, string? Problem) Probe()
    {
        if (!Directory.Exists(confDir))
            return (null, $"cni config directory {confDir} does not exist");

        var candidates = Directory.EnumerateFiles(confDir)
            .Where(f => f.EndsWith(".conflist", StringComparison.Ordinal) || f.EndsWith(".conf", StringComparison.Ordinal) || f.EndsWith(".json", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (candidates.Count == 0)
            return (null, $"no network config found in {confDir}: add a CNI .conflist (hack/install-deps.sh installs a default one)");

        var problems = new List<string>();
        foreach (var file in candidates)
        {
            try
            {
                using var document = JsonDocument.Parse(File.ReadAllBytes(file));
                var root = document.RootElement;
                bool named = root.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String;
                bool hasPlugins = root.TryGetProperty("plugins", out var plugins) && plugins.ValueKind == JsonValueKind.Array && plugins.GetArrayLength() > 0;
                bool single = root.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String;
                if (named && (hasPlugins || single)) return (file, null);
                problems.Add($"{Path.GetFileName(file)}: needs a name and a plugins list (or a type)");
            }
            catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
            {
                problems.Add($"{Path.GetFileName(file)}: {e.Message}");
            }
        }
        return (null, $"no valid network config in {confDir}: {string.Join("; ", problems)}");
    }
}
