using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task StreamPodSandboxes(StreamPodSandboxesRequest request, IServerStreamWriter<StreamPodSandboxesResponse> responseStream, ServerCallContext context) =>
        StreamChunks.WriteAsync(PodTranslation.Filter(pods.List(), request.Filter).Select(PodTranslation.ToWire),
            chunk => new StreamPodSandboxesResponse { PodSandboxes = { chunk } }, responseStream, context.CancellationToken);
}
