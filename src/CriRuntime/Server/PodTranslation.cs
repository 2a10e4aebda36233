using System.Text.Json;
using System.Text.Json.Nodes;
using CriRuntime.Pods;
using Runtime.V1;

namespace CriRuntime.Server;

/// <summary>Pod sandbox records as CRI messages, and the ListPodSandbox filter.</summary>
internal static class PodTranslation
{
    public static PodSandboxState StateOf(PodSandboxRecord pod) =>
        pod.Phase == PodSandboxPhase.Ready ? PodSandboxState.SandboxReady : PodSandboxState.SandboxNotready;

    // Records are immutable, so each version's list item is built once: kubelet lists every second.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<PodSandboxRecord, PodSandbox> ListItems = new();

    /// <summary>The ListPodSandbox item; shared, so callers must not change it.</summary>
    public static PodSandbox ToWire(PodSandboxRecord pod) => ListItems.GetValue(pod, Build);

    private static PodSandbox Build(PodSandboxRecord pod) => new()
    {
        Id = pod.Id,
        Metadata = pod.Config.Metadata,
        State = StateOf(pod),
        CreatedAt = pod.CreatedAt,
        Labels = { pod.Config.Labels },
        Annotations = { pod.Config.Annotations },
        RuntimeHandler = pod.RuntimeHandler,
    };

    public static PodSandboxStatus StatusOf(PodSandboxRecord pod)
    {
        var status = new PodSandboxStatus
        {
            Id = pod.Id,
            Metadata = pod.Config.Metadata,
            State = StateOf(pod),
            CreatedAt = pod.CreatedAt,
            Labels = { pod.Config.Labels },
            Annotations = { pod.Config.Annotations },
            RuntimeHandler = pod.RuntimeHandler,
            Linux = new LinuxPodSandboxStatus
            {
                Namespaces = new Namespace
                {
                    Options = pod.Config.Linux?.SecurityContext?.NamespaceOptions?.Clone() ?? new NamespaceOption(),
                },
            },
        };
        // Like containerd: the IPs are reported while the pod is ready; a stopped pod has none.
        if (pod.Phase == PodSandboxPhase.Ready && pod.Ips.Count > 0)
        {
            status.Network = new PodSandboxNetworkStatus { Ip = pod.Ips[0] };
            status.Network.AdditionalIps.AddRange(pod.Ips.Skip(1).Select(ip => new PodIP { Ip = ip }));
        }
        else
        {
            status.Network = new PodSandboxNetworkStatus();
        }
        return status;
    }

    /// <summary>The verbose "info" entry, in the spirit of containerd's: what a person debugging the pod needs.</summary>
    public static string VerboseInfo(PodSandboxRecord pod) => new JsonObject
    {
        ["id"] = pod.Id,
        ["runtimeHandler"] = pod.RuntimeHandler,
        ["netNamespace"] = pod.NetworkNamespace,
        ["ipcNamespace"] = pod.IpcNamespace,
        ["utsNamespace"] = pod.UtsNamespace,
        ["shm"] = pod.ShmPath,
        ["cgroupParent"] = pod.CgroupParent,
        ["infraId"] = pod.InfraId,
        ["ips"] = new JsonArray([.. pod.Ips.Select(ip => (JsonNode)JsonValue.Create(ip))]),
        ["networkAttached"] = pod.NetworkAttached,
        ["config"] = JsonNode.Parse(Google.Protobuf.JsonFormatter.Default.Format(pod.Config)),
    }.ToJsonString(Indented);

    internal static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static IEnumerable<PodSandboxRecord> Filter(IEnumerable<PodSandboxRecord> pods, PodSandboxFilter? filter)
    {
        if (filter is null) return pods;
        return pods.Where(p =>
            (string.IsNullOrEmpty(filter.Id) || p.Id.StartsWith(filter.Id, StringComparison.Ordinal))
            && (filter.State is null || StateOf(p) == filter.State.State)
            && Labels.Match(p.Config.Labels, filter.LabelSelector));
    }
}

internal static class Labels
{
    /// <summary>Every selector entry must be a label with that exact value.</summary>
    public static bool Match(Google.Protobuf.Collections.MapField<string, string> labels, Google.Protobuf.Collections.MapField<string, string> selector)
    {
        foreach (var (key, value) in selector)
            if (!labels.TryGetValue(key, out var actual) || actual != value) return false;
        return true;
    }
}
