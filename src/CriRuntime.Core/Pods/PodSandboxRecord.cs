using System.Text.Json.Serialization;
using CriRuntime.Native;
using CriRuntime.State;
using Runtime.V1;

namespace CriRuntime.Pods;

public enum PodSandboxPhase
{
    /// <summary>Being set up; a record found in this phase at start-up is rolled back.</summary>
    Creating,
    Ready,
    NotReady,
}

/// <summary>
/// What the node knows about one pod sandbox. Immutable: a change writes a new record. Everything a
/// restarted daemon needs to answer, stop or clean up the pod is here.
/// </summary>
public sealed record PodSandboxRecord : IRecord
{
    private PodSandboxConfig? config;
    private byte[] configBytes = [];

    public required string Id { get; init; }

    /// <summary>The record's schema version (<see cref="Storage.RecordSchema"/>); records from before versions are 1.</summary>
    public int SchemaVersion { get; init; } = Storage.RecordSchema.Current;

    /// <summary>Start-ups that tried and failed to clean up this pod while it was kept in the Creating phase.</summary>
    public int CleanupAttempts { get; init; }

    /// <summary>The PodSandboxConfig as received, protobuf-encoded.</summary>
    public required byte[] ConfigBytes
    {
        get => configBytes;
        // A copy made with `with` must not keep the parsed config of the bytes it replaced.
        init { configBytes = value; config = null; }
    }

    public required string RuntimeHandler { get; init; }
    public required PodSandboxPhase Phase { get; init; }

    /// <summary>Nanoseconds since the Unix epoch, as CRI reports times.</summary>
    public required long CreatedAt { get; init; }

    /// <summary>Per-pod directory under the state dir: namespace pins, etc files, shm, infra bundle.</summary>
    [JsonPropertyName("Directory")] // the name records were first written with
    public required string PodStateDir { get; init; }

    public string? NetworkNamespace { get; init; }
    public string? IpcNamespace { get; init; }
    public string? UtsNamespace { get; init; }

    /// <summary>The pod's tmpfs for /dev/shm; null when the pod uses the host's IPC namespace.</summary>
    public string? ShmPath { get; init; }

    /// <summary>The cgroup the pod's containers live under (cgroupfs path).</summary>
    public required string CgroupParent { get; init; }

    /// <summary>True when we made <see cref="CgroupParent"/> (no kubelet did), so we remove it too.</summary>
    public bool OwnsCgroup { get; init; }

    /// <summary>
    /// For each cgroup hierarchy (by mount point), how many leading levels of <see cref="CgroupParent"/> existed
    /// before RunPodSandbox; the daemon made the levels below those, and removes them (deepest first) with the pod,
    /// so a cgroup parent such as /a/b/c that did not exist leaves nothing behind. Null in records written before
    /// this was kept: then only <see cref="CgroupParent"/> itself goes, when <see cref="OwnsCgroup"/>.
    /// </summary>
    public IReadOnlyDictionary<string, int>? CgroupLevelsExisting { get; init; }

    /// <summary>CNI ADD succeeded and no DEL has run since.</summary>
    public bool NetworkAttached { get; init; }

    public IReadOnlyList<string> Ips { get; init; } = [];

    /// <summary>Runtime id of the catatonit infra process, when the pod shares one PID namespace.</summary>
    public string? InfraId { get; init; }

    [JsonIgnore]
    public PodSandboxConfig Config => config ??= PodSandboxConfig.Parser.ParseFrom(ConfigBytes);

    /// <summary>The name that makes a pod unique: name, namespace, uid and attempt, as kubelet and containerd see it.</summary>
    [JsonIgnore]
    public string ReservationKey => ReservationKeyOf(Config.Metadata);

    public static string ReservationKeyOf(PodSandboxMetadata metadata) =>
        $"{metadata.Name}_{metadata.Namespace}_{metadata.Uid}_{metadata.Attempt}";

    [JsonIgnore]
    public bool HostNetwork => Config.Linux?.SecurityContext?.NamespaceOptions?.Network == NamespaceMode.Node;

    [JsonIgnore]
    public NamespaceMode PidMode => PidModeOf(Config);

    /// <summary>
    /// The hostname chosen when the pod ran: the config's, or the node's when the config has none (as containerd
    /// does). Stored, because its UTS namespace and /etc/hostname keep it even if the node is renamed later. Null in
    /// records written before it was stored; those pods got the config's hostname or else the pod name.
    /// </summary>
    public string? ChosenHostname { get; init; }

    /// <summary>The pod's hostname: the node's current one with host networking, else the one chosen at RunPodSandbox.</summary>
    [JsonIgnore]
    public string Hostname => HostNetwork ? Namespaces.CurrentHostname()
        : ChosenHostname ?? (string.IsNullOrEmpty(Config.Hostname) ? Config.Metadata.Name : Config.Hostname);

    /// <summary>What RunPodSandbox names a pod: the config's hostname, else the node's (containerd's rule).</summary>
    public static string ChooseHostname(PodSandboxConfig config, Func<string> nodeHostname) =>
        string.IsNullOrEmpty(config.Hostname) ? nodeHostname() : config.Hostname;

    public static NamespaceMode PidModeOf(PodSandboxConfig config) =>
        config.Linux?.SecurityContext?.NamespaceOptions?.Pid ?? NamespaceMode.Pod;

    [JsonIgnore]
    public string InfraBundle => Path.Combine(PodStateDir, "infra");
}
