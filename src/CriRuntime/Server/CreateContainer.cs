using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override async Task<CreateContainerResponse> CreateContainer(CreateContainerRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        if (request.Config is null) throw new InvalidArgumentException("config is missing: CreateContainer needs a ContainerConfig");
        // The pod's own stored config is used, not request.sandbox_config: they are the same for
        // kubelet, and ours is the one the pod was really made with.
        var container = await containers.CreateAsync(request.PodSandboxId, request.Config, context.CancellationToken).ConfigureAwait(false);
        return new CreateContainerResponse { ContainerId = container.Id };
    }
}
