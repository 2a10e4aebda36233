using CriRuntime.State;
using System.Collections.Concurrent;
using System.Threading.Channels;
using CriRuntime.Containers;
using CriRuntime.Pods;
using Microsoft.Extensions.Logging;
using Runtime.V1;

namespace CriRuntime.Events;

/// <summary>One lifecycle change of a container or a pod sandbox (a sandbox's events carry its own id, as under containerd).</summary>
public sealed record ContainerEvent(string Id, string PodSandboxId, ContainerEventType Type, long CreatedAt);

/// <summary>
/// Fans lifecycle changes out to GetContainerEvents subscribers (the kubelet's evented PLEG). Publishing never
/// blocks the change that caused it: a subscriber too slow to keep up loses events rather than holding up the
/// node, and is told so in the log (the kubelet then falls back on its periodic relist).
/// </summary>
public sealed class ContainerEventHub(ILogger<ContainerEventHub> logger)
{
    // As containerd: a thousand events of slack per subscriber.
    public const int SubscriberBuffer = 1000;

    private readonly ConcurrentDictionary<Channel<ContainerEvent>, byte> subscribers = new();

    public int SubscriberCount => subscribers.Count;

    public void Publish(ContainerEvent e)
    {
        foreach (var channel in subscribers.Keys)
            if (!channel.Writer.TryWrite(e))
                logger.LogWarning("A GetContainerEvents subscriber is {Buffer} events behind; dropped {Type} of {Id}", SubscriberBuffer, e.Type, e.Id);
    }

    /// <summary>Every event from now on, until the subscription is disposed.</summary>
    public ContainerEventSubscription Subscribe()
    {
        var channel = Channel.CreateBounded<ContainerEvent>(new BoundedChannelOptions(SubscriberBuffer)
        {
            FullMode = BoundedChannelFullMode.DropWrite,
            SingleReader = true,
        });
        subscribers.TryAdd(channel, 0);
        return new ContainerEventSubscription(channel.Reader, () => subscribers.TryRemove(channel, out _));
    }

    /// <summary>The events a container record change stands for: none for records still being created.</summary>
    public static IEnumerable<ContainerEventType> EventsOf(ContainerRecord? before, ContainerRecord? after)
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

    /// <summary>The events a pod record change stands for: a pod that becomes ready was created and started.</summary>
    public static IEnumerable<ContainerEventType> EventsOf(PodSandboxRecord? before, PodSandboxRecord? after)
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

    public void OnChanged(ContainerRecord? before, ContainerRecord? after)
    {
        var record = after ?? before!;
        foreach (var type in EventsOf(before, after))
            Publish(new ContainerEvent(record.Id, record.PodSandboxId, type, CriClock.NowNanos()));
    }

    public void OnChanged(PodSandboxRecord? before, PodSandboxRecord? after)
    {
        var record = after ?? before!;
        foreach (var type in EventsOf(before, after))
            Publish(new ContainerEvent(record.Id, record.Id, type, CriClock.NowNanos()));
    }
}

/// <summary>One subscriber's events, in order; disposing it unsubscribes.</summary>
public sealed class ContainerEventSubscription(ChannelReader<ContainerEvent> reader, Action unsubscribe) : IDisposable
{
    public ChannelReader<ContainerEvent> Reader { get; } = reader;

    public void Dispose() => unsubscribe();
}
