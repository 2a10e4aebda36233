using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task<ListPodSandboxResponse> ListPodSandbox(ListPodSandboxRequest request, ServerCallContext context)
    {
        var response = new ListPodSandboxResponse();
        response.Items.AddRange(PodTranslation.Filter(pods.List(), request.Filter).Select(PodTranslation.ToWire));
        return Task.FromResult(response);
    }
}
