using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using CriRuntime.Config;
using Tomlyn;
using Tomlyn.Model;
using Xunit;

namespace CriRuntime.Tests.Config;

public class ConfigTests
{
    private const string Source = "/etc/criruntime/config.toml";

    private static ConfigException Fails(string toml) =>
        Assert.Throws<ConfigException>(() => ConfigLoader.Parse(toml, Source));

    [Fact]
    public void EmptyTextGivesDefaults()
    {
        var config = ConfigLoader.Parse("", Source);
        AssertSameConfig(new CriRuntimeConfig(), config);
    }

    [Fact]
    public void ReadsEveryKey()
    {
        const string toml = """
            socket = "/run/x/x.sock"
            root = "/data/root"
            state = "/run/x"
            log_level = "debug"

            [registry]
            config_path = "/etc/x/certs.d"
            default_platform = "linux/arm/v7"
            max_concurrent_downloads = 64
            request_timeout_seconds = 90

            [images]
            progress_interval_seconds = 1

            [cni]
            conf_dir = "/etc/x/net.d"
            bin_dirs = ["/a", "/b", "/c"]
            plugin_timeout_seconds = 5
            conf_template = "/etc/x/cni-template.json"

            [runtime]
            default_handler = "kata"
            conmon = "/usr/local/bin/conmon"
            image_volumes = "mkdir"

            [runtime.handlers.kata]
            path = "/opt/kata/bin/kata-runtime"

            [runtime.handlers.runc]
            path = "/usr/local/sbin/runc"

            [streaming]
            address = "[::1]:10010"

            [metrics]
            address = ""
            """;
        var c = ConfigLoader.Parse(toml, Source);
        Assert.Equal("/run/x/x.sock", c.Socket);
        Assert.Equal("/data/root", c.Root);
        Assert.Equal("/run/x", c.State);
        Assert.Equal("debug", c.LogLevel);
        Assert.Equal("/etc/x/certs.d", c.Registry.ConfigPath);
        Assert.Equal("linux/arm/v7", c.Registry.DefaultPlatform);
        Assert.Equal(64, c.Registry.MaxConcurrentDownloads);
        Assert.Equal(90, c.Registry.RequestTimeoutSeconds);
        Assert.Equal(1, c.Images.ProgressIntervalSeconds);
        Assert.Equal("/etc/x/net.d", c.Cni.ConfDir);
        Assert.Equal(["/a", "/b", "/c"], c.Cni.BinDirs);
        Assert.Equal(5, c.Cni.PluginTimeoutSeconds);
        Assert.Equal("/etc/x/cni-template.json", c.Cni.ConfTemplate);
        Assert.Equal("kata", c.Runtime.DefaultHandler);
        Assert.Equal("/usr/local/bin/conmon", c.Runtime.Conmon);
        Assert.Equal("mkdir", c.Runtime.ImageVolumes);
        Assert.Equal("/opt/kata/bin/kata-runtime", c.Runtime.Handlers["kata"].Path);
        Assert.Equal("/usr/local/sbin/runc", c.Runtime.Handlers["runc"].Path);
        Assert.Equal("/usr/bin/crun", c.Runtime.Handlers["crun"].Path); // untouched default stays
        Assert.Equal("[::1]:10010", c.Streaming.Address);
        Assert.Equal("", c.Metrics.Address);
    }

