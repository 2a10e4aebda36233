using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Tomlyn;
using Tomlyn.Model;
using Tomlyn.Parsing;
using Tomlyn.Serialization;
using CriRuntime.Content;

namespace CriRuntime.Config;

/// <summary>
/// A configuration file (the daemon's config.toml or a registry hosts.toml) that cannot be used. The message
/// says where (file, line when known, full key) and what to change, so it can be printed as is.
/// </summary>
/// <remarks>FailedPrecondition: the node's configuration must be fixed before the call can work.</remarks>
public sealed class ConfigException : CriException
{
    public ConfigException(string message, string? sourceName = null, string? key = null, int? line = null, Exception? inner = null)
        : base(CriErrorKind.FailedPrecondition, message, inner)
    {
        SourceName = sourceName;
        Key = key;
        Line = line;
    }

    /// <summary>The file (or other source name) the problem is in.</summary>
    public string? SourceName { get; }

    /// <summary>The full dotted key at fault (for example <c>registry.config_path</c>), when one is.</summary>
    public string? Key { get; }

    /// <summary>1-based line of the problem, when known.</summary>
    public int? Line { get; }
}

/// <summary>
/// Reads config.toml into <see cref="CriRuntimeConfig"/>. The file is parsed into Tomlyn's untyped model and
/// mapped by hand so that every key is checked: unknown keys, wrong types and bad values are errors that
/// name the key, never silently ignored (a typo in a security-relevant key must not fall back to a default).
/// </summary>
public static class ConfigLoader
{
    private static readonly string[] TopKeys = ["socket", "root", "state", "log_level", "registry", "images", "cni", "runtime", "streaming", "metrics", "cdi"];
    private static readonly string[] RegistryKeys = ["config_path", "default_platform", "max_concurrent_downloads", "request_timeout_seconds"];
    private static readonly string[] ImagesKeys = ["progress_interval_seconds"];
    private static readonly string[] CniKeys = ["conf_dir", "bin_dirs", "plugin_timeout_seconds", "conf_template"];
    private static readonly string[] RuntimeKeys = ["default_handler", "conmon", "unprivileged_ports", "unprivileged_icmp", "image_volumes", "handlers"];
    private static readonly string[] HandlerKeys = ["path"];
    private static readonly string[] AddressKeys = ["address"];
    private static readonly string[] CdiKeys = ["spec_dirs"];
    private static readonly string[] StreamingKeys = ["address", "idle_timeout", "stream_creation_timeout", "tls_cert_file", "tls_key_file"];

    /// <summary>What <c>[runtime] image_volumes</c> accepts.</summary>
    public static IReadOnlyList<string> ImageVolumesModes { get; } = ["copy", "mkdir", "ignore"];

    /// <summary>The log levels <c>log_level</c> accepts.</summary>
    public static IReadOnlyList<string> LogLevels { get; } = ["trace", "debug", "info", "warning", "error"];

    /// <summary>Every fixed key of the file as a dotted path (handlers excepted: their names are free).</summary>
    internal static IReadOnlyList<string> AllKeys { get; } =
    [
        .. TopKeys.Where(k => k is "socket" or "root" or "state" or "log_level"),
        .. RegistryKeys.Select(k => "registry." + k),
        .. ImagesKeys.Select(k => "images." + k),
        .. CniKeys.Select(k => "cni." + k),
        .. RuntimeKeys.Where(k => k != "handlers").Select(k => "runtime." + k),
        "runtime.handlers.NAME.path",
        .. StreamingKeys.Select(k => "streaming." + k),
        "metrics.address",
        .. CdiKeys.Select(k => "cdi." + k),
    ];

    private static readonly Regex HandlerName = new("^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$", RegexOptions.CultureInvariant);

