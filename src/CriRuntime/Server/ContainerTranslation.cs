using System.Text.Json;
using System.Text.Json.Nodes;
using CriRuntime.Containers;
using Runtime.V1;

namespace CriRuntime.Server;

/// <summary>Container records as CRI messages, and the ListContainers filter.</summary>
internal static class ContainerTranslation
{
    public static ContainerState StateOf(ContainerRecord c) => c.Phase switch
    {
        ContainerPhase.Created => ContainerState.ContainerCreated,
        ContainerPhase.Running => ContainerState.ContainerRunning,
        ContainerPhase.Exited => ContainerState.ContainerExited,
        _ => ContainerState.ContainerUnknown,
    };

    // Records are immutable, so each version's list item is built once: kubelet lists every second.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<ContainerRecord, Container> ListItems = new();

    /// <summary>The ListContainers item; shared, so callers must not change it.</summary>
    public static Container ToWire(ContainerRecord c) => ListItems.GetValue(c, Build);

    private static Container Build(ContainerRecord c) => new()
    {
        Id = c.Id,
        PodSandboxId = c.PodSandboxId,
        Metadata = c.Config.Metadata,
        Image = ImageSpecOf(c),
        ImageRef = c.ImageRef,
        ImageId = c.ImageId,
        State = StateOf(c),
        CreatedAt = c.CreatedAt,
        Labels = { c.Config.Labels },
        Annotations = { c.Config.Annotations },
    };

    public static ContainerStatus StatusOf(ContainerRecord c)
    {
        var status = new ContainerStatus
        {
            Id = c.Id,
            Metadata = c.Config.Metadata,
            State = StateOf(c),
            CreatedAt = c.CreatedAt,
            StartedAt = c.StartedAt,
            FinishedAt = c.FinishedAt,
            ExitCode = c.ExitCode,
            Image = ImageSpecOf(c),
            ImageRef = c.ImageRef,
            ImageId = c.ImageId,
            Reason = c.Reason,
            Message = c.Message,
            Labels = { c.Config.Labels },
            Annotations = { c.Config.Annotations },
            LogPath = c.LogPath,
            StopSignal = StopSignals.ToCri(c.StopSignal),
        };
        // As containerd: the user of the spec's process, for the kubelet's pod status (SupplementalGroupsPolicy).
        if (c.User is { } user)
            status.User = new ContainerUser { Linux = new LinuxContainerUser { Uid = user.Uid, Gid = user.Gid, SupplementalGroups = { user.SupplementalGroups } } };
        status.Mounts.AddRange(c.Config.Mounts.Select(m => m.Clone()));
        if (c.Config.Linux?.Resources is { } resources)
            status.Resources = new ContainerResources { Linux = resources.Clone() };
        return status;
    }

    public static string VerboseInfo(ContainerRecord c)
    {
        JsonNode? spec = null;
        try
        {
            string path = Path.Combine(c.Bundle, "config.json");
            if (File.Exists(path)) spec = JsonNode.Parse(File.ReadAllBytes(path));
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            // Being removed meanwhile: the info simply has no spec.
        }
        return new JsonObject
        {
            ["sandboxID"] = c.PodSandboxId,
            ["pid"] = c.Phase == ContainerPhase.Running ? c.Pid : 0,
            ["runtimeHandler"] = c.RuntimeHandler,
            ["bundle"] = c.Bundle,
            ["rootfs"] = c.Rootfs,
            ["cgroupsPath"] = c.CgroupsPath,
            ["runtimeSpec"] = spec,
            ["config"] = JsonNode.Parse(Google.Protobuf.JsonFormatter.Default.Format(c.Config)),
        }.ToJsonString(PodTranslation.Indented);
    }

    public static IEnumerable<ContainerRecord> Filter(IEnumerable<ContainerRecord> containers, ContainerFilter? filter)
    {
        if (filter is null) return containers;
        return containers.Where(c =>
            (string.IsNullOrEmpty(filter.Id) || c.Id.StartsWith(filter.Id, StringComparison.Ordinal))
            && (string.IsNullOrEmpty(filter.PodSandboxId) || c.PodSandboxId.StartsWith(filter.PodSandboxId, StringComparison.Ordinal))
            && (filter.State is null || StateOf(c) == filter.State.State)
            && Labels.Match(c.Config.Labels, filter.LabelSelector));
    }

    // The image by name (what crictl ps shows), with the annotations it was asked for.
    private static ImageSpec ImageSpecOf(ContainerRecord c)
    {
        var spec = c.Config.Image?.Clone() ?? new ImageSpec();
        if (c.ImageName.Length > 0) spec.Image = c.ImageName;
        return spec;
    }
}
