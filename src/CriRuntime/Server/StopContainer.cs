using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override async Task<StopContainerResponse> StopContainer(StopContainerRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        if (request.Timeout < 0) throw new InvalidArgumentException($"timeout {request.Timeout} is negative: give the grace period in seconds (0 kills at once)");
        await containers.StopAsync(request.ContainerId, TimeSpan.FromSeconds(request.Timeout), context.CancellationToken).ConfigureAwait(false);
        return new StopContainerResponse();
    }
}
