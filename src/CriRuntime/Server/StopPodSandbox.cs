using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override async Task<StopPodSandboxResponse> StopPodSandbox(StopPodSandboxRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        await podLifecycle.StopPodSandboxAsync(request.PodSandboxId, context.CancellationToken).ConfigureAwait(false);
        return new StopPodSandboxResponse();
    }
}
