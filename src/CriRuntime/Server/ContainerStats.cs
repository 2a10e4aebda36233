using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task<ContainerStatsResponse> ContainerStats(ContainerStatsRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        var container = containers.Get(request.ContainerId);
        return Task.FromResult(new ContainerStatsResponse { Stats = stats.ContainerStatsOf(container) });
    }
}
