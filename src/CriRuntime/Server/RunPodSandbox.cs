using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override async Task<RunPodSandboxResponse> RunPodSandbox(RunPodSandboxRequest request, ServerCallContext context)
    {
        if (request.Config is null) throw new InvalidArgumentException("config is missing: RunPodSandbox needs a PodSandboxConfig");
        var pod = await pods.RunAsync(request.Config, request.RuntimeHandler, context.CancellationToken).ConfigureAwait(false);
        return new RunPodSandboxResponse { PodSandboxId = pod.Id };
    }
}
