using Google.Protobuf;
using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    private const long MaxExecSyncTimeoutSeconds = int.MaxValue / 1000;

    public override async Task<ExecSyncResponse> ExecSync(ExecSyncRequest request, ServerCallContext context)
    {
        RequireId(request.ContainerId, "container_id");
        if (request.Timeout < 0) throw new InvalidArgumentException($"timeout {request.Timeout} is negative: give seconds, or 0 for none");
        // A .NET timer holds at most int.MaxValue ms (24.8 days); a longer timeout would throw deep in the runtime as INTERNAL.
        if (request.Timeout > MaxExecSyncTimeoutSeconds)
            throw new InvalidArgumentException($"timeout {request.Timeout} s is longer than the {MaxExecSyncTimeoutSeconds} s the daemon can wait: give a shorter one, or 0 for none");
        CriRuntime.Containers.ExecCommandLimits.Validate(request.Cmd);
        var result = await containers.ExecSyncAsync(request.ContainerId, request.Cmd, TimeSpan.FromSeconds(request.Timeout), context.CancellationToken)
            .ConfigureAwait(false);
        return new ExecSyncResponse
        {
            Stdout = ByteString.CopyFrom(result.Stdout),
            Stderr = ByteString.CopyFrom(result.Stderr),
            ExitCode = result.ExitCode,
        };
    }
}
