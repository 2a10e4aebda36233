using CriRuntime.Events;
using CriRuntime.State;
using Runtime.V1;

namespace CriRuntime.Pods;

/// <summary>What a pod record change means to GetContainerEvents subscribers (a sandbox's events carry its own id).</summary>
public static class PodEvents
{
    /// <summary>The events a pod record change stands for: a pod that becomes ready was created and started.</summary>
    public static IEnumerable<ContainerEventType> Of(PodSandboxRecord? before, PodSandboxRecord? after)
    {
        var was = before is null || before.Phase == PodSandboxPhase.Creating ? (PodSandboxPhase?)null : before.Phase;
        if (after is null)
        {
            if (was is not null) yield return ContainerEventType.ContainerDeletedEvent;
            yield break;
        }
        if (after.Phase == PodSandboxPhase.Creating) yield break;
        if (was is null)
        {
            yield return ContainerEventType.ContainerCreatedEvent;
            if (after.Phase == PodSandboxPhase.Ready) yield return ContainerEventType.ContainerStartedEvent;
        }
        if (after.Phase == PodSandboxPhase.NotReady && was != PodSandboxPhase.NotReady) yield return ContainerEventType.ContainerStoppedEvent;
    }

    /// <summary>Publishes the events of one record change (the record store's Changed hook).</summary>
    public static void Publish(ContainerEventHub hub, PodSandboxRecord? before, PodSandboxRecord? after)
    {
        var record = after ?? before!;
        foreach (var type in Of(before, after))
            hub.Publish(new ContainerEvent(record.Id, record.Id, type, CriClock.NowNanos()));
    }
}