    /// <summary>
    /// Reads and validates <paramref name="path"/>. A missing file gives the defaults unless
    /// <paramref name="mustExist"/> (an explicitly named file that is missing is a mistake worth stopping for).
    /// </summary>
    public static CriRuntimeConfig Load(string path, bool mustExist)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            if (!mustExist) return new CriRuntimeConfig();
            throw new ConfigException($"{path}: config file does not exist; create it (criruntime config default > {path}) or name another with --config", path, inner: e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read config file: {e.Message}", path, inner: e);
        }
        return Parse(text, path);
    }

    /// <summary>Parses and validates config TOML; <paramref name="sourceName"/> is used in error messages.</summary>
    public static CriRuntimeConfig Parse(string tomlText, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(tomlText);
        var doc = TomlDocument.Parse(tomlText, sourceName);
        var config = new CriRuntimeConfig();
        var root = doc.Root;

        foreach (var (key, value) in root)
        {
            switch (key)
            {
                case "socket": config.Socket = doc.AbsolutePath(root, "", key, value); break;
                case "root": config.Root = doc.AbsolutePath(root, "", key, value); break;
                case "state": config.State = doc.AbsolutePath(root, "", key, value); break;
                case "log_level": config.LogLevel = ReadLogLevel(doc, root, key, value); break;
                case "registry": ReadRegistry(doc, doc.Table(root, "", key, value), config.Registry); break;
                case "images": ReadImages(doc, doc.Table(root, "", key, value), config.Images); break;
                case "cni": ReadCni(doc, doc.Table(root, "", key, value), config.Cni); break;
                case "runtime": ReadRuntime(doc, doc.Table(root, "", key, value), config.Runtime); break;
                case "streaming": ReadStreaming(doc, doc.Table(root, "", key, value), config.Streaming); break;
                case "metrics":
                    config.Metrics.Address = ReadAddressSection(doc, doc.Table(root, "", key, value), "metrics", allowEmpty: true) ?? config.Metrics.Address;
                    break;
                case "cdi": ReadCdi(doc, doc.Table(root, "", key, value), config.Cdi); break;
                default: throw doc.Unknown(root, "", key, TopKeys, AllKeys);
            }
        }

        // Checked last: [runtime.handlers] may come after default_handler, or not at all (defaults).
        if (!config.Runtime.Handlers.ContainsKey(config.Runtime.DefaultHandler))
        {
            var runtimeTable = root.TryGetValue("runtime", out var r) ? r as TomlTable : null;
            throw doc.Error(runtimeTable, "runtime.", "default_handler",
                $"names handler '{config.Runtime.DefaultHandler}', but the handlers are {string.Join(", ", config.Runtime.Handlers.Keys.Order(StringComparer.Ordinal))}; " +
                $"add a [runtime.handlers.{config.Runtime.DefaultHandler}] table with its path, or pick one of those");
        }
        return config;
    }

    private static string ReadLogLevel(TomlDocument doc, TomlTable table, string key, object value)
    {
        string level = doc.String(table, "", key, value);
        if (LogLevels.Contains(level)) return level;
        string? near = Suggest.Closest(level.ToLowerInvariant(), LogLevels) ?? (level.Equals("warn", StringComparison.OrdinalIgnoreCase) ? "warning" : null);
        throw doc.Error(table, "", key,
            $"is '{level}', which is not a log level; use one of {string.Join(", ", LogLevels)}{(near is null ? "" : $" (did you mean '{near}'?)")}");
    }

    private static void ReadRegistry(TomlDocument doc, TomlTable table, RegistrySection section)
    {
        const string p = "registry.";
        foreach (var (key, value) in table)
        {
            switch (key)
            {
                case "config_path": section.ConfigPath = doc.AbsolutePath(table, p, key, value); break;
                case "default_platform":
                {
                    string text = doc.String(table, p, key, value);
                    try
                    {
                        if (text.Any(char.IsWhiteSpace)) throw new FormatException();
                        Platform.Parse(text);
                    }
                    catch (FormatException)
                    {
                        throw doc.Error(table, p, key, $"is '{text}', which is not a platform; write os/architecture[/variant], for example linux/amd64 or linux/arm/v7");
                    }
                    section.DefaultPlatform = text;
                    break;
                }
                case "max_concurrent_downloads": section.MaxConcurrentDownloads = doc.Int(table, p, key, value, 1, 64); break;
                case "request_timeout_seconds": section.RequestTimeoutSeconds = doc.Int(table, p, key, value, 1, int.MaxValue); break;
                default: throw doc.Unknown(table, p, key, RegistryKeys, AllKeys);
            }
        }
    }

    private static void ReadImages(TomlDocument doc, TomlTable table, ImagesSection section)
    {
        const string p = "images.";
        foreach (var (key, value) in table)
        {
            switch (key)
            {
                case "progress_interval_seconds": section.ProgressIntervalSeconds = doc.Int(table, p, key, value, 1, int.MaxValue); break;
                default: throw doc.Unknown(table, p, key, ImagesKeys, AllKeys);
            }
        }
    }

    private static void ReadCni(TomlDocument doc, TomlTable table, CniSection section)
    {
        const string p = "cni.";
        foreach (var (key, value) in table)
        {
            switch (key)
            {
                case "conf_dir": section.ConfDir = doc.AbsolutePath(table, p, key, value); break;
                case "bin_dirs":
                {
                    var dirs = doc.StringArray(table, p, key, value);
                    if (dirs.Count == 0)
                        throw doc.Error(table, p, key, "is empty; list at least one directory holding CNI plugin binaries, for example [\"/opt/cni/bin\"]");
                    for (int i = 0; i < dirs.Count; i++)
                        if (!IsAbsolute(dirs[i]))
                            throw doc.Error(table, p, key, $"element {i} is '{dirs[i]}', but must be an absolute path (starting with /)");
                    section.BinDirs = dirs;
                    break;
                }
                case "plugin_timeout_seconds": section.PluginTimeoutSeconds = doc.Int(table, p, key, value, 1, 3600); break;
                case "conf_template":
                {
                    string path = doc.String(table, p, key, value);
                    section.ConfTemplate = path.Length == 0 ? "" : doc.AbsolutePath(table, p, key, value);
                    break;
                }
                default: throw doc.Unknown(table, p, key, CniKeys, AllKeys);
            }
        }
    }

    private static void ReadCdi(TomlDocument doc, TomlTable table, CdiSection section)
    {
        const string p = "cdi.";
        foreach (var (key, value) in table)
        {
            switch (key)
            {
                case "spec_dirs":
                {
                    // Empty is allowed: no CDI devices on this node.
                    var dirs = doc.StringArray(table, p, key, value);
                    for (int i = 0; i < dirs.Count; i++)
                        if (!IsAbsolute(dirs[i]))
                            throw doc.Error(table, p, key, $"element {i} is '{dirs[i]}', but must be an absolute path (starting with /)");
                    section.SpecDirs = dirs;
                    break;
                }
                default: throw doc.Unknown(table, p, key, CdiKeys, AllKeys);
            }
        }
    }

    private static void ReadRuntime(TomlDocument doc, TomlTable table, RuntimeSection section)
    {
        const string p = "runtime.";
        foreach (var (key, value) in table)
        {
            switch (key)
            {
                case "default_handler": section.DefaultHandler = doc.String(table, p, key, value); break;
                case "conmon": section.Conmon = doc.AbsolutePath(table, p, key, value); break;
                case "unprivileged_ports": section.UnprivilegedPorts = doc.Bool(table, p, key, value); break;
                case "unprivileged_icmp": section.UnprivilegedIcmp = doc.Bool(table, p, key, value); break;
                case "image_volumes":
                {
                    string mode = doc.String(table, p, key, value);
                    if (!ImageVolumesModes.Contains(mode))
                        throw doc.Error(table, p, key, $"is '{mode}', which is not an image volume mode; use one of {string.Join(", ", ImageVolumesModes)}");
                    section.ImageVolumes = mode;
                    break;
                }
                case "handlers":
                {
                    var handlers = doc.Table(table, p, key, value);
                    foreach (var (name, handlerValue) in handlers)
                    {
                        if (!HandlerName.IsMatch(name))
                            throw doc.Error(handlers, "runtime.handlers.", name,
                                "is not a valid handler name: use lowercase letters, digits and '-', '_' or '.' inside, starting and ending with a letter or digit (it is the RuntimeHandler pods name)");
                        string hp = $"runtime.handlers.{TomlDocument.QuoteKey(name)}.";
                        var handlerTable = doc.Table(handlers, "runtime.handlers.", name, handlerValue);
                        // A named default (runc, crun) is overridden key by key; a new one starts empty.
                        var handler = section.Handlers.TryGetValue(name, out var existing)
                            ? new RuntimeHandlerSection { Path = existing.Path }
                            : new RuntimeHandlerSection();
                        foreach (var (hkey, hvalue) in handlerTable)
                        {
                            switch (hkey)
                            {
                                case "path": handler.Path = doc.AbsolutePath(handlerTable, hp, hkey, hvalue); break;
                                default: throw doc.Unknown(handlerTable, hp, hkey, HandlerKeys, AllKeys);
                            }
                        }
                        if (string.IsNullOrEmpty(handler.Path))
                            throw doc.Error(handlers, "runtime.handlers.", name, $"has no path; set {hp}path to the absolute path of the OCI runtime binary");
                        section.Handlers[name] = handler;
                    }
                    break;
                }
                default: throw doc.Unknown(table, p, key, RuntimeKeys, AllKeys);
            }
        }
    }

    private static void ReadStreaming(TomlDocument doc, TomlTable table, StreamingSection section)
    {
        const string p = "streaming.";
        foreach (var (key, value) in table)
        {
            switch (key)
            {
                case "address":
                {
                    string address = doc.String(table, p, key, value);
                    if (ValidateAddress(address) is { } problem) throw doc.Error(table, p, key, $"is '{address}': {problem}");
                    section.Address = address;
                    break;
                }
                // Go durations ("4h", "30s"), the kubelet's and containerd's spelling of the same timeouts.
                case "idle_timeout": section.IdleTimeout = Duration(doc, table, p, key, value, TimeSpan.FromDays(365)); break;
                case "stream_creation_timeout": section.StreamCreationTimeout = Duration(doc, table, p, key, value, TimeSpan.FromHours(1)); break;
                // Both TLS files or neither: checked when the streaming server starts (it names both keys).
                case "tls_cert_file":
                {
                    string path = doc.String(table, p, key, value);
                    section.TlsCertFile = path.Length == 0 ? "" : doc.AbsolutePath(table, p, key, value);
                    break;
                }
                case "tls_key_file":
                {
                    string path = doc.String(table, p, key, value);
                    section.TlsKeyFile = path.Length == 0 ? "" : doc.AbsolutePath(table, p, key, value);
                    break;
                }
                default: throw doc.Unknown(table, p, key, StreamingKeys, AllKeys);
            }
        }
    }

    private static string? ReadAddressSection(TomlDocument doc, TomlTable table, string section, bool allowEmpty)
    {
        string p = section + ".";
        string? address = null;
        foreach (var (key, value) in table)
        {
            switch (key)
            {
                case "address":
                {
                    address = doc.String(table, p, key, value);
                    if (address.Length == 0 && allowEmpty) break;
                    if (ValidateAddress(address) is { } problem)
                        throw doc.Error(table, p, key, $"is '{address}': {problem}{(allowEmpty ? " (or \"\" to disable it)" : "")}");
                    break;
                }
                default: throw doc.Unknown(table, p, key, AddressKeys, AllKeys);
            }
        }
        return address;
    }

    /// <summary>
    /// Why <paramref name="address"/> is not <c>IP:port</c> (null when it is). Only IP literals: the daemon binds
    /// these without resolving names, so a host name would pass here and fail at startup.
    /// </summary>
    /// <summary>A Go duration string from 1 s to <paramref name="max"/>.</summary>
    private static TimeSpan Duration(TomlDocument doc, TomlTable table, string prefix, string key, object value, TimeSpan max)
    {
        string text = doc.String(table, prefix, key, value);
        if (GoDuration.Parse(text, out string? problem) is not { } duration) throw doc.Error(table, prefix, key, $"is '{Echo.Of(text)}', which {problem}");
        if (duration < TimeSpan.FromSeconds(1) || duration > max)
            throw doc.Error(table, prefix, key, $"is '{text}', but must be from 1s to {GoDuration.Format(max)}");
        return duration;
    }

    internal static string? ValidateAddress(string address)
    {
        if (address.Length == 0) return "it is empty; write IP:port, for example 127.0.0.1:10010";
        int colon = address.LastIndexOf(':');
        if (colon < 0 || (address.StartsWith('[') && colon < address.IndexOf(']')))
            return "there is no port; write IP:port, for example 127.0.0.1:10010 (port 0 picks a free one)";
        string host = address[..colon];
        string port = address[(colon + 1)..];
        if (host.Length == 0) return "the IP is missing; use 0.0.0.0 (or [::]) to listen on every interface";
        if (host.StartsWith('['))
        {
            if (!host.EndsWith(']') || !IPAddress.TryParse(host[1..^1], out var v6) || v6.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
                return "the bracketed part is not an IPv6 address; write for example [::1]:10010";
        }
        else if (host.Contains(':'))
        {
            return "IPv6 addresses must be in brackets, for example [::1]:10010";
        }
        else if (!IPAddress.TryParse(host, out var v4) || v4.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || host.Count(c => c == '.') != 3)
        {
            return $"'{host}' is not an IP address (host names are not resolved here); write for example 127.0.0.1:10010";
        }
        if (port.Length == 0 || port.Length > 5 || !port.All(char.IsAsciiDigit) || int.Parse(port, CultureInfo.InvariantCulture) > 65535)
            return $"the port '{port}' is not a number from 0 to 65535";
        return null;
    }

    internal static bool IsAbsolute(string path) => path.StartsWith('/');
}

