using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override async Task<UpdatePodSandboxResourcesResponse> UpdatePodSandboxResources(UpdatePodSandboxResourcesRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        await pods.UpdateResourcesAsync(request.PodSandboxId, request.Overhead, request.Resources, context.CancellationToken);
        return new UpdatePodSandboxResourcesResponse();
    }
}
