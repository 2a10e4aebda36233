using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    /// <summary>
    /// Streams lifecycle events until the client goes away, each with the pod's status and its containers'
    /// statuses as they are when the event is sent (the kubelet's evented PLEG updates its cache from them).
    /// </summary>
    public override async Task GetContainerEvents(GetEventsRequest request, IServerStreamWriter<ContainerEventResponse> responseStream, ServerCallContext context)
    {
        using var subscription = events.Subscribe();
        // Headers go out once the subscription exists: a client that has them misses no later event.
        await context.WriteResponseHeadersAsync([]);
        // The stream ends cleanly when the daemon stops, so a SIGTERM is not held up by a subscriber and the
        // kubelet simply subscribes again to the next daemon.
        using var untilStopped = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        try
        {
            await foreach (var e in subscription.Reader.ReadAllAsync(untilStopped.Token))
            {
                var response = new ContainerEventResponse { ContainerId = e.Id, ContainerEventType = e.Type, CreatedAt = e.CreatedAt };
                if (pods.Find(e.PodSandboxId) is { } pod && pod.Id == e.PodSandboxId)
                {
                    response.PodSandboxStatus = PodTranslation.StatusOf(pod);
                    response.ContainersStatuses.AddRange(ContainerStatusesOf(pod.Id));
                }
                await responseStream.WriteAsync(response, untilStopped.Token);
            }
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
        }
    }
}