/// <summary>
/// One parsed TOML file plus the key positions Tomlyn recorded, so that errors found while mapping the
/// untyped model can still point at a line. Shared by the config loader and the hosts.toml reader.
/// </summary>
internal sealed class TomlDocument
{
    private readonly TomlMetadataStore metadata;

    private TomlDocument(string sourceName, TomlTable root, TomlMetadataStore metadata)
    {
        SourceName = sourceName;
        Root = root;
        this.metadata = metadata;
    }

    public string SourceName { get; }
    public TomlTable Root { get; }

    public static TomlDocument Parse(string text, string sourceName)
    {
        try
        {
            // The syntax pass with validation rejects what the model builder would let through silently,
            // such as a key defined twice (the later one would win).
            SyntaxParser.ParseStrict(text, sourceName, true);
            var store = new TomlMetadataStore();
            var options = new TomlSerializerOptions { SourceName = sourceName, MetadataStore = store };
            // Through a source-generated context: no reflection, so the daemon can be compiled ahead of time.
            var root = TomlSerializer.Deserialize<TomlTable>(text, new ConfigTomlContext(options)) ?? new TomlTable();
            return new TomlDocument(sourceName, root, store);
        }
        catch (TomlException e)
        {
            string detail = e.Diagnostics is { Count: > 0 } diagnostics ? diagnostics[0].Message : e.Message;
            string where = e.Line > 0 ? $"{sourceName}:{e.Line}:{e.Column}" : sourceName;
            throw new ConfigException($"{where}: TOML syntax error: {detail.Trim()}", sourceName, line: e.Line > 0 ? e.Line : null, inner: e);
        }
    }

