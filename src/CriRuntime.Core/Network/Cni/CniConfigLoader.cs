namespace CriRuntime.Network.Cni;

/// <summary>What conf_dir held at one moment: the network to use (if any), the status to report, and the files
/// that were passed over because they are unusable.</summary>
internal sealed record CniConfigSnapshot(CniNetwork? Network, CniStatus Status, IReadOnlyList<string> Skipped, long LoadedAtMs);

/// <summary>Picks the network from conf_dir: the lexically first .conflist/.conf/.json file that parses, is a
/// supported version, and whose plugins all exist in the bin dirs. Unusable files are passed over (as CRI-O's
/// ocicni does) and named in the status when no file is usable.</summary>
internal static class CniConfigLoader
{
    private static readonly string[] Extensions = [".conflist", ".conf", ".json"];

    public static CniConfigSnapshot Load(string confDir, CniPluginInvoker plugins)
    {
        long now = Environment.TickCount64;
        List<string> files;
        try
        {
            if (!Directory.Exists(confDir))
                return new(null, CniStatus.NotReady($"CNI config directory {confDir} does not exist: install a network config there (hack/install-cni-config.sh writes a default one)"), [], now);
            files = Directory.EnumerateFiles(confDir)
                .Where(f => Extensions.Any(e => f.EndsWith(e, StringComparison.Ordinal)))
                .Order(StringComparer.Ordinal)
                .ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new(null, CniStatus.NotReady($"cannot list CNI config directory {confDir}: {e.Message}"), [], now);
        }
        if (files.Count == 0)
            return new(null, CniStatus.NotReady($"no CNI network config (.conflist, .conf or .json) in {confDir}: install one (hack/install-cni-config.sh writes a default)"), [], now);

        var skipped = new List<string>();
        foreach (var file in files)
        {
            string? problem = TryLoad(file, plugins, out var network);
            if (network is not null)
                return new(network, new CniStatus(true, null, null, network.Name, file), skipped, now);
            skipped.Add($"{file}: {problem}");
        }
        return new(null, CniStatus.NotReady($"no usable CNI network config in {confDir}: {string.Join("; ", skipped)}"), skipped, now);
    }

    private static string? TryLoad(string file, CniPluginInvoker plugins, out CniNetwork? network)
    {
        network = null;
        CniNetwork parsed;
        try
        {
            parsed = CniNetwork.Parse(File.ReadAllBytes(file));
        }
        catch (FormatException e)
        {
            return e.Message;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cannot read: {e.Message}";
        }
        // A config whose binaries are not installed yet (CNI daemonsets often write the file first) is not ready.
        var missing = parsed.Plugins.Select(p => p.Type).Distinct().Where(t => plugins.Find(t) is null).ToList();
        if (missing.Count > 0)
            return $"plugin type{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Select(t => $"\"{t}\""))} not found in bin dirs {plugins.CniPath}";
        network = parsed;
        return null;
    }
}
