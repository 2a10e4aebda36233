using CriRuntime.Checkpoint;
using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override async Task<CheckpointContainerResponse> CheckpointContainer(CheckpointContainerRequest request, ServerCallContext context)
    {
        var container = await ContainerCheckpoints.CheckAsync(containers, request.ContainerId, request.Location, request.Timeout, context.CancellationToken)
            .ConfigureAwait(false);
        // Reached only on a node where `criu check` passes: the archive writer is the part still to come.
        throw new RpcException(new Status(StatusCode.Unimplemented,
            $"CRIU works on this node, but criruntime does not write checkpoint archives yet; container {container.Id} was not checkpointed"));
    }
}
