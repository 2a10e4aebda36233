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
    public async Task Timeouts_beyond_a_timers_range_are_refused_or_cut_never_internal()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("huge-timeouts");
        // Leaves at once on SIGTERM, so a stop with any grace period returns as soon as it has signalled.
        string id = await CreateAndStartAsync(pod, "polite", Sh("trap 'exit 0' TERM; while true; do sleep 0.1; done"));

        // Seed 1: ExecSync timeout 2^31 s threw ArgumentOutOfRangeException ('delay') from CancelAfter: INTERNAL.
        var exec = await ExpectErrorAsync(StatusCode.InvalidArgument, "ExecSync with timeout 2^31 s",
            dl => Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { "true" }, Timeout = 1L << 31 }, deadline: dl));
        Assert.Contains("timeout", exec.Status.Detail);
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
