using System.Globalization;
using System.Net;
using CriRuntime.Config;
using Tomlyn.Model;

namespace CriRuntime.Images;

/// <summary>
/// One place to send registry requests for a registry: a mirror from hosts.toml, or the registry itself.
/// <see cref="BaseUri"/> is the API root that <c>/&lt;repository&gt;/manifests/&lt;ref&gt;</c> and the like are
/// appended to: it ends in <c>/v2</c> unless <c>override_path</c> was set, in which case it is the configured
/// URL's path as written. The capability flags are reported, not enforced: callers skip endpoints that cannot
/// do what they need (a mirror without resolve must not turn tags into digests). Mirrors should be sent the
/// upstream registry as <c>?ns=&lt;registry&gt;</c>, as containerd does.
/// </summary>
public sealed record RegistryEndpoint(
    Uri BaseUri,
    bool CanPull,
    bool CanResolve,
    bool SkipVerify,
    IReadOnlyList<string> CaFiles,
    IReadOnlyList<(string Cert, string? Key)> ClientCerts,
    IReadOnlyDictionary<string, IReadOnlyList<string>> Headers,
    bool IsMirror)
{
    /// <summary>Whether hosts.toml lets this endpoint be pushed to (reported for completeness; this daemon only pulls).</summary>
    public bool CanPush { get; init; }

    /// <summary>The URL of <paramref name="path"/> under <see cref="BaseUri"/>, e.g. "library/busybox/manifests/latest".</summary>
    public Uri Combine(string path) => new(BaseUri.AbsoluteUri.TrimEnd('/') + "/" + path.TrimStart('/'));
}

/// <summary>
/// Registry settings in containerd's hosts.toml layout: <c>&lt;configPath&gt;/&lt;host&gt;/hosts.toml</c>, with
/// <c>_default</c> as the fallback directory. For a registry with a port containerd looks, in order, in
/// <c>host_port_</c>, <c>host:port</c> and <c>_default</c>; the first directory that exists is used. A directory
/// without hosts.toml is read the Docker way (<c>*.crt</c> CAs, <c>*.cert</c>/<c>*.key</c> client pairs).
/// Files are re-read when their modification time or size changes, so edits apply without a restart.
/// </summary>
public sealed class RegistryHosts
{
    private const string DefaultDirectory = "_default";
    private const string HostsFile = "hosts.toml";

    private static readonly string[] TopKeys = ["server", "host", "capabilities", "ca", "client", "skip_verify", "header", "override_path"];
    private static readonly string[] HostKeys = ["capabilities", "ca", "client", "skip_verify", "header", "override_path"];

    // containerd knows these, this daemon does not implement them: failing beats a silently ignored proxy.
    private static readonly string[] Unsupported = ["dial_timeout", "proxy"];

    private readonly string configPath;
    private readonly Lock cacheLock = new();
    private readonly Dictionary<string, CachedFile> cache = new(StringComparer.Ordinal);

    public RegistryHosts(string configPath)
    {
        ArgumentNullException.ThrowIfNull(configPath);
        this.configPath = configPath;
    }

    /// <summary>
    /// Where to send requests for <paramref name="registry"/> (a host with optional port, as in
    /// <see cref="ImageReference.Registry"/>): mirrors first in file order, then the server. Throws
    /// <see cref="ConfigException"/> when the hosts.toml that applies is malformed.
    /// </summary>
    public IReadOnlyList<RegistryEndpoint> Resolve(string registry)
    {
        CheckRegistry(registry);
        string? directory = FindDirectory(registry);
        HostsFileModel model = directory is null ? HostsFileModel.Empty : Load(directory);

        var endpoints = new List<RegistryEndpoint>(model.Mirrors.Count + 1);
        foreach (var mirror in model.Mirrors)
            endpoints.Add(mirror.ToEndpoint(mirror.BaseUri!, isMirror: true));

        var server = model.Server;
        if (server.BaseUri is not null)
        {
            endpoints.Add(server.ToEndpoint(server.BaseUri, isMirror: false));
        }
        else
        {
            // No server line: the registry itself, with every capability (as containerd does), keeping any
            // top-level TLS settings the file gave for it.
            var (uri, skipVerify) = DefaultUpstream(registry);
            endpoints.Add(server.ToEndpoint(uri, isMirror: false) with
            {
                CanPull = true,
                CanResolve = true,
                CanPush = true,
                SkipVerify = server.SkipVerify ?? skipVerify,
            });
        }
        return endpoints;
    }

