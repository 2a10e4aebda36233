using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task<ListContainerStatsResponse> ListContainerStats(ListContainerStatsRequest request, ServerCallContext context)
    {
        var response = new ListContainerStatsResponse();
        response.Stats.AddRange(ContainerStatsMatching(request.Filter));
        return Task.FromResult(response);
    }

    /// <summary>Stats of every container the filter selects (ids and pod ids by prefix, labels exactly), exited ones too.</summary>
    private IEnumerable<ContainerStats> ContainerStatsMatching(ContainerStatsFilter? filter)
    {
        // The kubelet lists everything every few seconds: a good moment to drop samples of removed objects.
        stats.ForgetGone();
        var selection = filter is null ? null : new ContainerFilter { Id = filter.Id, PodSandboxId = filter.PodSandboxId, LabelSelector = { filter.LabelSelector } };
        return ContainerTranslation.Filter(containers.List(), selection).Select(stats.ContainerStatsOf);
    }
}
