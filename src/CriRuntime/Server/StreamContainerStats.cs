using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task StreamContainerStats(StreamContainerStatsRequest request, IServerStreamWriter<StreamContainerStatsResponse> responseStream, ServerCallContext context) =>
        StreamChunks.WriteAsync(ContainerStatsMatching(request.Filter),
            chunk => new StreamContainerStatsResponse { ContainerStats = { chunk } }, responseStream, context.CancellationToken);
}