    [Fact]
    public void EveryModelPropertyIsReadFromTheFile()
    {
        // Writes a non-default value for every key the model has (found by reflection), and checks that
        // each one arrives: a key the loader forgets to map fails here, not in production.
        int checkedKeys = 0;
        foreach (var (path, property, owner) in ModelKeys(typeof(CriRuntimeConfig), ""))
        {
            var (toml, expected) = property.PropertyType switch
            {
                var t when t == typeof(string) && path.EndsWith("log_level") => ("\"error\"", (object)"error"),
                var t when t == typeof(string) && path.EndsWith("default_platform") => ("\"linux/s390x\"", "linux/s390x"),
                var t when t == typeof(string) && path.EndsWith("address") => ("\"10.1.2.3:4567\"", "10.1.2.3:4567"),
                var t when t == typeof(string) && path.EndsWith("default_handler") => ("\"crun\"", "crun"),
                var t when t == typeof(string) && path.EndsWith("image_volumes") => ("\"ignore\"", "ignore"),
                var t when t == typeof(string) => ("\"/changed/path\"", "/changed/path"),
                var t when t == typeof(int) => ("7", 7),
                var t when t == typeof(TimeSpan) => ("\"7s\"", TimeSpan.FromSeconds(7)),
                var t when t == typeof(List<string>) => ("[\"/changed/one\"]", new List<string> { "/changed/one" }),
                // The opposite of the default, whichever it is.
                var t when t == typeof(bool) => (bool)property.GetValue(owner(new CriRuntimeConfig()))! ? ("false", (object)false) : ("true", true),
                var t => throw new InvalidOperationException($"test does not know how to vary {t} ({path})"),
            };
            int dot = path.LastIndexOf('.');
            string text = dot < 0 ? $"{path} = {toml}\n" : $"[{path[..dot]}]\n{path[(dot + 1)..]} = {toml}\n";
            var config = ConfigLoader.Parse(text, Source);
            object? section = owner(config);
            Assert.Equal(expected, property.GetValue(section));
            checkedKeys++;
        }
        Assert.Equal(ConfigLoader.AllKeys.Count, checkedKeys);
    }

    [Fact]
    public void DefaultRenderRoundTripsToDefaults()
    {
        var text = DefaultConfig.Render();
        var parsed = ConfigLoader.Parse(text, "default");
        AssertSameConfig(new CriRuntimeConfig(), parsed);
    }

    [Fact]
    public void RenderOfChangedConfigRoundTrips()
    {
        var config = new CriRuntimeConfig { Socket = "/run/with \"quotes\" and \\ backslash.sock", LogLevel = "trace" };
        config.Runtime.Handlers["kata.v2"] = new RuntimeHandlerSection { Path = "/opt/kata" };
        config.Metrics.Address = "";
        var parsed = ConfigLoader.Parse(DefaultConfig.Render(config), "rendered");
        AssertSameConfig(config, parsed);
    }

    [Fact]
    public void DefaultRenderHasEveryModelKeyWithACommentAboveIt()
    {
        var text = DefaultConfig.Render();
        var table = TomlSerializer.Deserialize<TomlTable>(text)!;
        foreach (var (path, _, _) in ModelKeys(typeof(CriRuntimeConfig), ""))
        {
            object? node = table;
            foreach (var part in path.Split('.'))
            {
                Assert.True(node is TomlTable t && t.ContainsKey(part), $"rendered default config lacks '{path}'");
                node = ((TomlTable)node!)[part];
            }
        }
        foreach (var section in new[] { "[registry]", "[images]", "[cni]", "[runtime]", "[runtime.handlers.runc]", "[runtime.handlers.crun]", "[streaming]", "[metrics]" })
            Assert.Contains("\n" + section + "\n", text);

        var lines = text.Split('\n');
        int keys = 0;
        for (int i = 0; i < lines.Length; i++)
        {
            if (!Regex.IsMatch(lines[i], @"^[a-z_]+ = ")) continue;
            keys++;
            Assert.True(i > 0 && lines[i - 1].StartsWith("# ", StringComparison.Ordinal), $"no comment above '{lines[i]}'");
        }
        Assert.Equal(ModelKeys(typeof(CriRuntimeConfig), "").Count() + 1, keys); // handlers: runc and crun both have path
    }

    [Theory]
    [InlineData("[registry]\nconfg_path = \"/x\"\n", "registry.confg_path", "did you mean 'registry.config_path'")]
    [InlineData("sockett = \"/x\"\n", "'sockett'", "did you mean 'socket'")]
    [InlineData("[registy]\nconfig_path = \"/x\"\n", "'registy'", "did you mean 'registry'")]
    [InlineData("[runtime.handlers.runc]\npth = \"/x\"\n", "runtime.handlers.runc.pth", "did you mean 'runtime.handlers.runc.path'")]
    [InlineData("[registry]\nconf_dir = \"/x\"\n", "registry.conf_dir", "did you mean 'cni.conf_dir'")]
    [InlineData("config_path = \"/x\"\n", "'config_path'", "belongs in the [registry] table")]
    [InlineData("[metrics]\nenabled = true\n", "metrics.enabled", "keys allowed here are address")]
    public void UnknownKeyIsNamedWithFileAndSuggestion(string toml, string key, string hint)
    {
        var e = Fails(toml);
        Assert.Contains("unknown key", e.Message);
        Assert.Contains(key, e.Message);
        Assert.Contains(hint, e.Message);
        Assert.StartsWith(Source + ":", e.Message);
        Assert.Equal(Source, e.SourceName);
    }

