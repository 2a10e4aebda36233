using CriRuntime.Events;
using CriRuntime.State;
using Runtime.V1;

namespace CriRuntime.Containers;

/// <summary>What a container record change means to GetContainerEvents subscribers; the hub itself knows no records.</summary>
public static class ContainerEvents
{
    /// <summary>The events a container record change stands for: none for records still being created.</summary>
    public static IEnumerable<ContainerEventType> Of(ContainerRecord? before, ContainerRecord? after)
    {
        var was = before is null || before.Phase == ContainerPhase.Creating ? (ContainerPhase?)null : before.Phase;
        if (after is null)
        {
            if (was is not null) yield return ContainerEventType.ContainerDeletedEvent;
            yield break;
        }
        if (after.Phase == ContainerPhase.Creating) yield break;
        if (was is null) yield return ContainerEventType.ContainerCreatedEvent;
        if (after.Phase == ContainerPhase.Running && was != ContainerPhase.Running) yield return ContainerEventType.ContainerStartedEvent;
        if (after.Phase == ContainerPhase.Exited && was != ContainerPhase.Exited) yield return ContainerEventType.ContainerStoppedEvent;
    }

    /// <summary>Publishes the events of one record change (the record store's Changed hook).</summary>
    public static void Publish(ContainerEventHub hub, ContainerRecord? before, ContainerRecord? after)
    {
        var record = after ?? before!;
        foreach (var type in Of(before, after))
            hub.Publish(new ContainerEvent(record.Id, record.PodSandboxId, type, CriClock.NowNanos()));
    }
}
