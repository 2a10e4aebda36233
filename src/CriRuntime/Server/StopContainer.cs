using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override async Task<StopContainerResponse> StopContainer(StopContainerRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        if (request.Timeout < 0) throw new InvalidArgumentException($"timeout {request.Timeout} is negative: give the grace period in seconds (0 kills at once)");
        // Kubernetes puts no upper bound on a grace period and the kubelet passes it on; one longer than a .NET timer
        // holds (int.MaxValue ms, 24.8 days) is cut to that, where TimeSpan.FromSeconds would throw (INTERNAL).
        var grace = request.Timeout > int.MaxValue / 1000 ? TimeSpan.FromMilliseconds(int.MaxValue) : TimeSpan.FromSeconds(request.Timeout);
        await containers.StopAsync(request.ContainerId, grace, context.CancellationToken).ConfigureAwait(false);
        return new StopContainerResponse();
    }
}