    /// <summary>Where <paramref name="registry"/> is served when nothing else is configured.</summary>
    internal static (Uri Uri, bool SkipVerify) DefaultUpstream(string registry)
    {
        if (registry == ImageReference.DockerHub) return (new Uri("https://registry-1.docker.io/v2"), false);
        var (host, port) = SplitHostPort(registry);
        if (IsLoopback(host))
        {
            // A local registry is almost always plain HTTP; only an explicit :443 says TLS, and then
            // its certificate cannot be expected to verify for a loopback name.
            return port == "443" ? (new Uri($"https://{registry}/v2"), true) : (new Uri($"http://{registry}/v2"), false);
        }
        return (new Uri($"https://{registry}/v2"), false);
    }

    internal static bool IsLoopback(string host)
    {
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return true;
        string bare = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        // IPAddress also parses shorthands ("2130706433" is 127.0.0.1); only dotted quads and IPv6 count.
        return IPAddress.TryParse(bare, out var ip) && IPAddress.IsLoopback(ip) &&
               (bare.Contains(':') || bare.Count(c => c == '.') == 3);
    }

    /// <summary>Splits "host:port", "[v6]:port", "host" or "[v6]" into host and port (null when absent).</summary>
    internal static (string Host, string? Port) SplitHostPort(string registry)
    {
        if (registry.StartsWith('['))
        {
            int close = registry.IndexOf(']');
            if (close > 0 && close + 1 < registry.Length && registry[close + 1] == ':')
                return (registry[..(close + 1)], registry[(close + 2)..]);
            return (registry, null);
        }
        int colon = registry.LastIndexOf(':');
        return colon > 0 ? (registry[..colon], registry[(colon + 1)..]) : (registry, null);
    }

    private static void CheckRegistry(string registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        // The registry becomes a directory name: nothing that could walk out of the config directory.
        if (registry.Length == 0 || registry is "." or ".." || registry.Contains('/') || registry.Contains('\\') || registry.Contains('\0'))
            throw new InvalidArgumentException($"'{registry}' is not a registry host", nameof(registry));
    }

    private string? FindDirectory(string registry)
    {
        if (configPath.Length == 0) return null;
        foreach (var name in DirectoryNames(registry))
        {
            string path = Path.Combine(configPath, name);
            if (Directory.Exists(path)) return path;
        }
        return null;
    }

    /// <summary>The directory names tried for <paramref name="registry"/>, in containerd's order.</summary>
    internal static IEnumerable<string> DirectoryNames(string registry)
    {
        var (host, port) = SplitHostPort(registry);
        if (port is not null) yield return $"{host}_{port}_";
        yield return registry;
        yield return DefaultDirectory;
    }

