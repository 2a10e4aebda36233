using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    /// <summary>The kubelet sends the node's pod CIDR once it knows it; see <see cref="CriRuntime.Network.Cni.PodCidrConfig"/>.</summary>
    public override async Task<UpdateRuntimeConfigResponse> UpdateRuntimeConfig(UpdateRuntimeConfigRequest request, ServerCallContext context)
    {
        await podCidr.UpdateAsync(request.RuntimeConfig?.NetworkConfig?.PodCidr ?? "", context.CancellationToken);
        return new UpdateRuntimeConfigResponse();
    }
}
