using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override async Task<UpdateContainerResourcesResponse> UpdateContainerResources(UpdateContainerResourcesRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        if (request.Linux is null) throw new InvalidArgumentException("linux is missing: give the LinuxContainerResources to apply");
        await containers.UpdateResourcesAsync(request.ContainerId, request.Linux, context.CancellationToken).ConfigureAwait(false);
        return new UpdateContainerResourcesResponse();
    }
}