    [Fact]
    public void UnknownKeyReportsItsLine()
    {
        var e = Fails("socket = \"/x.sock\"\n\n[registry]\nmax_concurrent_downloads = 2\nconfg_path = \"/x\"\n");
        Assert.Equal(5, e.Line);
        Assert.Equal("registry.confg_path", e.Key);
        Assert.StartsWith(Source + ":5:", e.Message);
    }

    [Theory]
    [InlineData("socket = 3\n", "'socket'", "must be a string", "an integer (3)")]
    [InlineData("log_level = true\n", "'log_level'", "must be a string", "a boolean")]
    [InlineData("[registry]\nmax_concurrent_downloads = \"3\"\n", "registry.max_concurrent_downloads", "must be an integer", "a string (\"3\")")]
    [InlineData("[registry]\nrequest_timeout_seconds = 1.5\n", "registry.request_timeout_seconds", "must be an integer", "a float (1.5)")]
    [InlineData("[cni]\nbin_dirs = \"/opt/cni/bin\"\n", "cni.bin_dirs", "must be an array of strings", "a string")]
    [InlineData("[cni]\nbin_dirs = [\"/a\", 2]\n", "cni.bin_dirs", "element 1 must be a string", "an integer (2)")]
    [InlineData("registry = \"x\"\n", "'registry'", "must be a table", "a string")]
    [InlineData("[runtime]\nhandlers = 1\n", "runtime.handlers", "must be a table", "an integer")]
    [InlineData("[runtime.handlers]\nkata = \"/usr/bin/kata\"\n", "runtime.handlers.kata", "must be a table", "a string")]
    [InlineData("[metrics]\naddress = 9464\n", "metrics.address", "must be a string", "an integer (9464)")]
    public void WrongTypeNamesKeyExpectedAndFound(string toml, string key, string expected, string found)
    {
        var e = Fails(toml);
        Assert.Contains(key, e.Message);
        Assert.Contains(expected, e.Message);
        Assert.Contains(found, e.Message);
        Assert.Contains(Source, e.Message);
    }

