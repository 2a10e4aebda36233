using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    /// <summary>
    /// The kubelet asks which cgroup driver to use instead of relying on its own flag. criruntime manages
    /// cgroups with the cgroupfs driver (it writes cgroupfs directly, never through systemd).
    /// </summary>
    public override Task<RuntimeConfigResponse> RuntimeConfig(RuntimeConfigRequest request, ServerCallContext context) =>
        Task.FromResult(new RuntimeConfigResponse { Linux = new LinuxRuntimeConfiguration { CgroupDriver = CgroupDriver.Cgroupfs } });
}
