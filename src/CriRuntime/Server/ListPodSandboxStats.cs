using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task<ListPodSandboxStatsResponse> ListPodSandboxStats(ListPodSandboxStatsRequest request, ServerCallContext context)
    {
        var response = new ListPodSandboxStatsResponse();
        response.Stats.AddRange(PodStatsMatching(request.Filter));
        return Task.FromResult(response);
    }

    /// <summary>Stats of every ready pod the filter selects (id by prefix, labels exactly); stopped pods use nothing and are left out.</summary>
    private IEnumerable<PodSandboxStats> PodStatsMatching(PodSandboxStatsFilter? filter)
    {
        stats.ForgetGone();
        var selection = new PodSandboxFilter { Id = filter?.Id ?? "", State = new PodSandboxStateValue { State = PodSandboxState.SandboxReady } };
        if (filter is not null) selection.LabelSelector.Add(filter.LabelSelector);
        // Records are immutable: a pod this filter saw as ready is ready in the record PodStatsOf reads.
        return PodTranslation.Filter(pods.List(), selection).Select(stats.PodStatsOf);
    }
}
