using System.Text.Json.Serialization;
using CriRuntime.State;
using Runtime.V1;

namespace CriRuntime.Containers;

public enum ContainerPhase
{
    /// <summary>Being created; a record found in this phase at start-up is rolled back.</summary>
    Creating,
    Created,
    Running,
    Exited,
}

/// <summary>One container as the node knows it. Immutable: a change writes a new record.</summary>
public sealed record ContainerRecord : IRecord
{
    private ContainerConfig? config;
    private byte[] configBytes = [];

    public required string Id { get; init; }

    /// <summary>The record's schema version (<see cref="Storage.RecordSchema"/>); records from before versions are 1.</summary>
    public int SchemaVersion { get; init; } = Storage.RecordSchema.Current;

    /// <summary>Start-ups that tried and failed to clean up this container while it was kept in the Creating phase.</summary>
    public int CleanupAttempts { get; init; }

    /// <summary>
    /// Chain ids of the image layers under the rootfs, bottom first, recorded at create time so that image and layer
    /// garbage collection can spare them even when the image record is gone. Null in records written before this existed.
    /// </summary>
    public IReadOnlyList<string>? LayerChainIds { get; init; }

    /// <summary>Images the container mounts (CRI Mount.image), recorded before they are mounted so that RemoveImage and
    /// garbage collection spare them while the container exists. Null in records written before this existed.</summary>
    public IReadOnlyList<ImageMountRecord>? ImageMounts { get; init; }

    public required string PodSandboxId { get; init; }

    /// <summary>The ContainerConfig as received, protobuf-encoded.</summary>
    public required byte[] ConfigBytes
    {
        get => configBytes;
        // A copy made with `with` must not keep the parsed config of the bytes it replaced.
        init { configBytes = value; config = null; }
    }

    /// <summary>The image id (config digest) the container was made from.</summary>
    public required string ImageId { get; init; }

    /// <summary>The image as a person names it: its first tag, else what the container was created with.</summary>
    public string ImageName { get; init; } = "";

    /// <summary>A repo digest of the image, what CRI calls image_ref.</summary>
    public required string ImageRef { get; init; }

    public required string RuntimeHandler { get; init; }
    public required ContainerPhase Phase { get; init; }
    public required long CreatedAt { get; init; }
    public long StartedAt { get; init; }
    public long FinishedAt { get; init; }
    public int ExitCode { get; init; }
    public string Reason { get; init; } = "";
    public string Message { get; init; } = "";
    public int Pid { get; init; }

    /// <summary>The CRI log file (log_directory of the pod joined with log_path), or "" for none.</summary>
    public string LogPath { get; init; } = "";

    /// <summary>Bundle directory under the state dir: config.json, the rootfs mount point, conmon's files.</summary>
    public required string Bundle { get; init; }

    /// <summary>Persistent directory under root holding the overlay upper and work dirs.</summary>
    [JsonPropertyName("Directory")] // the name records were first written with
    public required string WritableLayerDir { get; init; }

    public required string CgroupsPath { get; init; }

    /// <summary>Signal StopContainer sends first (config stop_signal, else image StopSignal), as a number.</summary>
    public int StopSignal { get; init; } = 15;

    /// <summary>The user of the container's process as its spec gives it (ContainerStatus.user); null in older records.</summary>
    public ContainerProcessUser? User { get; init; }

    [JsonIgnore]
    public ContainerConfig Config => config ??= ContainerConfig.Parser.ParseFrom(ConfigBytes);

    [JsonIgnore]
    public string Rootfs => Path.Combine(Bundle, "rootfs");

    public static string ReservationKeyOf(string podSandboxId, ContainerMetadata metadata) =>
        $"{podSandboxId}/{metadata.Name}_{metadata.Attempt}";

    [JsonIgnore]
    public string ReservationKey => ReservationKeyOf(PodSandboxId, Config.Metadata);
}

/// <summary>uid, gid and supplemental groups of a container's process, as resolved into its OCI spec.</summary>
public sealed record ContainerProcessUser(long Uid, long Gid, IReadOnlyList<long> SupplementalGroups);
