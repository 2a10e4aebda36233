using Grpc.Core;
using Grpc.Core.Interceptors;

namespace CriRuntime.Server;

/// <summary>
/// Turns what the core throws into gRPC statuses: the core's exceptions say their <see cref="CriErrorKind"/>,
/// which maps to the status code of the same name, with the exception's message as detail. Anything without a
/// kind (a bug, a failed system call) answers INTERNAL and is logged with its stack.
/// </summary>
internal sealed class ErrorInterceptor(ILogger<ErrorInterceptor> logger) : Interceptor
{
    /// <summary>
    /// The longest status message the daemon sends. Messages quote request values through <see cref="Echo"/>; this is
    /// the safety net for any that do not: a default client refuses oversized status metadata and would see
    /// RESOURCE_EXHAUSTED instead of the real code.
    /// </summary>
    internal const int MaxStatusMessageChars = 4096;

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw new RpcException(ToLoggedStatus(e, context));
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw new RpcException(ToLoggedStatus(e, context));
        }
    }

    private Status ToLoggedStatus(Exception e, ServerCallContext context)
    {
        var status = ToStatus(e, context.CancellationToken.IsCancellationRequested);
        if (status.StatusCode is StatusCode.Internal or StatusCode.Unknown)
        {
            // One log line per failure, of bounded size: an oversized message is logged as it was answered.
            if (e.Message.Length <= MaxStatusMessageChars) logger.LogError(e, "{Method} failed", context.Method);
            else logger.LogError("{Method} failed: {Message}\n{Stack}", context.Method, status.Detail, e.StackTrace);
        }
        else if (status.StatusCode != StatusCode.Cancelled)
            logger.LogWarning("{Method}: {Code}: {Message}", context.Method, status.StatusCode, status.Detail);
        return status;
    }

    /// <summary>The status a call that threw <paramref name="e"/> answers, its message cut to <see cref="MaxStatusMessageChars"/>.</summary>
    /// <param name="callCancelled">Whether the client cancelled the call (or its deadline passed).</param>
    internal static Status ToStatus(Exception e, bool callCancelled)
    {
        var status = UncappedStatus(e, callCancelled);
        return status.Detail is { Length: > MaxStatusMessageChars } detail
            ? new Status(status.StatusCode, Echo.Capped(detail, MaxStatusMessageChars))
            : status;
    }

    private static Status UncappedStatus(Exception e, bool callCancelled) => e switch
    {
        RpcException rpc => rpc.Status,
        OperationCanceledException when callCancelled => new Status(StatusCode.Cancelled, "the client cancelled the call"),
        ICriError error => new Status(ToStatusCode(error.ErrorKind), e.Message),
        TimeoutException => new Status(StatusCode.DeadlineExceeded, e.Message),
        // A plain ArgumentException (ArgumentNullException, ...) or anything else without a kind is a programming
        // error or a host failure: the caller cannot fix it, so it is INTERNAL and gets logged with its stack.
        _ => new Status(StatusCode.Internal, $"{e.GetType().Name}: {e.Message}"),
    };

    internal static StatusCode ToStatusCode(CriErrorKind kind) => kind switch
    {
        CriErrorKind.InvalidArgument => StatusCode.InvalidArgument,
        CriErrorKind.NotFound => StatusCode.NotFound,
        CriErrorKind.AlreadyExists => StatusCode.AlreadyExists,
        CriErrorKind.FailedPrecondition => StatusCode.FailedPrecondition,
        CriErrorKind.ResourceExhausted => StatusCode.ResourceExhausted,
        CriErrorKind.Unavailable => StatusCode.Unavailable,
        CriErrorKind.DeadlineExceeded => StatusCode.DeadlineExceeded,
        CriErrorKind.DataLoss => StatusCode.DataLoss,
        CriErrorKind.Unauthenticated => StatusCode.Unauthenticated,
        CriErrorKind.PermissionDenied => StatusCode.PermissionDenied,
        CriErrorKind.Unknown => StatusCode.Unknown,
        _ => StatusCode.Internal,
    };
}
