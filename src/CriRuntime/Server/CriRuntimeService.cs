using CriRuntime.Config;
using CriRuntime.Containers;
using CriRuntime.Events;
using CriRuntime.Lifecycle;
using CriRuntime.Network.Cni;
using CriRuntime.Pods;
using CriRuntime.Recovery;
using CriRuntime.Stats;
using Microsoft.Extensions.Hosting;
using Runtime.V1;

namespace CriRuntime.Server;

/// <summary>
/// The CRI RuntimeService. Each RPC lives in the file named after it; an RPC with no file here is
/// not implemented yet and answers UNIMPLEMENTED (the generated base class does that).
/// </summary>
internal sealed partial class CriRuntimeService(CriRuntimeConfig config, CniManager cni, PodCidrConfig podCidr, PodSandboxManager pods,
    ContainerManager containers, PodLifecycle podLifecycle, StatsCollector stats, ContainerEventHub events, IHostApplicationLifetime lifetime,
    RecoveryReport recovery, CriMetrics criMetrics)
    : RuntimeService.RuntimeServiceBase
{
    /// <summary>The statuses of every container of the pod, as PodSandboxStatus and container events carry them.</summary>
    private IEnumerable<ContainerStatus> ContainerStatusesOf(string podSandboxId) =>
        containers.List().Where(c => c.PodSandboxId == podSandboxId).Select(ContainerTranslation.StatusOf);

    private static void RequireId(string id, string field)
    {
        if (string.IsNullOrWhiteSpace(id)) throw new InvalidArgumentException($"{field} is empty: give the id (ListPodSandbox / ListContainers show them)");
    }
}
