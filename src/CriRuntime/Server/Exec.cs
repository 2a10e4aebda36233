using CriRuntime.Streaming;
using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    /// <summary>Checks the request and returns a single-use URL on the streaming server, where the command runs once its client connects.</summary>
    public override Task<ExecResponse> Exec(ExecRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        if (request.Cmd.Count == 0 || string.IsNullOrEmpty(request.Cmd[0]))
            throw new InvalidArgumentException("cmd is empty: give the command to run in the container");
        if (!request.Stdin && !request.Stdout && !request.Stderr)
            throw new InvalidArgumentException("one of stdin, stdout or stderr must be true: an exec with no stdio could not be observed");
        if (request.Tty && request.Stderr)
            throw new InvalidArgumentException("tty and stderr cannot both be true: a terminal has one output stream; set stderr false");
        containers.RequireRunningForExec(request.ContainerId);
        var endpoint = context.GetHttpContext().RequestServices.GetRequiredService<StreamingEndpoint>();
        return Task.FromResult(new ExecResponse { Url = endpoint.UrlFor(new StreamingRequest(StreamingKind.Exec, request.Clone())) });
    }
}
