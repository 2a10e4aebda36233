using CriRuntime.Containers;
using CriRuntime.Events;
using CriRuntime.Pods;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Events;

/// <summary>Which record changes are which CRI events, and how they reach subscribers.</summary>
public sealed class ContainerEventHubTests
{
    private static ContainerRecord Container(ContainerPhase phase) => new()
    {
        Id = "c1", PodSandboxId = "p1", ConfigBytes = [], ImageId = "sha256:x", ImageRef = "", RuntimeHandler = "runc",
        Phase = phase, CreatedAt = 1, Bundle = "/b", WritableLayerDir = "/d", CgroupsPath = "/p1/c1",
    };

    private static PodSandboxRecord Pod(PodSandboxPhase phase) => new()
    {
        Id = "p1", ConfigBytes = [], RuntimeHandler = "runc", Phase = phase, CreatedAt = 1, PodStateDir = "/d", CgroupParent = "/p1",
    };

    [Fact]
    public void Container_transitions_map_to_created_started_stopped_deleted()
    {
        Assert.Empty(ContainerEvents.Of(null, Container(ContainerPhase.Creating)));
        Assert.Equal([ContainerEventType.ContainerCreatedEvent], ContainerEvents.Of(Container(ContainerPhase.Creating), Container(ContainerPhase.Created)));
        Assert.Equal([ContainerEventType.ContainerStartedEvent], ContainerEvents.Of(Container(ContainerPhase.Created), Container(ContainerPhase.Running)));
        Assert.Equal([ContainerEventType.ContainerStoppedEvent], ContainerEvents.Of(Container(ContainerPhase.Running), Container(ContainerPhase.Exited)));
        Assert.Equal([ContainerEventType.ContainerStoppedEvent], ContainerEvents.Of(Container(ContainerPhase.Created), Container(ContainerPhase.Exited)));
        Assert.Empty(ContainerEvents.Of(Container(ContainerPhase.Exited), Container(ContainerPhase.Exited) with { Reason = "Error" }));
        Assert.Equal([ContainerEventType.ContainerDeletedEvent], ContainerEvents.Of(Container(ContainerPhase.Exited), null));
        // A creation rolled back was never visible, so its removal is no event either.
        Assert.Empty(ContainerEvents.Of(Container(ContainerPhase.Creating), null));
    }

    [Fact]
    public void Pod_transitions_map_to_created_and_started_then_stopped_deleted()
    {
        Assert.Empty(PodEvents.Of(null, Pod(PodSandboxPhase.Creating)));
        Assert.Equal([ContainerEventType.ContainerCreatedEvent, ContainerEventType.ContainerStartedEvent],
            PodEvents.Of(Pod(PodSandboxPhase.Creating), Pod(PodSandboxPhase.Ready)));
        Assert.Empty(PodEvents.Of(Pod(PodSandboxPhase.Ready), Pod(PodSandboxPhase.Ready) with { NetworkAttached = false }));
        Assert.Equal([ContainerEventType.ContainerStoppedEvent], PodEvents.Of(Pod(PodSandboxPhase.Ready), Pod(PodSandboxPhase.NotReady)));
        Assert.Empty(PodEvents.Of(Pod(PodSandboxPhase.NotReady), Pod(PodSandboxPhase.NotReady)));
        Assert.Equal([ContainerEventType.ContainerDeletedEvent], PodEvents.Of(Pod(PodSandboxPhase.NotReady), null));
        Assert.Empty(PodEvents.Of(Pod(PodSandboxPhase.Creating), null));
    }

    [Fact]
    public void Every_subscriber_gets_every_event_in_order_until_it_unsubscribes()
    {
        var hub = new ContainerEventHub(NullLogger<ContainerEventHub>.Instance);
        var a = hub.Subscribe();
        var b = hub.Subscribe();
        Assert.Equal(2, hub.SubscriberCount);

        ContainerEvents.Publish(hub, Container(ContainerPhase.Creating), Container(ContainerPhase.Created));
        ContainerEvents.Publish(hub, Container(ContainerPhase.Created), Container(ContainerPhase.Running));

        foreach (var subscription in new[] { a, b })
        {
            Assert.True(subscription.Reader.TryRead(out var created));
            Assert.Equal(("c1", "p1", ContainerEventType.ContainerCreatedEvent), (created.Id, created.PodSandboxId, created.Type));
            Assert.True(created.CreatedAt > 0);
            Assert.True(subscription.Reader.TryRead(out var started));
            Assert.Equal(ContainerEventType.ContainerStartedEvent, started.Type);
            Assert.False(subscription.Reader.TryRead(out _));
        }

        a.Dispose();
        Assert.Equal(1, hub.SubscriberCount);
        ContainerEvents.Publish(hub, Container(ContainerPhase.Running), Container(ContainerPhase.Exited));
        Assert.False(a.Reader.TryRead(out _));
        Assert.True(b.Reader.TryRead(out var stopped));
        Assert.Equal(ContainerEventType.ContainerStoppedEvent, stopped.Type);
        b.Dispose();
        Assert.Equal(0, hub.SubscriberCount);
    }

    [Fact]
    public void A_subscriber_that_does_not_read_loses_what_overflows_and_holds_nobody_up()
    {
        var hub = new ContainerEventHub(NullLogger<ContainerEventHub>.Instance);
        using var slow = hub.Subscribe();
        using var other = hub.Subscribe();
        // Publish returns at once however far behind a subscriber is; the first SubscriberBuffer events are kept.
        for (int i = 0; i < ContainerEventHub.SubscriberBuffer + 50; i++)
            hub.Publish(new ContainerEvent("c" + i, "p", ContainerEventType.ContainerCreatedEvent, i));
        var ids = new List<string>();
        while (slow.Reader.TryRead(out var e)) ids.Add(e.Id);
        Assert.Equal(Enumerable.Range(0, ContainerEventHub.SubscriberBuffer).Select(i => "c" + i), ids);
        // Once it has caught up it receives again.
        hub.Publish(new ContainerEvent("later", "p", ContainerEventType.ContainerDeletedEvent, 0));
        Assert.True(slow.Reader.TryRead(out var later));
        Assert.Equal("later", later.Id);
    }
}
