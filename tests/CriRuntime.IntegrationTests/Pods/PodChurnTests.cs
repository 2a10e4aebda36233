using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>Many pods made and removed in a row leave nothing behind: mounts, pins, cgroups, IPs, rules, processes.</summary>
[Collection(RegistryCollection.Name)]
public sealed class PodChurnTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private const int Cycles = 50;

    [Fact]
    public async Task FiftyPodCycles_LeaveNothingBehind()
    {
        await StartPodDaemonAsync();
        var pods = new List<TestPod>();
        var containers = new List<string>();
        var ips = new List<string>();

        for (int i = 0; i < Cycles; i++)
        {
            var pod = await RunPodAsync($"churn-{i}");
            pods.Add(pod);
            ips.Add((await PodIpAsync(pod.Id)).ToString());
            string id = await CreateAndStartAsync(pod, "c", ["sleep", "3600"]);
            containers.Add(id);
            // Half the time the kubelet's way (stop and remove the container, then the pod), half the time
            // the pod alone, which must stop and force-remove its container.
            if (i % 2 == 0)
            {
                await StopContainerAsync(id, 0);
                await RemoveContainerAsync(id);
            }
            await StopPodAsync(pod.Id);
            await RemovePodAsync(pod.Id);
        }

        AssertIds([], (await ListPodsAsync()).Select(p => p.Id), $"pods after {Cycles} cycles");
        AssertIds([], (await ListContainersAsync()).Select(c => c.Id), $"containers after {Cycles} cycles");
        await AssertNothingLeftAsync(pods, containers, ips);
    }
}
