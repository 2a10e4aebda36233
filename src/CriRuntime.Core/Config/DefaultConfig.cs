using System.Globalization;
using System.Text;

namespace CriRuntime.Config;

/// <summary>
/// Prints a configuration as commented TOML: every key, with a comment saying what it does. With no argument
/// it prints the defaults, which is what <c>criruntime config default</c> shows; the output parses back
/// (through <see cref="ConfigLoader.Parse"/>) to the same values.
/// </summary>
public static class DefaultConfig
{
    /// <summary>The default configuration as TOML text.</summary>
    public static string Render() => Render(new CriRuntimeConfig());

    /// <summary><paramref name="config"/> as TOML text, in the same layout as the defaults.</summary>
    public static string Render(CriRuntimeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var w = new Writer();

        w.Line("# criruntime configuration (TOML).");
        w.Line("# Every key is optional; each is shown here with its default value. Unknown keys and");
        w.Line("# wrong types are errors, so a typo stops the daemon instead of being silently ignored.");
        w.Line("# Paths must be absolute.");
        w.Blank();

        w.Key("socket", config.Socket,
            "Unix socket the CRI gRPC API is served on. Point the kubelet at it with",
            "--container-runtime-endpoint=unix://<this path>.");
        w.Key("root", config.Root,
            "Persistent data: image blobs and metadata, unpacked layers, and container state",
            "that must survive a reboot.");
        w.Key("state", config.State,
            "Volatile runtime state that must not survive a reboot (namespace pins, exit files).",
            "Put it on a tmpfs such as /run.");
        w.Key("log_level", config.LogLevel,
            "How much the daemon logs: trace, debug, info, warning or error.");

        w.Section("registry", "How images are pulled.");
        w.Key("config_path", config.Registry.ConfigPath,
            "Directory of per-registry settings in containerd's hosts.toml layout:",
            "<config_path>/<registry host>/hosts.toml (mirrors, CAs, client certificates, skip_verify),",
            "with <config_path>/_default/hosts.toml applying to registries that have no directory.");
        w.Key("default_platform", config.Registry.DefaultPlatform,
            "Platform (os/architecture[/variant]) picked from multi-platform images; defaults to this machine's.");
        w.Key("max_concurrent_downloads", config.Registry.MaxConcurrentDownloads,
            "Layers downloaded at the same time for one pull (1 to 64).");
        w.Key("request_timeout_seconds", config.Registry.RequestTimeoutSeconds,
            "Seconds to wait for a registry to start answering one request before giving up on it.");

        w.Section("images", "Image management.");
        w.Key("progress_interval_seconds", config.Images.ProgressIntervalSeconds,
            "How often, in seconds, a long-running pull logs its progress.");

        w.Section("cni", "Pod networking through CNI plugins.");
        w.Key("conf_dir", config.Cni.ConfDir,
            "Directory the CNI network configuration (*.conflist, *.conf) is read from.");
        w.Key("bin_dirs", config.Cni.BinDirs,
            "Directories searched, in order, for CNI plugin binaries.");
        w.Key("plugin_timeout_seconds", config.Cni.PluginTimeoutSeconds,
            "Seconds one CNI plugin call (ADD, DEL, CHECK) may take before it is killed and the call fails (1 to 3600).");
        w.Key("conf_template", config.Cni.ConfTemplate,
            "Conflist template for nodes whose pod CIDR the kubelet hands out (UpdateRuntimeConfig): when set, each",
            "{{.PodCIDR}} in it becomes the node's first pod CIDR and the result is written to",
            "<conf_dir>/10-criruntime-template.conflist. \"\" leaves conf_dir alone.");

        w.Section("runtime", "How containers are run. Each [runtime.handlers.NAME] table below offers an OCI runtime",
            "under the RuntimeClass handler NAME; add one for another runtime, or change runc's or crun's path.");
        w.Key("default_handler", config.Runtime.DefaultHandler,
            "Handler used for pods whose RuntimeClass names none; must be one of [runtime.handlers].");
        w.Key("conmon", config.Runtime.Conmon,
            "Path of the conmon binary that monitors each container process and keeps its logs.");
        w.Key("unprivileged_ports", config.Runtime.UnprivilegedPorts,
            "Pods with their own network namespace get net.ipv4.ip_unprivileged_port_start=0, so non-root containers",
            "can bind ports below 1024 (containerd's enable_unprivileged_ports). A pod's own sysctl overrides it.");
        w.Key("unprivileged_icmp", config.Runtime.UnprivilegedIcmp,
            "Pods with their own network namespace get net.ipv4.ping_group_range=\"0 2147483647\", so non-root containers",
            "can ping (containerd's enable_unprivileged_icmp). A pod's own sysctl overrides it.");
        w.Key("image_volumes", config.Runtime.ImageVolumes,
            "What each path in an image's config Volumes becomes: \"copy\" a writable directory of the container's own,",
            "seeded with the image's content there, removed with the container (containerd's and Docker's behaviour);",
            "\"mkdir\" the same directory, empty; \"ignore\" nothing (the path stays part of the rootfs). A CRI mount at the same path wins.");
        foreach (var (name, handler) in config.Runtime.Handlers)
        {
            w.Section($"runtime.handlers.{TomlDocument.QuoteKey(name)}", $"The '{name}' runtime handler.");
            w.Key("path", handler.Path, "Absolute path of the OCI runtime binary.");
        }

        w.Section("streaming", "The exec / attach / port-forward streaming server the kubelet redirects to",
            "(SPDY/3.1 over an HTTP/1.1 upgrade, or WebSocket v5.channel.k8s.io for exec and attach).");
        w.Key("address", config.Streaming.Address,
            "IP:port it listens on; port 0 picks a free port. Use [::1]:port for IPv6.");
        w.Key("idle_timeout", GoDuration.Format(config.Streaming.IdleTimeout),
            "A streaming connection with no traffic in either direction for this long is closed (the kubelet's 4h).",
            "A Go duration: \"4h\", \"90m\", \"1h30m\".");
        w.Key("stream_creation_timeout", GoDuration.Format(config.Streaming.StreamCreationTimeout),
            "How long a client has, once upgraded, to open the streams it asked for (the kubelet's 30s).",
            "A Go duration: \"30s\", \"1m\".");
        w.Key("tls_cert_file", config.Streaming.TlsCertFile,
            "PEM certificate (chain) to serve HTTPS with; set together with tls_key_file. \"\" serves plain HTTP.");
        w.Key("tls_key_file", config.Streaming.TlsKeyFile,
            "PEM private key of tls_cert_file.");

        w.Section("metrics", "Prometheus metrics.");
        w.Key("address", config.Metrics.Address,
            "IP:port serving /metrics over plain HTTP; \"\" disables the endpoint.");

        w.Section("cdi", "Container Device Interface: devices that containers ask for by name (CDI_devices, cdi.k8s.io/* annotations).");
        w.Key("spec_dirs", config.Cdi.SpecDirs,
            "Directories of CDI specs (*.json, *.yaml), read when a container asks for a device; a device in a later",
            "directory overrides the same one in an earlier directory.");

        return w.ToString();
    }

    private sealed class Writer
    {
        private readonly StringBuilder sb = new();

        public void Line(string text) => sb.Append(text).Append('\n');

        public void Blank() => sb.Append('\n');

        public void Section(string name, params string[] comment)
        {
            foreach (var c in comment) Line("# " + c);
            Line($"[{name}]");
            Blank();
        }

        public void Key(string key, object value, params string[] comment)
        {
            foreach (var c in comment) Line("# " + c);
            Line($"{key} = {Value(value)}");
            Blank();
        }

        private static string Value(object value) => value switch
        {
            string s => Quote(s),
            int i => i.ToString(CultureInfo.InvariantCulture),
            bool b => b ? "true" : "false",
            IEnumerable<string> list => "[" + string.Join(", ", list.Select(Quote)) + "]",
            _ => throw new ArgumentException($"no TOML rendering for {value.GetType()}"),
        };

        public override string ToString() => sb.ToString();
    }

    /// <summary>A TOML basic string, escaped so any value round-trips.</summary>
    internal static string Quote(string value)
    {
        var sb = new StringBuilder(value.Length + 2).Append('"');
        foreach (char c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (char.IsControl(c)) sb.Append("\\u").Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