    private HostsFileModel Load(string directory)
    {
        string file = Path.Combine(directory, HostsFile);
        FileInfo info = new(file);
        if (!info.Exists || info.Length == 0) return LoadCertificateDirectory(directory);

        var stamp = (info.LastWriteTimeUtc, info.Length);
        lock (cacheLock)
        {
            if (cache.TryGetValue(file, out var cached) && cached.Stamp == stamp) return cached.Model;
        }

        string text;
        try
        {
            text = File.ReadAllText(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{file}: cannot read registry hosts file: {e.Message}", file, inner: e);
        }
        var model = Parse(text, file, directory);
        lock (cacheLock) cache[file] = new CachedFile(stamp, model);
        return model;
    }

    /// <summary>Docker's certs.d layout: every *.crt is a CA, every *.cert a client certificate with its *.key.</summary>
    private static HostsFileModel LoadCertificateDirectory(string directory)
    {
        var files = Directory.EnumerateFiles(directory).Order(StringComparer.Ordinal).ToList();
        var cas = files.Where(f => f.EndsWith(".crt", StringComparison.Ordinal)).ToList();
        var clients = new List<(string, string?)>();
        foreach (var cert in files.Where(f => f.EndsWith(".cert", StringComparison.Ordinal)))
        {
            string key = cert[..^".cert".Length] + ".key";
            clients.Add((cert, File.Exists(key) ? key : null));
        }
        var server = new HostEntry { CaFiles = cas, ClientCerts = clients };
        return new HostsFileModel([], server);
    }

    /// <summary>Parses one hosts.toml; relative certificate paths are taken relative to <paramref name="directory"/>.</summary>
    internal static HostsFileModel Parse(string text, string sourceName, string directory)
    {
        var doc = TomlDocument.Parse(text, sourceName);
        var root = doc.Root;
        var server = new HostEntry();
        var mirrors = new List<HostEntry>();
        string? serverUrl = null;

        foreach (var (key, value) in root)
        {
            switch (key)
            {
                case "server":
                    serverUrl = doc.String(root, "", key, value);
                    if (serverUrl.Length == 0) serverUrl = null;
                    break;
                case "host":
                {
                    var hosts = doc.Table(root, "", key, value);
                    foreach (var (url, hostValue) in hosts)
                    {
                        string prefix = $"host.{TomlDocument.QuoteKey(url)}.";
                        var table = doc.Table(hosts, "host.", url, hostValue);
                        var mirror = new HostEntry();
                        foreach (var (hkey, hvalue) in table)
                            if (!ReadHostKey(doc, table, prefix, hkey, hvalue, directory, mirror))
                                throw Unknown(doc, table, prefix, hkey, HostKeys);
                        mirror.BaseUri = ParseUrl(doc, hosts, "host.", url, url, mirror.OverridePath);
                        mirrors.Add(mirror);
                    }
                    break;
                }
                default:
                    if (!ReadHostKey(doc, root, "", key, value, directory, server))
                        throw Unknown(doc, root, "", key, TopKeys);
                    break;
            }
        }
        if (serverUrl is not null) server.BaseUri = ParseUrl(doc, root, "", "server", serverUrl, server.OverridePath);
        return new HostsFileModel(mirrors, server);
    }

    private static ConfigException Unknown(TomlDocument doc, TomlTable table, string prefix, string key, IReadOnlyList<string> known) =>
        Unsupported.Contains(key)
            ? doc.Error(table, prefix, key, "is a containerd setting criruntime does not support; remove it")
            : doc.Unknown(table, prefix, key, known);

    /// <summary>Reads a key valid both at the top level (for the server) and in a [host."..."] table.</summary>
    private static bool ReadHostKey(TomlDocument doc, TomlTable table, string prefix, string key, object value, string directory, HostEntry entry)
    {
        switch (key)
        {
            case "capabilities":
            {
                var list = doc.StringArray(table, prefix, key, value);
                // containerd: an empty list means the default (all), not "nothing".
                if (list.Count == 0) return true;
                entry.CanPull = entry.CanResolve = entry.CanPush = false;
                foreach (var capability in list)
                {
                    switch (capability.ToLowerInvariant())
                    {
                        case "pull": entry.CanPull = true; break;
                        case "resolve": entry.CanResolve = true; break;
                        case "push": entry.CanPush = true; break;
                        default:
                            throw doc.Error(table, prefix, key, $"has '{capability}', which is not a capability; use pull, resolve and/or push");
                    }
                }
                return true;
            }
            case "ca":
                entry.CaFiles = value switch
                {
                    string single => [RelativeTo(directory, single)],
                    TomlArray => doc.StringArray(table, prefix, key, value).Select(p => RelativeTo(directory, p)).ToList(),
                    _ => throw doc.Error(table, prefix, key, $"must be a path or an array of paths, but is {TomlDocument.Describe(value)}"),
                };
                if (entry.CaFiles.Any(p => p.Length == 0)) throw doc.Error(table, prefix, key, "contains an empty path");
                return true;
            case "client":
                entry.ClientCerts = ReadClient(doc, table, prefix, key, value, directory);
                return true;
            case "skip_verify":
                entry.SkipVerify = doc.Bool(table, prefix, key, value);
                return true;
            case "override_path":
                entry.OverridePath = doc.Bool(table, prefix, key, value);
                return true;
            case "header":
            {
                var headers = doc.Table(table, prefix, key, value);
                var result = new Dictionary<string, IReadOnlyList<string>>(StringComparer.OrdinalIgnoreCase);
                foreach (var (name, headerValue) in headers)
                {
                    string headerPrefix = prefix + "header.";
                    if (name.Length == 0 || !name.All(IsTokenChar))
                        throw doc.Error(headers, headerPrefix, name, "is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)");
                    IReadOnlyList<string> values = headerValue switch
                    {
                        string s => [s],
                        TomlArray => doc.StringArray(headers, headerPrefix, name, headerValue),
                        _ => throw doc.Error(headers, headerPrefix, name, $"must be a string or an array of strings, but is {TomlDocument.Describe(headerValue)}"),
                    };
                    if (values.Any(v => v.Contains('\r') || v.Contains('\n')))
                        throw doc.Error(headers, headerPrefix, name, "contains a line break, which no header value may");
                    result[name] = values;
                }
                entry.Headers = result;
                return true;
            }
            default:
                return false;
        }
    }

    private static List<(string, string?)> ReadClient(TomlDocument doc, TomlTable table, string prefix, string key, object value, string directory)
    {
        const string shapes = "a path, an array of paths, or an array of [cert, key] pairs";
        switch (value)
        {
            case string single:
                return [(RelativeTo(directory, single), null)];
            case TomlArray array:
            {
                var result = new List<(string, string?)>();
                for (int i = 0; i < array.Count; i++)
                {
                    switch (array[i])
                    {
                        case string path:
                            result.Add((RelativeTo(directory, path), null));
                            break;
                        case TomlArray pair when pair.Count == 2 && pair[0] is string cert && pair[1] is string keyFile && cert.Length > 0:
                            // An empty key means the key is inside the certificate file.
                            result.Add((RelativeTo(directory, cert), keyFile.Length == 0 ? null : RelativeTo(directory, keyFile)));
                            break;
                        default:
                            throw doc.Error(table, prefix, key, $"element {i} is {TomlDocument.Describe(array[i])}; expected {shapes}");
                    }
                }
                return result;
            }
            default:
                throw doc.Error(table, prefix, key, $"must be {shapes}, but is {TomlDocument.Describe(value)}");
        }
    }

    /// <summary>
    /// The API root for a server or host URL, as containerd computes it: https:// unless a scheme is given, the
    /// path cleaned and "/v2" appended unless it already ends so or override_path is set.
    /// </summary>
    private static Uri ParseUrl(TomlDocument doc, TomlTable table, string prefix, string key, string url, bool overridePath)
    {
        bool hasScheme = url.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || url.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
        if (!hasScheme && url.Contains("://"))
            throw doc.Error(table, prefix, key, $"'{url}' has a scheme other than http or https");
        if (!Uri.TryCreate(hasScheme ? url : "https://" + url, UriKind.Absolute, out var uri) || uri.Host.Length == 0)
            throw doc.Error(table, prefix, key, $"'{url}' is not a registry URL; write for example https://mirror.example.com or http://127.0.0.1:5000");
        if (uri.Query.Length > 0 || uri.Fragment.Length > 0 || uri.UserInfo.Length > 0)
            throw doc.Error(table, prefix, key, $"'{url}' must not carry a query, fragment or user:password");

        string path = CleanPath(uri.AbsolutePath);
        if (!overridePath && !path.EndsWith("/v2", StringComparison.Ordinal)) path += "/v2";
        return new Uri($"{uri.Scheme}://{uri.Authority}{(path.Length == 0 ? "/" : path)}");
    }

    /// <summary>Like Go's path.Clean for an absolute URL path, but "" for the root so "/v2" can be appended.</summary>
    private static string CleanPath(string path)
    {
        var parts = new List<string>();
        foreach (var part in path.Split('/'))
        {
            if (part.Length == 0 || part == ".") continue;
            if (part == "..")
            {
                if (parts.Count > 0) parts.RemoveAt(parts.Count - 1);
                continue;
            }
            parts.Add(part);
        }
        return parts.Count == 0 ? "" : "/" + string.Join('/', parts);
    }

    private static string RelativeTo(string directory, string path) =>
        path.Length == 0 ? path : Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(directory, path));