    /// <summary>1-based line of <paramref name="key"/> in <paramref name="table"/>, when Tomlyn recorded it.</summary>
    public int? LineOf(TomlTable? table, string key)
    {
        if (table is null || !metadata.TryGetProperties(table, out var properties) || properties is null) return null;
        if (!properties.TryGetProperty(key, out var property) || property is null) return null;
        return property.Span.Start.Line + 1;
    }

    /// <summary>An error about <paramref name="prefix"/>+<paramref name="key"/>: "file:line: 'key' problem".</summary>
    public ConfigException Error(TomlTable? table, string prefix, string key, string problem)
    {
        string fullKey = prefix + QuoteKey(key);
        int? line = LineOf(table, key);
        string where = line is null ? SourceName : $"{SourceName}:{line}";
        return new ConfigException($"{where}: '{fullKey}' {problem}", SourceName, fullKey, line);
    }

    /// <summary>
    /// An unknown key, with the closest allowed key as a hint; failing that, the same key in another table
    /// (<paramref name="elsewhere"/>: full dotted keys of the file), since a key under the wrong header is common.
    /// </summary>
    public ConfigException Unknown(TomlTable table, string prefix, string key, IReadOnlyList<string> known, IEnumerable<string>? elsewhere = null)
    {
        string fullKey = prefix + QuoteKey(key);
        int? line = LineOf(table, key);
        string where = line is null ? SourceName : $"{SourceName}:{line}";
        string? moved = elsewhere?.FirstOrDefault(k => k.EndsWith("." + key, StringComparison.Ordinal) || k == key);
        string hint = Suggest.Closest(key, known) is { } near
            ? $"; did you mean '{prefix}{near}'?"
            : moved is not null
                ? $"; did you mean '{moved}'? (it belongs {(moved.Contains('.') ? $"in the [{moved[..moved.LastIndexOf('.')]}] table" : "at the top level, before any [table]")})"
                : $"; the keys allowed here are {string.Join(", ", known)}";
        return new ConfigException($"{where}: unknown key '{fullKey}'{hint}", SourceName, fullKey, line);
    }