    [Theory]
    [InlineData("socket = \"run/criruntime.sock\"\n", "'socket'", "absolute path")]
    [InlineData("socket = \"unix:///run/c.sock\"\n", "'socket'", "without unix://")]
    [InlineData("root = \"\"\n", "'root'", "absolute path")]
    [InlineData("state = \"./state\"\n", "'state'", "absolute path")]
    [InlineData("[registry]\nconfig_path = \"certs.d\"\n", "registry.config_path", "absolute path")]
    [InlineData("[cni]\nconf_dir = \"net.d\"\n", "cni.conf_dir", "absolute path")]
    [InlineData("[cni]\nbin_dirs = [\"/opt/cni/bin\", \"bin\"]\n", "cni.bin_dirs", "element 1 is 'bin', but must be an absolute path")]
    [InlineData("[cni]\nbin_dirs = []\n", "cni.bin_dirs", "at least one directory")]
    [InlineData("[cdi]\nspec_dirs = [\"/etc/cdi\", \"cdi\"]\n", "cdi.spec_dirs", "element 1 is 'cdi', but must be an absolute path")]
    [InlineData("[cni]\nconf_template = \"template.json\"\n", "cni.conf_template", "absolute path")]
    [InlineData("[cni]\nplugin_timeout_seconds = 0\n", "cni.plugin_timeout_seconds", "1")]
    [InlineData("[runtime]\nconmon = \"conmon\"\n", "runtime.conmon", "absolute path")]
    [InlineData("[runtime.handlers.kata]\npath = \"kata-runtime\"\n", "runtime.handlers.kata.path", "absolute path")]
    [InlineData("[runtime.handlers.kata]\n", "runtime.handlers.kata", "has no path")]
    [InlineData("[runtime.handlers.Kata]\npath = \"/x\"\n", "runtime.handlers.Kata", "not a valid handler name")]
    [InlineData("[runtime.handlers.\"-x\"]\npath = \"/x\"\n", "runtime.handlers.-x", "not a valid handler name")]
    [InlineData("[runtime.handlers.\"a b\"]\npath = \"/x\"\n", "runtime.handlers.\"a b\"", "not a valid handler name")]
    [InlineData("log_level = \"verbose\"\n", "'log_level'", "trace, debug, info, warning, error")]
    [InlineData("[runtime]\nimage_volumes = \"bind\"\n", "runtime.image_volumes", "copy, mkdir, ignore")]
    [InlineData("log_level = \"warn\"\n", "'log_level'", "did you mean 'warning'")]
    [InlineData("log_level = \"INFO\"\n", "'log_level'", "did you mean 'info'")]
    [InlineData("[registry]\ndefault_platform = \"amd64\"\n", "registry.default_platform", "os/architecture[/variant]")]
    [InlineData("[registry]\ndefault_platform = \"linux/amd64/v2/x\"\n", "registry.default_platform", "os/architecture[/variant]")]
    [InlineData("[registry]\ndefault_platform = \"linux/ amd64\"\n", "registry.default_platform", "not a platform")]
    [InlineData("[registry]\nmax_concurrent_downloads = 0\n", "registry.max_concurrent_downloads", "from 1 to 64")]
    [InlineData("[registry]\nmax_concurrent_downloads = 65\n", "registry.max_concurrent_downloads", "from 1 to 64")]
    [InlineData("[registry]\nrequest_timeout_seconds = 0\n", "registry.request_timeout_seconds", "at least 1")]
    [InlineData("[registry]\nrequest_timeout_seconds = -5\n", "registry.request_timeout_seconds", "at least 1")]
    [InlineData("[registry]\nrequest_timeout_seconds = 99999999999\n", "registry.request_timeout_seconds", "at least 1")]
    [InlineData("[images]\nprogress_interval_seconds = 0\n", "images.progress_interval_seconds", "at least 1")]
    [InlineData("[streaming]\naddress = \"127.0.0.1\"\n", "streaming.address", "no port")]
    [InlineData("[streaming]\naddress = \"127.0.0.1:70000\"\n", "streaming.address", "0 to 65535")]
    [InlineData("[streaming]\naddress = \"127.0.0.1:http\"\n", "streaming.address", "0 to 65535")]
    [InlineData("[streaming]\naddress = \"\"\n", "streaming.address", "empty")]
    [InlineData("[streaming]\naddress = \":10010\"\n", "streaming.address", "0.0.0.0")]
    [InlineData("[streaming]\naddress = \"::1:10010\"\n", "streaming.address", "in brackets")]
    [InlineData("[streaming]\naddress = \"node1:10010\"\n", "streaming.address", "not an IP address")]
    [InlineData("[metrics]\naddress = \"localhost:9464\"\n", "metrics.address", "or \"\" to disable it")]
    [InlineData("[metrics]\naddress = \"[zz]:9464\"\n", "metrics.address", "not an IPv6 address")]
    [InlineData("[runtime]\ndefault_handler = \"kata\"\n", "runtime.default_handler", "handlers are crun, runc")]
    public void BadValueNamesKeyAndReason(string toml, string key, string reason)
    {
        var e = Fails(toml);
        Assert.Contains(key, e.Message);
        Assert.Contains(reason, e.Message);
        Assert.Contains(Source, e.Message);
    }

    [Fact]
    public void DefaultHandlerMayNameAHandlerDefinedLaterInTheFile()
    {
        var c = ConfigLoader.Parse("[runtime]\ndefault_handler = \"kata\"\n[runtime.handlers.kata]\npath = \"/usr/bin/kata\"\n", Source);
        Assert.Equal("kata", c.Runtime.DefaultHandler);
        Assert.Equal(3, c.Runtime.Handlers.Count);
    }

    [Fact]
    public void HandlerNameWithDotsIsAllowedWhenQuoted()
    {
        var c = ConfigLoader.Parse("[runtime.handlers.\"kata.v2\"]\npath = \"/usr/bin/kata\"\n", Source);
        Assert.Equal("/usr/bin/kata", c.Runtime.Handlers["kata.v2"].Path);
    }

    [Theory]
    [InlineData("socket = \"/x\"\nroot = = \"/y\"\n", 2)]
    [InlineData("socket = \"/x\"\n\n[registry\n", 3)]
    [InlineData("log_level = \"info\n", 1)]
    [InlineData("socket = \"/a\"\nsocket = \"/b\"\n", 2)]
    [InlineData("[cni]\nconf_dir = \"/a\"\n[cni]\nbin_dirs = [\"/b\"]\n", 3)]
    public void SyntaxErrorGivesLineAndColumn(string toml, int line)
    {
        var e = Fails(toml);
        Assert.Equal(line, e.Line);
        Assert.Matches($"^{Regex.Escape(Source)}:{line}:\\d+: TOML syntax error: ", e.Message);
    }

