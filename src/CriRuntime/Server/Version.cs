using CriRuntime.Hosting;
using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    private static readonly VersionResponse VersionAnswer = new()
    {
        Version = DaemonInfo.KubeletApiVersion,
        RuntimeName = DaemonInfo.Name,
        RuntimeVersion = DaemonInfo.Version,
        RuntimeApiVersion = DaemonInfo.RuntimeApiVersion,
    };

    public override Task<VersionResponse> Version(VersionRequest request, ServerCallContext context) => Task.FromResult(VersionAnswer);
}
