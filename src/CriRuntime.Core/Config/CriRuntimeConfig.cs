namespace CriRuntime.Config;

/// <summary>
/// The daemon's whole configuration, as read from one TOML file. Every property has a default, so an
/// empty file (or none) is a working configuration. Keys in TOML are the snake_case names noted on each
/// property. <see cref="ConfigLoader"/> reads and validates; <see cref="DefaultConfig"/> prints.
/// </summary>
public sealed class CriRuntimeConfig
{
    /// <summary><c>socket</c>: the unix socket the CRI gRPC API is served on.</summary>
    public string Socket { get; set; } = "/run/criruntime/criruntime.sock";

    /// <summary><c>root</c>: persistent data (images, layers, container state that must survive reboots).</summary>
    public string Root { get; set; } = "/var/lib/criruntime";

    /// <summary><c>state</c>: runtime state that must not survive a reboot (namespaces pins, exit files).</summary>
    public string State { get; set; } = "/run/criruntime";

    /// <summary><c>log_level</c>: trace, debug, info, warning, error.</summary>
    public string LogLevel { get; set; } = "info";

    public RegistrySection Registry { get; set; } = new();
    public ImagesSection Images { get; set; } = new();
    public CniSection Cni { get; set; } = new();
    public RuntimeSection Runtime { get; set; } = new();
    public StreamingSection Streaming { get; set; } = new();
    public MetricsSection Metrics { get; set; } = new();
    public CdiSection Cdi { get; set; } = new();
}

public sealed class CdiSection
{
    /// <summary><c>[cdi] spec_dirs</c>: where CDI device specs are read from; a device in a later directory overrides an earlier one.</summary>
    public List<string> SpecDirs { get; set; } = ["/etc/cdi", "/var/run/cdi"];
}

public sealed class RegistrySection
{
    /// <summary><c>[registry] config_path</c>: containerd-style hosts.toml tree (&lt;dir&gt;/&lt;host&gt;/hosts.toml).</summary>
    public string ConfigPath { get; set; } = "/etc/criruntime/certs.d";

    /// <summary><c>[registry] default_platform</c>: platform chosen from manifest lists and indexes.</summary>
    public string DefaultPlatform { get; set; } = Content.Platform.Current.ToString();

    /// <summary><c>[registry] max_concurrent_downloads</c>: layer downloads in flight for one pull.</summary>
    public int MaxConcurrentDownloads { get; set; } = 3;

    /// <summary><c>[registry] request_timeout_seconds</c>: time to first response byte for one registry request.</summary>
    public int RequestTimeoutSeconds { get; set; } = 30;
}

public sealed class ImagesSection
{
    /// <summary><c>[images] progress_interval_seconds</c>: how often a long pull logs its progress.</summary>
    public int ProgressIntervalSeconds { get; set; } = 5;
}

public sealed class CniSection
{
    /// <summary><c>[cni] conf_dir</c>: where CNI network configurations are read from.</summary>
    public string ConfDir { get; set; } = "/etc/cni/net.d";

    /// <summary><c>[cni] bin_dirs</c>: where CNI plugin binaries are looked up, in order.</summary>
    public List<string> BinDirs { get; set; } = ["/opt/cni/bin", "/usr/lib/cni"];

    /// <summary><c>[cni] plugin_timeout_seconds</c>: how long one plugin call may take before it is killed.</summary>
    public int PluginTimeoutSeconds { get; set; } = 60;

    /// <summary><c>[cni] conf_template</c>: a conflist template rendered with the node's pod CIDR; "" for none.</summary>
    public string ConfTemplate { get; set; } = "";
}

public sealed class RuntimeSection
{
    /// <summary><c>[runtime] default_handler</c>: the handler used when a pod names none.</summary>
    public string DefaultHandler { get; set; } = "runc";

    /// <summary><c>[runtime] conmon</c>: path of the conmon binary.</summary>
    public string Conmon { get; set; } = "/usr/bin/conmon";

    /// <summary><c>[runtime] unprivileged_ports</c>: pods with their own network get net.ipv4.ip_unprivileged_port_start=0.</summary>
    public bool UnprivilegedPorts { get; set; } = true;

    /// <summary><c>[runtime] unprivileged_icmp</c>: pods with their own network get net.ipv4.ping_group_range="0 2147483647".</summary>
    public bool UnprivilegedIcmp { get; set; } = true;
    /// <summary><c>[runtime] image_volumes</c>: what each image VOLUME becomes: "copy" (a writable directory of the
    /// container's own, seeded with the image's content there), "mkdir" (the same, empty) or "ignore" (nothing).</summary>
    public string ImageVolumes { get; set; } = "copy";

    /// <summary><c>[runtime.handlers.NAME]</c>: OCI runtimes selectable by RuntimeHandler.</summary>
    public Dictionary<string, RuntimeHandlerSection> Handlers { get; set; } = new()
    {
        ["runc"] = new RuntimeHandlerSection { Path = "/usr/sbin/runc" },
        ["crun"] = new RuntimeHandlerSection { Path = "/usr/bin/crun" },
    };
}

public sealed class RuntimeHandlerSection
{
    /// <summary><c>[runtime.handlers.NAME] path</c>: the OCI runtime binary.</summary>
    public string Path { get; set; } = "";
}

public sealed class StreamingSection
{
    /// <summary><c>[streaming] address</c>: host:port of the exec/attach/port-forward server (port 0 picks one).</summary>
    public string Address { get; set; } = "127.0.0.1:0";

    /// <summary><c>[streaming] idle_timeout</c>: a streaming connection with no traffic this long is closed (the kubelet's 4h).</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromHours(4);

    /// <summary><c>[streaming] stream_creation_timeout</c>: how long a client has to open the streams it asked for (the kubelet's 30s).</summary>
    public TimeSpan StreamCreationTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary><c>[streaming] tls_cert_file</c>: PEM certificate (chain) to serve HTTPS with; "" serves plain HTTP.</summary>
    public string TlsCertFile { get; set; } = "";

    /// <summary><c>[streaming] tls_key_file</c>: PEM private key of <see cref="TlsCertFile"/>.</summary>
    public string TlsKeyFile { get; set; } = "";
}

public sealed class MetricsSection
{
    /// <summary><c>[metrics] address</c>: host:port serving Prometheus /metrics; empty disables it.</summary>
    public string Address { get; set; } = "127.0.0.1:9464";
}
