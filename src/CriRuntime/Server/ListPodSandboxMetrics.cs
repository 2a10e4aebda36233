using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task<ListPodSandboxMetricsResponse> ListPodSandboxMetrics(ListPodSandboxMetricsRequest request, ServerCallContext context)
    {
        var response = new ListPodSandboxMetricsResponse();
        response.PodMetrics.AddRange(criMetrics.List());
        return Task.FromResult(response);
    }
}
