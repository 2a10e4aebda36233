using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task StreamPodSandboxStats(StreamPodSandboxStatsRequest request, IServerStreamWriter<StreamPodSandboxStatsResponse> responseStream, ServerCallContext context) =>
        StreamChunks.WriteAsync(PodStatsMatching(request.Filter),
            chunk => new StreamPodSandboxStatsResponse { PodSandboxStats = { chunk } }, responseStream, context.CancellationToken);
}