    public string String(TomlTable table, string prefix, string key, object value) =>
        value as string ?? throw Error(table, prefix, key, $"must be a string, but is {Describe(value)}");

    public string AbsolutePath(TomlTable table, string prefix, string key, object value)
    {
        string path = String(table, prefix, key, value);
        if (path.Length == 0) throw Error(table, prefix, key, "is empty, but must be an absolute path (starting with /)");
        if (path.StartsWith("unix://", StringComparison.Ordinal))
            throw Error(table, prefix, key, $"is '{path}'; write the plain absolute path without unix://, for example '{path["unix://".Length..]}'");
        if (!ConfigLoader.IsAbsolute(path))
            throw Error(table, prefix, key, $"is '{path}', but must be an absolute path (starting with /); relative paths would depend on the daemon's working directory");
        return path;
    }

    public bool Bool(TomlTable table, string prefix, string key, object value) =>
        value is bool b ? b : throw Error(table, prefix, key, $"must be a boolean (true or false), but is {Describe(value)}");

    public int Int(TomlTable table, string prefix, string key, object value, int min, int max)
    {
        if (value is not long number) throw Error(table, prefix, key, $"must be an integer, but is {Describe(value)}");
        if (number < min || number > max)
        {
            string range = max == int.MaxValue ? $"at least {min}" : $"from {min} to {max}";
            throw Error(table, prefix, key, $"is {number}, but must be {range}");
        }
        return (int)number;
    }

    public TomlTable Table(TomlTable table, string prefix, string key, object value) =>
        value as TomlTable ?? throw Error(table, prefix, key, $"must be a table ([{prefix}{QuoteKey(key)}]), but is {Describe(value)}");

    public List<string> StringArray(TomlTable table, string prefix, string key, object value)
    {
        if (value is not TomlArray array) throw Error(table, prefix, key, $"must be an array of strings, but is {Describe(value)}");
        var result = new List<string>(array.Count);
        for (int i = 0; i < array.Count; i++)
            result.Add(array[i] as string ?? throw Error(table, prefix, key, $"element {i} must be a string, but is {Describe(array[i])}"));
        return result;
    }

    /// <summary>A TOML value's type as a reader of the file would name it, with the value for scalars.</summary>
    public static string Describe(object? value) => value switch
    {
        null => "missing",
        string s => $"a string (\"{s}\")",
        long l => $"an integer ({l.ToString(CultureInfo.InvariantCulture)})",
        double d => $"a float ({d.ToString(CultureInfo.InvariantCulture)})",
        bool b => $"a boolean ({(b ? "true" : "false")})",
        TomlArray => "an array",
        TomlTableArray => "an array of tables",
        TomlTable => "a table",
        TomlDateTime dt => $"a date-time ({dt})",
        _ => $"a {value.GetType().Name}",
    };

    /// <summary>A key as TOML would have to spell it: bare when it can be, quoted otherwise.</summary>
    public static string QuoteKey(string key)
    {
        if (key.Length > 0 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-')) return key;
        var sb = new StringBuilder("\"");
        foreach (char c in key)
            sb.Append(c switch { '"' => "\\\"", '\\' => "\\\\", _ => c.ToString() });
        return sb.Append('"').ToString();
    }
}

/// <summary>"Did you mean" for mistyped keys and values.</summary>
internal static class Suggest
{
    /// <summary>The candidate closest to <paramref name="input"/>, if close enough to be a likely typo.</summary>
    public static string? Closest(string input, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            int distance = Distance(input, candidate);
            if (distance < bestDistance)
            {
                best = candidate;
                bestDistance = distance;
            }
        }
        // A third of the word may be wrong: catches dropped/swapped letters without suggesting unrelated keys.
        int allowed = Math.Max(1, Math.Min(input.Length, best?.Length ?? 0) / 3);
        return best is not null && bestDistance <= allowed ? best : null;
    }

    /// <summary>Optimal string alignment distance (Levenshtein plus adjacent swaps).</summary>
    public static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        }
        return d[a.Length, b.Length];
    }
}

/// <summary>Source-generated TOML (de)serialization of the generic table model the loader walks.</summary>
[Tomlyn.Serialization.TomlSerializable(typeof(TomlTable))]
internal sealed partial class ConfigTomlContext : Tomlyn.Serialization.TomlSerializerContext
{
    public ConfigTomlContext(TomlSerializerOptions options) : base(options)
    {
    }
}