    [Fact]
    public void LoadMissingFileGivesDefaultsUnlessRequired()
    {
        string path = Path.Combine(Path.GetTempPath(), "criruntime-config-" + Guid.NewGuid().ToString("N"), "config.toml");
        AssertSameConfig(new CriRuntimeConfig(), ConfigLoader.Load(path, mustExist: false));
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(path, mustExist: true));
        Assert.Contains(path, e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void LoadReadsFileAndNamesItInErrors()
    {
        string dir = Directory.CreateTempSubdirectory("criruntime-config-").FullName;
        try
        {
            string path = Path.Combine(dir, "config.toml");
            File.WriteAllText(path, "log_level = \"debug\"\n", Encoding.UTF8);
            Assert.Equal("debug", ConfigLoader.Load(path, mustExist: true).LogLevel);

            File.WriteAllText(path, "[registry]\nconfg_path = \"/x\"\n");
            var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(path, mustExist: true));
            Assert.StartsWith(path + ":2:", e.Message);
            Assert.Contains("registry.confg_path", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("127.0.0.1:0", null)]
    [InlineData("0.0.0.0:65535", null)]
    [InlineData("[::]:10010", null)]
    [InlineData("[fe80::1]:1", null)]
    [InlineData("127.0.0.1:65536", "0 to 65535")]
    [InlineData("127.0.0.1:-1", "0 to 65535")]
    [InlineData("127.0.0.1:", "0 to 65535")]
    [InlineData("1.2.3:80", "not an IP address")]
    [InlineData("[::1]", "no port")]
    public void AddressValidation(string address, string? problem)
    {
        string? actual = ConfigLoader.ValidateAddress(address);
        if (problem is null) Assert.Null(actual);
        else Assert.Contains(problem, actual);
    }

    /// <summary>
    /// Every leaf key of the model as a dotted TOML path (snake_case of the property names), with the property
    /// and a function that finds the object holding it. Handlers are represented by their default entries.
    /// </summary>
    private static IEnumerable<(string Path, PropertyInfo Property, Func<CriRuntimeConfig, object?> Owner)> ModelKeys(Type type, string prefix, Func<CriRuntimeConfig, object?>? owner = null)
    {
        owner ??= c => c;
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            string name = prefix + SnakeCase(property.Name);
            var t = property.PropertyType;
            if (t == typeof(Dictionary<string, RuntimeHandlerSection>))
            {
                var getter = owner;
                var handlerProperty = typeof(RuntimeHandlerSection).GetProperty(nameof(RuntimeHandlerSection.Path))!;
                yield return ($"{name}.runc.path", handlerProperty, c => ((Dictionary<string, RuntimeHandlerSection>)property.GetValue(getter(c))!)["runc"]);
                continue;
            }
            if (t.IsClass && t != typeof(string) && !t.IsGenericType)
            {
                var parent = owner;
                foreach (var nested in ModelKeys(t, name + ".", c => property.GetValue(parent(c))))
                    yield return nested;
                continue;
            }
            yield return (name, property, owner);
        }
    }

    private static string SnakeCase(string name) => Regex.Replace(name, "(?<=[a-z0-9])([A-Z])", "_$1").ToLowerInvariant();

    private static void AssertSameConfig(CriRuntimeConfig expected, CriRuntimeConfig actual)
    {
        foreach (var (path, property, owner) in ModelKeys(typeof(CriRuntimeConfig), ""))
            Assert.True(Equals(property.GetValue(owner(expected)), property.GetValue(owner(actual))) ||
                        (property.GetValue(owner(expected)) is List<string> a && property.GetValue(owner(actual)) is List<string> b && a.SequenceEqual(b)),
                $"'{path}' differs: expected {property.GetValue(owner(expected))}, got {property.GetValue(owner(actual))}");
        Assert.Equal(
            expected.Runtime.Handlers.OrderBy(h => h.Key).Select(h => (h.Key, h.Value.Path)),
            actual.Runtime.Handlers.OrderBy(h => h.Key).Select(h => (h.Key, h.Value.Path)));
    }
}
