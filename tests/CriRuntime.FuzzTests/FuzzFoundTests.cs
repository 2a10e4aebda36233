using CriRuntime.IntegrationTests;
using CriRuntime.IntegrationTests.Pods;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.FuzzTests;

/// <summary>Requests the fuzz suite found answered INTERNAL, pinned so they stay fixed whatever the seed.</summary>
[Collection(RegistryCollection.Name)]
public sealed class FuzzFoundTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task ExecSync_and_StopContainer_values_beyond_the_hosts_limits_are_refused_or_cut_never_internal()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("huge-timeouts");
        // Leaves at once on SIGTERM, so a stop with any grace period returns as soon as it has signalled.
        string id = await CreateAndStartAsync(pod, "polite", Sh("trap 'exit 0' TERM; while true; do sleep 0.1; done"));

        // Seed 1: ExecSync timeout 2^31 s threw ArgumentOutOfRangeException ('delay') from CancelAfter: INTERNAL.
        var exec = await ExpectErrorAsync(StatusCode.InvalidArgument, "ExecSync with timeout 2^31 s",
            dl => Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { "true" }, Timeout = 1L << 31 }, deadline: dl));
        Assert.Contains("timeout", exec.Status.Detail);
        // Seed 725175266: a 1 MiB argument reached runc's execve (E2BIG) and answered UNKNOWN.
        var argv = await ExpectErrorAsync(StatusCode.InvalidArgument, "ExecSync with a 1 MiB argument",
            dl => Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { "echo", new string('p', 1024 * 1024) }, Timeout = 10 }, deadline: dl));
        Assert.Contains("cmd[1]", argv.Status.Detail);
        var ok = await ExecSyncAsync(id, ["true"], timeoutSeconds: int.MaxValue / 1000);
        Assert.Equal(0, ok.ExitCode);

        // Seed 3: StopContainer timeout long.MaxValue threw "TimeSpan overflowed": INTERNAL. Kubernetes bounds no
        // grace period, so it is a valid (if long) wait, and this container stops at the first signal.
        await StopContainerAsync(id, long.MaxValue);
        await WaitForExitAsync(id);

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [id], []);
    }
}
