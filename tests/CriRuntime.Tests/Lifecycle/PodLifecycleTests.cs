using CriRuntime.Containers;
using CriRuntime.Oci;
using CriRuntime.Pods;
using Xunit;

namespace CriRuntime.Tests.Lifecycle;

/// <summary>
/// Pod stop and removal against container create and start, rollback of a failed create, and recovery of a
/// create that could not be undone: the real managers over a fake runtime (needs root: overlay, cgroups).
/// </summary>
public sealed class PodLifecycleTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_pod_removed_while_a_container_is_being_created_in_it_leaves_no_container_behind()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("race");
        var createEntered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var removeCalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        world.Runtime.OnCreate = async _ =>
        {
            createEntered.TrySetResult();
            // Hold the create until the removal has begun and had time to walk the pod's containers.
            await removeCalled.Task.WaitAsync(Wait);
            await Task.Delay(300);
        };

        var create = world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        await createEntered.Task.WaitAsync(Wait);
        var remove = world.Lifecycle.RemovePodSandboxAsync(pod.Id, CancellationToken.None);
        removeCalled.SetResult();
        try
        {
            await create.WaitAsync(Wait);
        }
        catch (Exception e) when (e is NotFoundException or FailedPreconditionException)
        {
            // Refused because the pod went first: fine, as long as nothing is left.
        }
        await remove.WaitAsync(Wait);

        Assert.Null(world.Pods.Find(pod.Id));
        Assert.Empty(world.Containers.List());
        Assert.Empty(world.ContainerRecordFiles());
        Assert.Empty(world.Runtime.Known);
        Assert.Empty(world.Mounts());
    }

    [Fact]
    public async Task A_pod_stopped_while_a_container_is_being_created_in_it_stops_that_container_too()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("stop-race");
        var createEntered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stopCalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        world.Runtime.OnCreate = async _ =>
        {
            createEntered.TrySetResult();
            await stopCalled.Task.WaitAsync(Wait);
            await Task.Delay(300);
        };

        var create = world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        await createEntered.Task.WaitAsync(Wait);
        var stop = world.Lifecycle.StopPodSandboxAsync(pod.Id, CancellationToken.None);
        stopCalled.SetResult();
        var container = await create.WaitAsync(Wait);
        await stop.WaitAsync(Wait);

        Assert.Equal(PodSandboxPhase.NotReady, world.Pods.Get(pod.Id).Phase);
        Assert.Equal(ContainerPhase.Exited, world.Containers.Get(container.Id).Phase);
        Assert.Equal("stopped", (await world.Runtime.StateAsync(container.Id, CancellationToken.None))?.Status);
    }

    [Fact]
    public async Task CreateContainer_in_a_pod_that_is_being_stopped_is_refused_at_once()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("stopping");
        var first = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("first"), CancellationToken.None);
        await world.Containers.StartAsync(first.Id, CancellationToken.None);
        var killEntered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseKill = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        world.Runtime.OnKill = async id =>
        {
            if (id != first.Id) return;
            killEntered.TrySetResult();
            await releaseKill.Task.WaitAsync(Wait);
        };

        var stop = world.Lifecycle.StopPodSandboxAsync(pod.Id, CancellationToken.None);
        await killEntered.Task.WaitAsync(Wait);
        // The stop holds the pod lock while it waits for the kill; the create must not wait for it.
        var e = await Assert.ThrowsAsync<FailedPreconditionException>(
            () => world.Containers.CreateAsync(pod.Id, world.ContainerConfig("second"), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Contains("not ready", e.Message);
        Assert.Contains("being stopped", e.Message);
        releaseKill.SetResult();
        await stop.WaitAsync(Wait);

        e = await Assert.ThrowsAsync<FailedPreconditionException>(
            () => world.Containers.CreateAsync(pod.Id, world.ContainerConfig("third"), CancellationToken.None));
        Assert.Contains("not ready", e.Message);
        Assert.Single(world.Containers.List());
    }

    [Fact]
    public async Task StartContainer_in_a_pod_that_is_not_ready_is_refused()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("not-ready");
        var container = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        // A reboot takes the pod's files under the state dir: after recovery the pod is NotReady, while the
        // runtime (here) still knows the created container.
        File.Delete(Path.Combine(pod.PodStateDir, PodFiles.HostnameFile));
        await world.RestartAsync();
        Assert.Equal(PodSandboxPhase.NotReady, world.Pods.Get(pod.Id).Phase);
        Assert.Equal(ContainerPhase.Created, world.Containers.Get(container.Id).Phase);

        var e = await Assert.ThrowsAsync<FailedPreconditionException>(() => world.Containers.StartAsync(container.Id, CancellationToken.None));

        Assert.Contains($"pod sandbox {pod.Id} is not ready", e.Message);
        Assert.Contains("RunPodSandbox", e.Message);
        Assert.DoesNotContain($"start {container.Id}", world.Runtime.Calls);
        Assert.Equal(ContainerPhase.Created, world.Containers.Get(container.Id).Phase);
    }

    [Fact]
    public async Task A_create_that_fails_in_the_runtime_is_undone_and_its_name_can_be_used_again()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("rollback");
        world.Runtime.OnCreate = _ => throw new OciRuntimeException("fake create failed: no such file");

        var e = await Assert.ThrowsAsync<OciRuntimeException>(() => world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None));

        Assert.Contains("fake create failed", e.Message);
        Assert.Empty(world.Containers.List());
        Assert.Empty(world.ContainerRecordFiles());
        Assert.Empty(world.Mounts());
        Assert.Equal(["records"], Directory.GetDirectories(Path.Combine(world.RootDir, "containers")).Select(Path.GetFileName));
        Assert.False(Directory.Exists(Path.Combine(world.StateDir, "containers")) && Directory.GetDirectories(Path.Combine(world.StateDir, "containers")).Length > 0,
            "the container's bundle is left under the state dir");
        string created = Assert.Single(world.Runtime.Calls, c => c.StartsWith("create ", StringComparison.Ordinal));
        Assert.Contains($"delete {created["create ".Length..]}", world.Runtime.Calls);

        world.Runtime.OnCreate = null;
        var container = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        Assert.Equal(ContainerPhase.Created, container.Phase);
    }

    [Fact]
    public async Task A_create_that_could_not_be_undone_is_kept_hidden_and_undone_at_the_next_start_up()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("recover");
        world.Runtime.OnCreate = _ => throw new OciRuntimeException("fake create failed");
        world.Runtime.DeleteFailure = "fake delete failed: runtime busy";

        await Assert.ThrowsAsync<OciRuntimeException>(() => world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None));

        // Kept in the Creating phase: on disk, but no one is shown it.
        Assert.Empty(world.Containers.List());
        Assert.Single(world.ContainerRecordFiles());

        world.Runtime.OnCreate = null;
        world.Runtime.DeleteFailure = null;
        await world.RestartAsync();

        Assert.Empty(world.ContainerRecordFiles());
        Assert.Empty(world.Runtime.Known);
        Assert.Empty(world.Mounts());
        Assert.Equal(2, world.Runtime.Calls.Count(c => c.StartsWith("delete ", StringComparison.Ordinal)));
        var container = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        Assert.Equal(ContainerPhase.Created, container.Phase);
    }

    [Fact]
    public async Task Removing_a_pod_removes_its_containers_and_then_the_pod()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("remove");
        var running = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("running"), CancellationToken.None);
        await world.Containers.StartAsync(running.Id, CancellationToken.None);
        await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("created"), CancellationToken.None);
        var other = await world.RunPodAsync("other");
        var kept = await world.Containers.CreateAsync(other.Id, world.ContainerConfig("kept"), CancellationToken.None);

        await world.Lifecycle.RemovePodSandboxAsync(pod.Id, CancellationToken.None);
        await world.Lifecycle.RemovePodSandboxAsync(pod.Id, CancellationToken.None);

        Assert.Null(world.Pods.Find(pod.Id));
        Assert.Equal([kept.Id], world.Containers.List().Select(c => c.Id));
        Assert.Equal([kept.Id], world.Runtime.Known);
        Assert.Single(world.Mounts());
    }

    [Fact]
    public async Task Container_calls_racing_a_pod_removal_take_the_locks_in_the_same_order_and_all_finish()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("order");
        var container = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        await world.Containers.StartAsync(container.Id, CancellationToken.None);
        var killEntered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseKill = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        world.Runtime.OnKill = async _ =>
        {
            killEntered.TrySetResult();
            await releaseKill.Task.WaitAsync(Wait);
        };

        // The removal holds the pod lock and the container's lock while the kill hangs.
        var remove = world.Lifecycle.RemovePodSandboxAsync(pod.Id, CancellationToken.None);
        await killEntered.Task.WaitAsync(Wait);
        var racing = new[]
        {
            world.Containers.StopAsync(container.Id, TimeSpan.Zero, CancellationToken.None),
            world.Containers.RemoveAsync(container.Id, CancellationToken.None),
            world.Lifecycle.StopPodSandboxAsync(pod.Id, CancellationToken.None),
            world.Pods.UpdateResourcesAsync(pod.Id, null, null, CancellationToken.None),
        };
        releaseKill.SetResult();

        await remove.WaitAsync(Wait);
        foreach (var call in racing)
        {
            try
            {
                await call.WaitAsync(Wait);
            }
            catch (NotFoundException)
            {
                // Whatever came after the removal found the container or pod gone: a clear answer, not a hang.
            }
        }
        Assert.Null(world.Pods.Find(pod.Id));
        Assert.Empty(world.Containers.List());
        Assert.Empty(world.Runtime.Known);
    }
}
