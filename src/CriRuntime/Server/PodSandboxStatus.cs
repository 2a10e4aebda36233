using CriRuntime.State;
using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task<PodSandboxStatusResponse> PodSandboxStatus(PodSandboxStatusRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        var pod = pods.Get(request.PodSandboxId);
        var response = new PodSandboxStatusResponse
        {
            Status = PodTranslation.StatusOf(pod),
            // The kubelet's evented PLEG takes a set timestamp to mean the container statuses come with it.
            Timestamp = CriClock.NowNanos(),
            ContainersStatuses = { ContainerStatusesOf(pod.Id) },
        };
        if (request.Verbose) response.Info["info"] = PodTranslation.VerboseInfo(pod);
        return Task.FromResult(response);
    }
}
