using System.Text.Json.Nodes;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>UpdatePodSandboxResources, which the kubelet calls after an in-place pod resize.</summary>
[Collection(RegistryCollection.Name)]
public sealed class UpdatePodSandboxResourcesTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task NewResourcesAreRecordedInThePodConfig_UnknownIsNotFound_StoppedIsFailedPrecondition()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("resize");

        await CallAsync("UpdatePodSandboxResources", dl => Runtime.UpdatePodSandboxResourcesAsync(new UpdatePodSandboxResourcesRequest
        {
            PodSandboxId = pod.Id,
            Overhead = new LinuxContainerResources { MemoryLimitInBytes = 32L << 20 },
            Resources = new LinuxContainerResources { MemoryLimitInBytes = 256L << 20, CpuQuota = 50_000, CpuPeriod = 100_000, CpuShares = 512 },
        }, deadline: dl));
        var linux = await VerboseLinuxConfigAsync(pod.Id);
        Assert.Equal((256L << 20).ToString(), (string?)linux["resources"]!["memoryLimitInBytes"]);
        Assert.Equal((32L << 20).ToString(), (string?)linux["overhead"]!["memoryLimitInBytes"]);
        Assert.Equal("512", (string?)linux["resources"]!["cpuShares"]); // int64 fields are JSON strings
        Assert.Equal(pod.CgroupParent, (string?)linux["cgroupParent"]); // the rest of the config is unchanged

        // Only what is given changes.
        await CallAsync("UpdatePodSandboxResources(resources only)", dl => Runtime.UpdatePodSandboxResourcesAsync(new UpdatePodSandboxResourcesRequest
        {
            PodSandboxId = pod.Id,
            Resources = new LinuxContainerResources { MemoryLimitInBytes = 128L << 20 },
        }, deadline: dl));
        linux = await VerboseLinuxConfigAsync(pod.Id);
        Assert.Equal((128L << 20).ToString(), (string?)linux["resources"]!["memoryLimitInBytes"]);
        Assert.Equal((32L << 20).ToString(), (string?)linux["overhead"]!["memoryLimitInBytes"]);

        await ExpectErrorAsync(StatusCode.NotFound, "UpdatePodSandboxResources(unknown)",
            dl => Runtime.UpdatePodSandboxResourcesAsync(new UpdatePodSandboxResourcesRequest { PodSandboxId = "0000nosuchpod" }, deadline: dl));
        await ExpectErrorAsync(StatusCode.InvalidArgument, "UpdatePodSandboxResources(\"\")",
            dl => Runtime.UpdatePodSandboxResourcesAsync(new UpdatePodSandboxResourcesRequest(), deadline: dl));

        await StopPodAsync(pod.Id);
        var stopped = await ExpectErrorAsync(StatusCode.FailedPrecondition, "UpdatePodSandboxResources(stopped)",
            dl => Runtime.UpdatePodSandboxResourcesAsync(new UpdatePodSandboxResourcesRequest
            {
                PodSandboxId = pod.Id,
                Resources = new LinuxContainerResources { MemoryLimitInBytes = 64L << 20 },
            }, deadline: dl));
        Assert.Contains("not ready", stopped.Status.Detail);
        await RemovePodAsync(pod.Id);
    }

    private async Task<JsonNode> VerboseLinuxConfigAsync(string podId)
    {
        var status = await PodStatusAsync(podId, verbose: true);
        return JsonNode.Parse(status.Info["info"])!["config"]!["linux"]!;
    }
}
