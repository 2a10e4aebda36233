using CriRuntime.Containers;
using CriRuntime.Pods;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Lifecycle;

/// <summary>
/// Stops and removes a pod together with its containers, as containerd's and CRI-O's sandbox stop and remove do.
/// It sits above both managers, so neither knows the other's caller: the container manager reads pods, the pod
/// manager knows no containers.
/// <para>
/// Lock order, everywhere: a pod's lock, then a container's lock; never the other way round. CreateContainer and
/// this class hold the pod lock for their whole length, so a pod's containers are walked only while none can be
/// added; StartContainer, StopContainer and RemoveContainer take only the container's lock.
/// </para>
/// </summary>
public sealed class PodLifecycle(PodSandboxManager pods, ContainerManager containers, ILogger<PodLifecycle> logger)
{
    /// <summary>
    /// Stops every container of the pod, then its infra process and network. Idempotent: as the CRI comments
    /// require, a pod whose resources are all gone (removed, or never known) is not an error.
    /// </summary>
    public async Task StopPodSandboxAsync(string podId, CancellationToken cancellationToken)
    {
        var pod = pods.Find(podId);
        if (pod is null)
        {
            logger.LogDebug("StopPodSandbox {Id}: no such pod; nothing to stop", Echo.Of(podId));
            return;
        }
        using var podLock = await pods.LockAsync(pod.Id, cancellationToken).ConfigureAwait(false);
        if (pods.Find(pod.Id) is null) return;
        pods.MarkStopping(pod.Id);
        await containers.StopAllInPodAsync(pod.Id, cancellationToken).ConfigureAwait(false);
        await pods.StopLockedAsync(pod.Id, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Removes every container of the pod, then the pod and all it holds. An unknown id is not an error (CRI: idempotent).</summary>
    public async Task RemovePodSandboxAsync(string podId, CancellationToken cancellationToken)
    {
        var pod = pods.Find(podId);
        if (pod is null) return;
        using var podLock = await pods.LockAsync(pod.Id, cancellationToken).ConfigureAwait(false);
        if (pods.Find(pod.Id) is null) return;
        pods.MarkStopping(pod.Id);
        await containers.RemoveAllInPodAsync(pod.Id, cancellationToken).ConfigureAwait(false);
        await pods.RemoveLockedAsync(pod.Id, cancellationToken).ConfigureAwait(false);
    }
}
