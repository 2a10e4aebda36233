using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task StreamPodSandboxMetrics(StreamPodSandboxMetricsRequest request, IServerStreamWriter<StreamPodSandboxMetricsResponse> responseStream, ServerCallContext context) =>
        StreamChunks.WriteAsync(criMetrics.List(),
            chunk => new StreamPodSandboxMetricsResponse { PodSandboxMetrics = { chunk } }, responseStream, context.CancellationToken);
}
