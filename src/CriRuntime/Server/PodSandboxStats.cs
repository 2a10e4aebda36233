using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task<PodSandboxStatsResponse> PodSandboxStats(PodSandboxStatsRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        var pod = pods.Get(request.PodSandboxId);
        return Task.FromResult(new PodSandboxStatsResponse { Stats = stats.PodStatsOf(pod) });
    }
}
