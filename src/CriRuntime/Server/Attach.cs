using CriRuntime.Streaming;
using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    /// <summary>Checks the request and the container and returns a single-use URL on the streaming server, where the attach starts once its client connects.</summary>
    public override Task<AttachResponse> Attach(AttachRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        if (!request.Stdin && !request.Stdout && !request.Stderr)
            throw new InvalidArgumentException("one of stdin, stdout or stderr must be true: an attach with no stdio could not be observed");
        if (request.Tty && request.Stderr)
            throw new InvalidArgumentException("tty and stderr cannot both be true: a terminal has one output stream; set stderr false");
        containers.RequireAttachable(request.ContainerId);
        var endpoint = context.GetHttpContext().RequestServices.GetRequiredService<StreamingEndpoint>();
        return Task.FromResult(new AttachResponse { Url = endpoint.UrlFor(new StreamingRequest(StreamingKind.Attach, request.Clone())) });
    }
}
