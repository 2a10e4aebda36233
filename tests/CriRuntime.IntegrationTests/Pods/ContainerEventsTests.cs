using System.Diagnostics;
using System.Threading.Channels;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>GetContainerEvents as the kubelet's evented PLEG reads it: every lifecycle step, with statuses.</summary>
[Collection(RegistryCollection.Name)]
public sealed class ContainerEventsTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task PodAndContainerLifecycle_AreStreamedInOrderToEverySubscriber_WithStatuses()
    {
        await StartPodDaemonAsync();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var first = Subscribe(cancel.Token);
        var second = Subscribe(cancel.Token);
        // A subscription is live once the daemon has answered its headers.
        await first.Ready;
        await second.Ready;

        var pod = await RunPodAsync("events");
        await first.NextAsync(pod.Id, ContainerEventType.ContainerCreatedEvent);
        var podStarted = await first.NextAsync(pod.Id, ContainerEventType.ContainerStartedEvent);
        Assert.Equal(pod.Id, podStarted.PodSandboxStatus.Id);
        Assert.Equal(PodSandboxState.SandboxReady, podStarted.PodSandboxStatus.State);
        AssertDuringTest(podStarted.CreatedAt, "created_at");

        string id = await CreateContainerAsync(pod.Id, pod.Config, "app", BusyboxImage, ["sleep", "3600"]);
        var created = await first.NextAsync(id, ContainerEventType.ContainerCreatedEvent);
        Assert.Equal(pod.Id, created.PodSandboxStatus.Id);
        Assert.Contains(created.ContainersStatuses, s => s.Id == id);

        await StartContainerAsync(id);
        var started = await first.NextAsync(id, ContainerEventType.ContainerStartedEvent);
        Assert.Equal(ContainerState.ContainerRunning, started.ContainersStatuses.Single(s => s.Id == id).State);

        await StopContainerAsync(id, 0);
        var stopped = await first.NextAsync(id, ContainerEventType.ContainerStoppedEvent);
        Assert.Equal(ContainerState.ContainerExited, stopped.ContainersStatuses.Single(s => s.Id == id).State);

        await RemoveContainerAsync(id);
        var deleted = await first.NextAsync(id, ContainerEventType.ContainerDeletedEvent);
        Assert.DoesNotContain(deleted.ContainersStatuses, s => s.Id == id);

        await StopPodAsync(pod.Id);
        var podStopped = await first.NextAsync(pod.Id, ContainerEventType.ContainerStoppedEvent);
        Assert.Equal(PodSandboxState.SandboxNotready, podStopped.PodSandboxStatus.State);
        await RemovePodAsync(pod.Id);
        var podDeleted = await first.NextAsync(pod.Id, ContainerEventType.ContainerDeletedEvent);
        Assert.Null(podDeleted.PodSandboxStatus); // gone: nothing left to describe

        // The second subscriber saw the same events in the same order, and nothing came twice.
        var expected = new (string, ContainerEventType)[]
        {
            (pod.Id, ContainerEventType.ContainerCreatedEvent), (pod.Id, ContainerEventType.ContainerStartedEvent),
            (id, ContainerEventType.ContainerCreatedEvent), (id, ContainerEventType.ContainerStartedEvent),
            (id, ContainerEventType.ContainerStoppedEvent), (id, ContainerEventType.ContainerDeletedEvent),
            (pod.Id, ContainerEventType.ContainerStoppedEvent), (pod.Id, ContainerEventType.ContainerDeletedEvent),
        };
        Assert.Equal(expected, first.Seen.Select(e => (e.ContainerId, e.ContainerEventType)));
        var fromSecond = new List<(string, ContainerEventType)>();
        while (fromSecond.Count < expected.Length)
        {
            var e = await second.Events.Reader.ReadAsync(cancel.Token).AsTask().WaitAsync(StateTimeout);
            fromSecond.Add((e.ContainerId, e.ContainerEventType));
        }
        Assert.Equal(expected, fromSecond);

        // SIGTERM is not held up by open subscriptions, which end cleanly.
        var sw = Stopwatch.StartNew();
        int code = await Daemon.StopAsync(TimeSpan.FromSeconds(10));
        Assert.True(code == 0, $"exit code {code} after SIGTERM with subscribers ({sw.Elapsed})\n{Daemon.LogTail()}");
        await first.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        await second.Completion.WaitAsync(TimeSpan.FromSeconds(10));
    }

    private Subscription Subscribe(CancellationToken cancellationToken)
    {
        var call = Runtime.GetContainerEvents(new GetEventsRequest(), cancellationToken: cancellationToken);
        var events = Channel.CreateUnbounded<ContainerEventResponse>();
        var completion = Task.Run(async () =>
        {
            using (call)
            {
                await foreach (var e in call.ResponseStream.ReadAllAsync(cancellationToken))
                    await events.Writer.WriteAsync(e, cancellationToken);
            }
            events.Writer.Complete();
        }, cancellationToken);
        return new Subscription(call.ResponseHeadersAsync, events, completion, this);
    }

    private sealed class Subscription(Task<Metadata> headers, Channel<ContainerEventResponse> events, Task completion, ContainerEventsTests test)
    {
        public Task Ready => headers;
        public Channel<ContainerEventResponse> Events => events;
        public Task Completion => completion;
        public List<ContainerEventResponse> Seen { get; } = [];

        /// <summary>The next event, which must be <paramref name="type"/> of <paramref name="id"/>.</summary>
        public async Task<ContainerEventResponse> NextAsync(string id, ContainerEventType type)
        {
            ContainerEventResponse e;
            try
            {
                e = await events.Reader.ReadAsync().AsTask().WaitAsync(StateTimeout);
            }
            catch (TimeoutException)
            {
                throw test.Failure($"no event within {StateTimeout.TotalSeconds:0} s; waiting for {type} of {id}");
            }
            Seen.Add(e);
            if (e.ContainerId != id || e.ContainerEventType != type)
                throw test.Failure($"expected {type} of {id}, got {e.ContainerEventType} of {e.ContainerId}");
            return e;
        }
    }
}
