using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// ContainerStats, PodSandboxStats and their List/Stream forms, read from real cgroups, overlay upper dirs and the
/// pod's network namespace, as the kubelet's CRI stats provider reads them.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class StatsTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private const long MemoryLimit = 128L * 1024 * 1024;
    private const int BlobBytes = 8 * 1024 * 1024;

    [Fact]
    public async Task ContainerStats_CpuMemoryAndWritableLayer_ListFiltersAndStream()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("stats");
        // Writes 8 MiB into its writable layer and burns some CPU, then waits.
        string worker = await CreateAndStartAsync(pod, "worker",
            Sh($"head -c {BlobBytes} /dev/urandom > /blob; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo done; exec sleep 3600"),
            c => c.Linux.Resources.MemoryLimitInBytes = MemoryLimit);
        string idle = await CreateAndStartAsync(pod, "idle", ["sleep", "3600"]);
        string exited = await CreateAndStartAsync(pod, "exited", Sh("exit 3"));
        await WaitForLogAsync(Path.Combine(pod.LogDirectory, "worker", "0.log"), "done");
        await WaitForExitAsync(exited);

        var first = await ContainerStatsAsync(worker);
        Assert.Equal(worker, first.Attributes.Id);
        Assert.Equal("worker", first.Attributes.Metadata.Name);
        Assert.Equal("worker", first.Attributes.Labels["io.kubernetes.container.name"]);
        AssertDuringTest(first.Cpu.Timestamp, "cpu.timestamp");
        Assert.True(first.Cpu.UsageCoreNanoSeconds?.Value > 0, $"cpu usage {first.Cpu.UsageCoreNanoSeconds}: the loop used CPU");
        Assert.True(first.Memory.WorkingSetBytes?.Value > 0, $"working set {first.Memory.WorkingSetBytes}");
        Assert.True(first.Memory.UsageBytes.Value >= first.Memory.WorkingSetBytes.Value, "usage >= working set");
        Assert.Equal((ulong)MemoryLimit - first.Memory.WorkingSetBytes.Value, first.Memory.AvailableBytes?.Value);
        Assert.True(first.WritableLayer.UsedBytes.Value >= BlobBytes, $"writable layer {first.WritableLayer.UsedBytes.Value} bytes holds the 8 MiB blob");
        Assert.True(first.WritableLayer.InodesUsed.Value >= 2, $"writable layer inodes {first.WritableLayer.InodesUsed.Value}");
        Assert.True(Directory.Exists(first.WritableLayer.FsId.Mountpoint), $"writable layer fs_id {first.WritableLayer.FsId.Mountpoint} is not a directory");

        // The second reading has a rate: CPU used since the first, per second of wall time.
        await Task.Delay(200);
        var second = await ContainerStatsAsync(worker);
        Assert.True(second.Cpu.Timestamp > first.Cpu.Timestamp, "the second sample is later");
        Assert.True(second.Cpu.UsageCoreNanoSeconds.Value >= first.Cpu.UsageCoreNanoSeconds.Value, "cumulative CPU never goes down");
        Assert.NotNull(second.Cpu.UsageNanoCores);
        Assert.True(second.Cpu.UsageNanoCores.Value <= (ulong)Environment.ProcessorCount * 1_000_000_000, $"nano cores {second.Cpu.UsageNanoCores.Value}");

        var idleStats = await ContainerStatsAsync(idle);
        Assert.True(idleStats.WritableLayer.UsedBytes.Value < 1024 * 1024, $"idle writable layer {idleStats.WritableLayer.UsedBytes.Value} bytes");
        Assert.Null(idleStats.Memory.AvailableBytes); // no memory limit, nothing to be available against

        // A container that is not running reports its writable layer only.
        var exitedStats = await ContainerStatsAsync(exited);
        Assert.Null(exitedStats.Cpu);
        Assert.Null(exitedStats.Memory);
        Assert.NotNull(exitedStats.WritableLayer);

        var all = await ListContainerStatsAsync(null);
        AssertIds([worker, idle, exited], all.Select(s => s.Attributes.Id), "ListContainerStats()");
        AssertIds([worker], (await ListContainerStatsAsync(new ContainerStatsFilter { Id = worker[..12] })).Select(s => s.Attributes.Id), "filter by id prefix");
        AssertIds([worker, idle, exited], (await ListContainerStatsAsync(new ContainerStatsFilter { PodSandboxId = pod.Id })).Select(s => s.Attributes.Id), "filter by pod");
        AssertIds([idle], (await ListContainerStatsAsync(new ContainerStatsFilter { LabelSelector = { ["io.kubernetes.container.name"] = "idle" } }))
            .Select(s => s.Attributes.Id), "filter by label");
        Assert.Empty(await ListContainerStatsAsync(new ContainerStatsFilter { PodSandboxId = "0000nosuchpod" }));

        var streamed = new List<ContainerStats>();
        using (var call = Runtime.StreamContainerStats(new StreamContainerStatsRequest(), deadline: Deadline()))
            await foreach (var chunk in call.ResponseStream.ReadAllAsync())
                streamed.AddRange(chunk.ContainerStats);
        AssertIds([worker, idle, exited], streamed.Select(s => s.Attributes.Id), "StreamContainerStats()");

        await ExpectErrorAsync(StatusCode.NotFound, "ContainerStats(unknown)",
            dl => Runtime.ContainerStatsAsync(new ContainerStatsRequest { ContainerId = "0000nosuchcontainer" }, deadline: dl));
        await ExpectErrorAsync(StatusCode.InvalidArgument, "ContainerStats(\"\")",
            dl => Runtime.ContainerStatsAsync(new ContainerStatsRequest(), deadline: dl));

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        Assert.Empty(await ListContainerStatsAsync(null));
    }

    [Fact]
    public async Task PodSandboxStats_CgroupNetworkAndProcesses_OnlyForReadyPods()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("podstats", c => c.Labels["tier"] = "web");
        string web = await CreateAndStartAsync(pod, "web", Sh("echo hello-stats > /tmp/index.html; exec /bin/busybox httpd -f -p 8080 -h /tmp"));
        string sleeper = await CreateAndStartAsync(pod, "sleeper", ["sleep", "3600"]);
        var ip = await PodIpAsync(pod.Id);
        // Traffic through the pod's eth0 in both directions.
        Assert.Equal("hello-stats\n", await HttpGetAsync($"http://{ip}:8080/index.html"));

        var stopped = await RunPodAsync("stopped");
        await StopPodAsync(stopped.Id);

        var stats = (await CallAsync($"PodSandboxStats({pod.Id})",
            dl => Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = pod.Id }, deadline: dl))).Stats;
        Assert.Equal(pod.Id, stats.Attributes.Id);
        Assert.Equal("podstats", stats.Attributes.Metadata.Name);
        Assert.Equal("web", stats.Attributes.Labels["tier"]);
        var linux = stats.Linux;
        Assert.NotNull(linux);
        AssertDuringTest(linux.Cpu.Timestamp, "linux.cpu.timestamp");
        Assert.True(linux.Cpu.UsageCoreNanoSeconds.Value > 0, "the pod used CPU");
        Assert.True(linux.Memory.WorkingSetBytes.Value > 0, "the pod uses memory");
        Assert.True(linux.Process.ProcessCount.Value >= 2, $"process count {linux.Process.ProcessCount.Value}: httpd and sleep at least");
        Assert.Equal("eth0", linux.Network.DefaultInterface.Name);
        Assert.True(linux.Network.DefaultInterface.RxBytes.Value > 0, "eth0 received the HTTP request");
        Assert.True(linux.Network.DefaultInterface.TxBytes.Value > 0, "eth0 sent the HTTP answer");
        Assert.DoesNotContain(linux.Network.Interfaces, i => i.Name == "lo");
        AssertIds([web, sleeper], linux.Containers.Select(c => c.Attributes.Id), "linux.containers");
        // The pod's cgroup holds its containers' usage.
        ulong containersCpu = linux.Containers.Aggregate(0UL, (sum, c) => sum + c.Cpu.UsageCoreNanoSeconds.Value);
        Assert.True(linux.Cpu.UsageCoreNanoSeconds.Value >= containersCpu, "pod CPU >= the sum over its containers");

        var listed = await ListPodStatsAsync(null);
        Assert.Contains(listed, s => s.Attributes.Id == pod.Id);
        Assert.DoesNotContain(listed, s => s.Attributes.Id == stopped.Id);
        AssertIds([pod.Id], (await ListPodStatsAsync(new PodSandboxStatsFilter { Id = pod.Id[..12] })).Select(s => s.Attributes.Id), "filter by id prefix");
        AssertIds([pod.Id], (await ListPodStatsAsync(new PodSandboxStatsFilter { LabelSelector = { ["tier"] = "web" } })).Select(s => s.Attributes.Id), "filter by label");
        Assert.Empty(await ListPodStatsAsync(new PodSandboxStatsFilter { Id = stopped.Id }));

        var streamed = new List<PodSandboxStats>();
        using (var call = Runtime.StreamPodSandboxStats(new StreamPodSandboxStatsRequest { Filter = new PodSandboxStatsFilter { Id = pod.Id } }, deadline: Deadline()))
            await foreach (var chunk in call.ResponseStream.ReadAllAsync())
                streamed.AddRange(chunk.PodSandboxStats);
        AssertIds([pod.Id], streamed.Select(s => s.Attributes.Id), "StreamPodSandboxStats(id)");

        var notReady = await ExpectErrorAsync(StatusCode.FailedPrecondition, "PodSandboxStats(stopped pod)",
            dl => Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = stopped.Id }, deadline: dl));
        Assert.Contains("not ready", notReady.Status.Detail);
        await ExpectErrorAsync(StatusCode.NotFound, "PodSandboxStats(unknown)",
            dl => Runtime.PodSandboxStatsAsync(new PodSandboxStatsRequest { PodSandboxId = "0000nosuchpod" }, deadline: dl));

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await RemovePodAsync(stopped.Id);
    }

    private async Task<ContainerStats> ContainerStatsAsync(string containerId) =>
        (await CallAsync($"ContainerStats({containerId})",
            dl => Runtime.ContainerStatsAsync(new ContainerStatsRequest { ContainerId = containerId }, deadline: dl))).Stats;

    private async Task<IReadOnlyList<ContainerStats>> ListContainerStatsAsync(ContainerStatsFilter? filter) =>
        (await CallAsync("ListContainerStats",
            dl => Runtime.ListContainerStatsAsync(new ListContainerStatsRequest { Filter = filter }, deadline: dl))).Stats;

    private async Task<IReadOnlyList<PodSandboxStats>> ListPodStatsAsync(PodSandboxStatsFilter? filter) =>
        (await CallAsync("ListPodSandboxStats",
            dl => Runtime.ListPodSandboxStatsAsync(new ListPodSandboxStatsRequest { Filter = filter }, deadline: dl))).Stats;
}