    private static bool IsTokenChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c);

    private sealed record CachedFile((DateTime, long) Stamp, HostsFileModel Model);

    /// <summary>What one hosts.toml says: mirrors in file order and the server (URL null when not given).</summary>
    internal sealed record HostsFileModel(IReadOnlyList<HostEntry> Mirrors, HostEntry Server)
    {
        public static HostsFileModel Empty { get; } = new([], new HostEntry());
    }

    internal sealed class HostEntry
    {
        public Uri? BaseUri { get; set; }
        public bool CanPull { get; set; } = true;
        public bool CanResolve { get; set; } = true;
        public bool CanPush { get; set; } = true;
        public bool? SkipVerify { get; set; }
        public bool OverridePath { get; set; }
        public IReadOnlyList<string> CaFiles { get; set; } = [];
        public IReadOnlyList<(string, string?)> ClientCerts { get; set; } = [];
        public IReadOnlyDictionary<string, IReadOnlyList<string>> Headers { get; set; } = new Dictionary<string, IReadOnlyList<string>>();

        public RegistryEndpoint ToEndpoint(Uri baseUri, bool isMirror) =>
            new(baseUri, CanPull, CanResolve, SkipVerify ?? false, CaFiles, ClientCerts, Headers, isMirror) { CanPush = CanPush };
    }
}
