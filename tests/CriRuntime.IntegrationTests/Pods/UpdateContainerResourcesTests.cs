using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>UpdateContainerResources through the daemon: the cgroup changes and ContainerStatus reports the new values.</summary>
[Collection(RegistryCollection.Name)]
public sealed class UpdateContainerResourcesTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task LimitsReachTheCgroupAndTheStatus_ExitedIsFailedPrecondition_UnknownIsNotFound()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("update");
        string id = await CreateAndStartAsync(pod, "app", ["sleep", "3600"]);
        Assert.Equal(2, (await ContainerStatusAsync(id)).Status.Resources.Linux.CpuShares);

        await CallAsync("UpdateContainerResources", dl => Runtime.UpdateContainerResourcesAsync(new UpdateContainerResourcesRequest
        {
            ContainerId = id,
            Linux = new LinuxContainerResources { CpuShares = 512, MemoryLimitInBytes = 96L << 20, OomScoreAdj = 1000 },
        }, deadline: dl));

        var resources = (await ContainerStatusAsync(id)).Status.Resources.Linux;
        Assert.Equal(512, resources.CpuShares);
        Assert.Equal(96L << 20, resources.MemoryLimitInBytes);
        string cgroup = $"{pod.CgroupParent}/{id}";
        Assert.Equal((96L << 20).ToString(), ReadCgroupFile(cgroup, "memory", "memory.limit_in_bytes", "memory.max"));
        if (Directory.Exists("/sys/fs/cgroup/cpu" + cgroup))
            Assert.Equal("512", ReadCgroupFile(cgroup, "cpu", "cpu.shares", "cpu.weight"));

        await ExpectErrorAsync(StatusCode.NotFound, "UpdateContainerResources(unknown)",
            dl => Runtime.UpdateContainerResourcesAsync(new UpdateContainerResourcesRequest { ContainerId = "0000nosuchcontainer", Linux = new() }, deadline: dl));

        await StopContainerAsync(id, 0);
        var exited = await ExpectErrorAsync(StatusCode.FailedPrecondition, "UpdateContainerResources(exited)",
            dl => Runtime.UpdateContainerResourcesAsync(new UpdateContainerResourcesRequest
            {
                ContainerId = id,
                Linux = new LinuxContainerResources { MemoryLimitInBytes = 64L << 20 },
            }, deadline: dl));
        Assert.Contains("exited", exited.Status.Detail);

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
    }

    /// <summary>A control file of the container's cgroup: the v1 controller's file, else the unified hierarchy's.</summary>
    private static string ReadCgroupFile(string cgroup, string controller, string v1File, string v2File)
    {
        string v1 = $"/sys/fs/cgroup/{controller}{cgroup}/{v1File}";
        string path = File.Exists(v1) ? v1 : $"/sys/fs/cgroup{cgroup}/{v2File}";
        return File.ReadAllText(path).Trim();
    }
}
