using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task StreamContainers(StreamContainersRequest request, IServerStreamWriter<StreamContainersResponse> responseStream, ServerCallContext context) =>
        StreamChunks.WriteAsync(ContainerTranslation.Filter(containers.List(), request.Filter).Select(ContainerTranslation.ToWire),
            chunk => new StreamContainersResponse { Containers = { chunk } }, responseStream, context.CancellationToken);
}
