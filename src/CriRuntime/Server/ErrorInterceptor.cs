using System.Diagnostics;
using CriRuntime.Images;
using CriRuntime.Images.Distribution;
using CriRuntime.Storage;
using Grpc.Core;
using Grpc.Core.Interceptors;
using CriRuntime.Hosting;

namespace CriRuntime.Server;

/// <summary>
/// Turns what the core throws into gRPC statuses with the right code and a message a person can
/// act on, logs unexpected failures with their stack, and counts every call for /metrics.
/// </summary>
internal sealed class ErrorInterceptor(ILogger<ErrorInterceptor> logger) : Interceptor
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
            var status = ToStatus(e, context);
            code = status.StatusCode;
            throw new RpcException(status);
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
            var status = ToStatus(e, context);
            code = status.StatusCode;
            throw new RpcException(status);
        }
        finally
        {
            DaemonMetrics.ObserveCall(context.Method, code, Stopwatch.GetElapsedTime(started));
            IdleMemoryTrimmer.NoteActivity();
        }
    }

    private Status ToStatus(Exception e, ServerCallContext context)
    {
        var status = e switch
        {
            RpcException rpc => rpc.Status,
            OperationCanceledException when context.CancellationToken.IsCancellationRequested =>
                new Status(StatusCode.Cancelled, "the client cancelled the call"),
            RegistryException r => new Status(r.Kind switch
            {
                RegistryErrorKind.NotFound => StatusCode.NotFound,
                RegistryErrorKind.Unauthorized => StatusCode.Unauthenticated,
                RegistryErrorKind.Denied => StatusCode.PermissionDenied,
                RegistryErrorKind.TooManyRequests => StatusCode.ResourceExhausted,
                RegistryErrorKind.Unavailable => StatusCode.Unavailable,
                RegistryErrorKind.Invalid => StatusCode.FailedPrecondition,
                _ => StatusCode.Unknown,
            }, r.Message),
            NotFoundException => new Status(StatusCode.NotFound, e.Message),
            AlreadyExistsException => new Status(StatusCode.AlreadyExists, e.Message),
            FailedPreconditionException => new Status(StatusCode.FailedPrecondition, e.Message),
            Oci.OciRuntimeException or Network.Cni.CniException => new Status(StatusCode.Unknown, e.Message),
            BlobVerificationException or LayerDigestMismatchException => new Status(StatusCode.DataLoss, e.Message),
            UnsafeLayerException or InvalidLayerException or InvalidImageException or ManifestException => new Status(StatusCode.FailedPrecondition, e.Message),
            FormatException or ArgumentException => new Status(StatusCode.InvalidArgument, e.Message),
            TimeoutException => new Status(StatusCode.DeadlineExceeded, e.Message),
            _ => new Status(StatusCode.Internal, $"{e.GetType().Name}: {e.Message}"),
        };
        if (status.StatusCode is StatusCode.Internal or StatusCode.Unknown)
            logger.LogError(e, "{Method} failed", context.Method);
        else if (status.StatusCode != StatusCode.Cancelled)
            logger.LogWarning("{Method}: {Code}: {Message}", context.Method, status.StatusCode, status.Detail);
        return status;
    }
}
