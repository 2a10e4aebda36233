using System.Diagnostics;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>StopContainer: the stop signal, the grace period, then SIGKILL, and nothing of the container left running.</summary>
[Collection(RegistryCollection.Name)]
public sealed class StopContainerTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task TermHandlerExitsInGrace_IgnoredTermIsKilledAfterTimeout_ZeroTimeoutKillsAtOnce()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("stop");
        // Each script says "ready" once its trap is set, so the stop signal never races the trap.
        string graceful = await CreateAndStartAsync(pod, "graceful", Sh("trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"));
        string stubborn = await CreateAndStartAsync(pod, "stubborn", Sh("trap '' TERM; echo ready; while true; do sleep 0.1; done"));
        string immediate = await CreateAndStartAsync(pod, "immediate", ["sleep", "3600"]);
        await WaitForLogAsync(Path.Combine(pod.LogDirectory, "graceful", "0.log"), "ready");
        await WaitForLogAsync(Path.Combine(pod.LogDirectory, "stubborn", "0.log"), "ready");
        int gracefulPid = await ContainerPidAsync(graceful);
        int stubbornPid = await ContainerPidAsync(stubborn);
        int immediatePid = await ContainerPidAsync(immediate);

        var sw = Stopwatch.StartNew();
        await StopContainerAsync(graceful, 10);
        var gracefulTime = sw.Elapsed;
        var gracefulStatus = (await ContainerStatusAsync(graceful)).Status;
        Assert.True(gracefulStatus.State == ContainerState.ContainerExited, $"after StopContainer: {gracefulStatus}");
        Assert.True(gracefulStatus.ExitCode == 0, $"the TERM handler's exit 0 was not kept: exit code {gracefulStatus.ExitCode} after {gracefulTime}");
        Assert.Equal("Completed", gracefulStatus.Reason);
        Assert.True(gracefulTime < TimeSpan.FromSeconds(8), $"StopContainer took {gracefulTime} for a container that exits on TERM");

        sw.Restart();
        await StopContainerAsync(stubborn, 2);
        var stubbornTime = sw.Elapsed;
        var stubbornStatus = (await ContainerStatusAsync(stubborn)).Status;
        Assert.True(stubbornStatus.State == ContainerState.ContainerExited, $"after StopContainer: {stubbornStatus}");
        Assert.True(stubbornStatus.ExitCode == 137, $"a container ignoring TERM should end by SIGKILL (137), got {stubbornStatus.ExitCode}");
        Assert.Equal("Error", stubbornStatus.Reason);
        Assert.True(stubbornTime >= TimeSpan.FromSeconds(1.9), $"SIGKILL came after {stubbornTime}, before the 2 s grace period ended");
        Assert.True(stubbornTime < TimeSpan.FromSeconds(15), $"StopContainer with timeout 2 took {stubbornTime}");

        sw.Restart();
        await StopContainerAsync(immediate, 0);
        var immediateTime = sw.Elapsed;
        var immediateStatus = (await ContainerStatusAsync(immediate)).Status;
        Assert.True(immediateStatus.ExitCode == 137, $"timeout 0 means SIGKILL at once: exit code {immediateStatus.ExitCode}");
        Assert.True(immediateTime < TimeSpan.FromSeconds(5), $"StopContainer with timeout 0 took {immediateTime}");

        foreach (var (name, id, pid) in new[] { ("graceful", graceful, gracefulPid), ("stubborn", stubborn, stubbornPid), ("immediate", immediate, immediatePid) })
        {
            Assert.True(await EventuallyAsync(() => !HostState.ProcessExists(pid), TimeSpan.FromSeconds(5)),
                $"{name}'s process {pid} is still there after StopContainer: {HostState.TryRead(pid)}");
            var inCgroup = HostState.ProcessesInCgroupsContaining(id);
            Assert.True(inCgroup.Count == 0, $"{name} is stopped but processes remain in its cgroup:\n{string.Join('\n', inCgroup)}");
        }
    }
}
