using System.Diagnostics;
using CriRuntime.Hosting;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace CriRuntime.Server;

/// <summary>
/// Counts and times every call for /metrics (criruntime_grpc_requests_total, criruntime_grpc_request_duration)
/// and tells the idle memory trimmer the daemon is busy. Registered before (outside) <see cref="ErrorInterceptor"/>,
/// so what it sees failing is already the RpcException carrying the status code the client gets.
/// </summary>
internal sealed class MetricsInterceptor : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        long started = Stopwatch.GetTimestamp();
        StatusCode code = StatusCode.OK;
        IdleMemoryTrimmer.NoteActivity();
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            code = CodeOf(e);
            throw;
        }
        finally
        {
            DaemonMetrics.ObserveCall(context.Method, code, Stopwatch.GetElapsedTime(started));
            IdleMemoryTrimmer.NoteActivity();
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        long started = Stopwatch.GetTimestamp();
        StatusCode code = StatusCode.OK;
        IdleMemoryTrimmer.NoteActivity();
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            code = CodeOf(e);
            throw;
        }
        finally
        {
            DaemonMetrics.ObserveCall(context.Method, code, Stopwatch.GetElapsedTime(started));
            IdleMemoryTrimmer.NoteActivity();
        }
    }

    // ErrorInterceptor turns every failure into an RpcException; anything else would reach grpc-dotnet, which answers UNKNOWN.
    private static StatusCode CodeOf(Exception e) => e is RpcException rpc ? rpc.StatusCode : StatusCode.Unknown;
}
