using CriRuntime.Pods;
using CriRuntime.Streaming;
using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    private const int MaxPortForwardPorts = 1024;

    /// <summary>
    /// Checks the request as containerd does (the pod exists and is ready; ports are 1..65535) and returns a
    /// single-use URL on the streaming server, where the client's port-forward streams are served.
    /// </summary>
    public override Task<PortForwardResponse> PortForward(PortForwardRequest request, ServerCallContext context)
    {
        RequireId(request.PodSandboxId, "pod_sandbox_id");
        // The request waits in the token cache until its client connects: keep what it may hold small.
        if (request.Port.Count > MaxPortForwardPorts)
            throw new InvalidArgumentException($"{request.Port.Count} ports given; at most {MaxPortForwardPorts} can be forwarded by one request", "port");
        foreach (var port in request.Port)
            if (port is < 1 or > 65535)
                throw new InvalidArgumentException($"port {port} is outside 1..65535: give the pod's ports to forward to", "port");
        var pod = pods.Get(request.PodSandboxId);
        if (pod.Phase != PodSandboxPhase.Ready)
            throw new FailedPreconditionException($"pod sandbox {pod.Id} is not ready: only a running pod's ports can be forwarded");
        // The full id, so a prefix the request used cannot come to name another pod by the time the client connects.
        var forward = new PortForwardRequest { PodSandboxId = pod.Id, Port = { request.Port } };
        var endpoint = context.GetHttpContext().RequestServices.GetRequiredService<StreamingEndpoint>();
        return Task.FromResult(new PortForwardResponse { Url = endpoint.UrlFor(new StreamingRequest(StreamingKind.PortForward, forward)) });
    }
}
