using System.Text.RegularExpressions;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// ListMetricDescriptors and ListPodSandboxMetrics as the kubelet's CRI metrics collector reads them
/// (PodAndContainerStatsFromCRI): cadvisor names, every metric's label values matching its descriptor's keys,
/// real cgroup figures of a running container; and the same figures on the daemon's own /metrics.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class PodMetricsTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task Metrics_rpcs_report_cadvisor_names_with_cgroup_values_and_prometheus_shows_them()
    {
        var daemon = await StartPodDaemonAsync();
        var descriptors = (await CallAsync("ListMetricDescriptors", dl => Runtime.ListMetricDescriptorsAsync(new ListMetricDescriptorsRequest(), deadline: dl))).Descriptors;
        Assert.NotEmpty(descriptors);
        var byName = descriptors.ToDictionary(d => d.Name);
        foreach (string name in new[] { "container_cpu_usage_seconds_total", "container_cpu_user_seconds_total", "container_memory_working_set_bytes",
                     "container_memory_usage_bytes", "container_memory_rss", "container_network_receive_bytes_total", "container_oom_events_total" })
            Assert.True(byName.ContainsKey(name), $"no descriptor {name}");
        Assert.Equal(["id", "name", "image", "cpu"], byName["container_cpu_usage_seconds_total"].LabelKeys);
        Assert.Equal(["id", "name", "image", "interface"], byName["container_network_receive_bytes_total"].LabelKeys);

        var pod = await RunPodAsync("metrics");
        // Busy until stopped: the CRI value is whole seconds (as CRI-O reports it), so the test waits for one.
        string busy = await CreateAndStartAsync(pod, "busy", Sh("while :; do :; done"));
        string idle = await CreateAndStartAsync(pod, "idle", ["sleep", "3600"]);

        PodSandboxMetrics? podMetrics = null;
        Metric? Find(string containerId, string name) =>
            podMetrics?.ContainerMetrics.FirstOrDefault(c => c.ContainerId == containerId)?.Metrics.FirstOrDefault(m => m.Name == name);
        bool burned = await EventuallyAsync(async () =>
        {
            var all = await CallAsync("ListPodSandboxMetrics", dl => Runtime.ListPodSandboxMetricsAsync(new ListPodSandboxMetricsRequest(), deadline: dl));
            podMetrics = all.PodMetrics.SingleOrDefault(p => p.PodSandboxId == pod.Id);
            return Find(busy, "container_cpu_usage_seconds_total")?.Value?.Value >= 1;
        }, TimeSpan.FromSeconds(90));
        // The busy loop has done its part; stop it before looking, so it does not hold a core.
        await StopContainerAsync(busy, 0);
        Assert.True(burned, $"container_cpu_usage_seconds_total of the busy container never reached 1: {podMetrics}");

        Assert.NotNull(podMetrics);
        var cpu = Find(busy, "container_cpu_usage_seconds_total")!;
        Assert.Equal(MetricType.Counter, cpu.MetricType);
        string cadvisorName = $"k8s_busy_metrics_{PodNamespace}_{pod.Uid}_0";
        Assert.Equal([busy, cadvisorName, BusyboxImage, "total"], cpu.LabelValues);
        var memory = Find(idle, "container_memory_working_set_bytes");
        Assert.NotNull(memory);
        Assert.Equal(MetricType.Gauge, memory.MetricType);
        Assert.True(memory.Value.Value > 0, $"working set of the idle container is {memory.Value.Value}");
        Assert.True(Find(idle, "container_memory_usage_bytes")!.Value.Value >= memory.Value.Value);
        Assert.True(Find(idle, "container_processes")!.Value.Value >= 1);
        // Every metric carries exactly its descriptor's labels (the kubelet's collector requires it).
        foreach (var metric in podMetrics.Metrics.Concat(podMetrics.ContainerMetrics.SelectMany(c => c.Metrics)))
        {
            Assert.True(byName.TryGetValue(metric.Name, out var descriptor), $"metric {metric.Name} has no descriptor");
            Assert.Equal(descriptor.LabelKeys.Count, metric.LabelValues.Count);
        }
        // The streaming form carries the same pods and containers.
        var streamed = new List<PodSandboxMetrics>();
        using (var call = Runtime.StreamPodSandboxMetrics(new StreamPodSandboxMetricsRequest(), deadline: Deadline()))
            await foreach (var chunk in call.ResponseStream.ReadAllAsync())
                streamed.AddRange(chunk.PodSandboxMetrics);
        var streamedPod = Assert.Single(streamed, p => p.PodSandboxId == pod.Id);
        Assert.Contains(streamedPod.ContainerMetrics, c => c.ContainerId == idle && c.Metrics.Any(m => m.Name == "container_memory_working_set_bytes"));

        var rx = podMetrics.Metrics.FirstOrDefault(m => m.Name == "container_network_receive_bytes_total" && m.LabelValues[3] == "eth0");
        Assert.NotNull(rx);
        Assert.Equal([pod.Id, "POD", "", "eth0"], rx.LabelValues);

        // The daemon's own Prometheus endpoint shows the same series.
        string? url = null;
        var pattern = new Regex(@"metrics (http://127\.0\.0\.1:\d+/metrics)");
        Assert.True(await EventuallyAsync(() => (url = pattern.Match(daemon.LogTail(2000)) is { Success: true } m ? m.Groups[1].Value : null) is not null,
            TimeSpan.FromSeconds(10)), "the daemon log names no metrics URL");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        string text = await http.GetStringAsync(url);
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith("container_memory_working_set_bytes{", StringComparison.Ordinal) && l.Contains($"id=\"{idle}\"", StringComparison.Ordinal));
        Assert.True(line is not null, "no container_memory_working_set_bytes series of the idle container on /metrics");
        Assert.Contains($"name=\"k8s_idle_metrics_{PodNamespace}_{pod.Uid}_0\"", line);

        // A removed pod's series go away.
        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        Assert.DoesNotContain($"id=\"{idle}\"", await http.GetStringAsync(url));
        var after = await CallAsync("ListPodSandboxMetrics", dl => Runtime.ListPodSandboxMetricsAsync(new ListPodSandboxMetricsRequest(), deadline: dl));
        Assert.DoesNotContain(after.PodMetrics, p => p.PodSandboxId == pod.Id);
    }
}
