using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task<ContainerStatusResponse> ContainerStatus(ContainerStatusRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        var container = containers.Get(request.ContainerId);
        var response = new ContainerStatusResponse { Status = ContainerTranslation.StatusOf(container) };
        if (request.Verbose) response.Info["info"] = ContainerTranslation.VerboseInfo(container);
        return Task.FromResult(response);
    }
}
