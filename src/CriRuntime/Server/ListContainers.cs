using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task<ListContainersResponse> ListContainers(ListContainersRequest request, ServerCallContext context)
    {
        var response = new ListContainersResponse();
        response.Containers.AddRange(ContainerTranslation.Filter(containers.List(), request.Filter).Select(ContainerTranslation.ToWire));
        return Task.FromResult(response);
    }
}
