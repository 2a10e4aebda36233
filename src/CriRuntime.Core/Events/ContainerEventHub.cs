using System.Collections.Concurrent;
using System.Threading.Channels;
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
}

/// <summary>One subscriber's events, in order; disposing it unsubscribes.</summary>
public sealed class ContainerEventSubscription(ChannelReader<ContainerEvent> reader, Action unsubscribe) : IDisposable
{
    public ChannelReader<ContainerEvent> Reader { get; } = reader;

    public void Dispose() => unsubscribe();
}
