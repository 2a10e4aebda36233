using CriRuntime.Containers;
using CriRuntime.Native;
using CriRuntime.Pods;
using CriRuntime.State;
using Runtime.V1;

namespace CriRuntime.Stats;

/// <summary>
/// ListMetricDescriptors and ListPodSandboxMetrics: cadvisor's metric names, help texts and label sets, as CRI-O's
/// stats server reports them (internal/lib/stats), so that a kubelet with <c>PodAndContainerStatsFromCRI</c> serves
/// the same /metrics/cadvisor it would from cadvisor. Every container metric carries the labels id, name (the
/// <c>k8s_&lt;container&gt;_&lt;pod&gt;_&lt;namespace&gt;_&lt;uid&gt;_&lt;attempt&gt;</c> name cadvisor shows) and image,
/// plus its own; network metrics are the pod's, labelled id=pod id, name=POD, image="" and interface. Values are
/// read when asked from the same cgroup files as the stats RPCs; seconds are whole seconds, as CRI-O reports them
/// (the CRI value is an integer). Running containers of ready pods only.
/// </summary>
public sealed class CriMetrics(Cgroups cgroups, PodSandboxManager pods, ContainerManager containers, StatsCollector stats)
{
    private static readonly string[] BaseLabels = ["id", "name", "image"];

    private static MetricDescriptor Descriptor(string name, string help, params string[] extraLabels)
    {
        var descriptor = new MetricDescriptor { Name = name, Help = help };
        descriptor.LabelKeys.Add(BaseLabels);
        descriptor.LabelKeys.Add(extraLabels);
        return descriptor;
    }

    /// <summary>Every metric ListPodSandboxMetrics reports, and nothing else (the kubelet drops a metric whose descriptor it lacks).</summary>
    public static IReadOnlyList<MetricDescriptor> Descriptors { get; } =
    [
        Descriptor("container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds."),
        Descriptor("container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds."),
        Descriptor("container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", "cpu"),
        Descriptor("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals."),
        Descriptor("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals."),
        Descriptor("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled."),
        Descriptor("container_memory_cache", "Number of bytes of page cache memory."),
        Descriptor("container_memory_rss", "Size of RSS in bytes."),
        Descriptor("container_memory_kernel_usage", "Size of kernel memory allocated in bytes."),
        Descriptor("container_memory_mapped_file", "Size of memory mapped files in bytes."),
        Descriptor("container_memory_swap", "Container swap usage in bytes."),
        Descriptor("container_memory_failcnt", "Number of memory usage hits limits"),
        Descriptor("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed"),
        Descriptor("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes"),
        Descriptor("container_memory_working_set_bytes", "Current working set in bytes."),
        Descriptor("container_memory_failures_total", "Cumulative count of memory allocation failures.", "failure_type", "scope"),
        Descriptor("container_spec_memory_limit_bytes", "Memory limit for the container in bytes."),
        Descriptor("container_oom_events_total", "Count of out of memory events observed for the container"),
        Descriptor("container_processes", "Number of processes running inside the container."),
        Descriptor("container_network_receive_bytes_total", "Cumulative count of bytes received", "interface"),
        Descriptor("container_network_receive_packets_total", "Cumulative count of packets received", "interface"),
        Descriptor("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", "interface"),
        Descriptor("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", "interface"),
        Descriptor("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", "interface"),
        Descriptor("container_network_transmit_packets_total", "Cumulative count of packets transmitted", "interface"),
        Descriptor("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", "interface"),
        Descriptor("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", "interface"),
    ];

    /// <summary>Metrics of every ready pod.</summary>
    public IEnumerable<PodSandboxMetrics> List() =>
        pods.List().Where(p => p.Phase == PodSandboxPhase.Ready).Select(MetricsOf);

    public PodSandboxMetrics MetricsOf(PodSandboxRecord pod)
    {
        long now = CriClock.NowNanos();
        var result = new PodSandboxMetrics { PodSandboxId = pod.Id };
        if (!pod.HostNetwork && stats.NetworkDevicesOf(pod) is { } devices)
        {
            string[] podLabels = [pod.Id, "POD", ""];
            foreach (var d in devices.Where(d => d.Name != "lo"))
            {
                void Net(string name, ulong value) => result.Metrics.Add(Make(name, MetricType.Counter, value, now, podLabels, d.Name));
                Net("container_network_receive_bytes_total", d.RxBytes);
                Net("container_network_receive_packets_total", d.RxPackets);
                Net("container_network_receive_packets_dropped_total", d.RxDropped);
                Net("container_network_receive_errors_total", d.RxErrors);
                Net("container_network_transmit_bytes_total", d.TxBytes);
                Net("container_network_transmit_packets_total", d.TxPackets);
                Net("container_network_transmit_packets_dropped_total", d.TxDropped);
                Net("container_network_transmit_errors_total", d.TxErrors);
            }
        }
        foreach (var container in containers.List().Where(c => c.PodSandboxId == pod.Id && c.Phase == ContainerPhase.Running))
        {
            if (ContainerMetricsOf(pod, container, now) is { } metrics) result.ContainerMetrics.Add(metrics);
        }
        return result;
    }

    /// <summary>The name cadvisor (and CRI-O) give a Kubernetes container.</summary>
    public static string CadvisorName(PodSandboxRecord pod, ContainerRecord container)
    {
        var m = pod.Config.Metadata;
        return $"k8s_{container.Config.Metadata.Name}_{m.Name}_{m.Namespace}_{m.Uid}_{container.Config.Metadata.Attempt}";
    }

    private ContainerMetrics? ContainerMetricsOf(PodSandboxRecord pod, ContainerRecord container, long now)
    {
        // A container that exits between the listing and the read has no cgroup any more: it is left out.
        if (cgroups.ReadUsage(container.CgroupsPath) is not { } usage || cgroups.ReadMetricsDetail(container.CgroupsPath) is not { } detail) return null;
        string[] labels = [container.Id, CadvisorName(pod, container), container.ImageName];
        var metrics = new ContainerMetrics { ContainerId = container.Id };
        void Add(string name, MetricType type, ulong value, params string[] extra) => metrics.Metrics.Add(Make(name, type, value, now, labels, extra));
        const ulong second = 1_000_000_000;
        Add("container_cpu_user_seconds_total", MetricType.Counter, detail.CpuUserNanoseconds / second);
        Add("container_cpu_system_seconds_total", MetricType.Counter, detail.CpuSystemNanoseconds / second);
        Add("container_cpu_usage_seconds_total", MetricType.Counter, usage.CpuUsageNanoseconds / second, "total");
        Add("container_cpu_cfs_periods_total", MetricType.Counter, detail.CfsPeriods);
        Add("container_cpu_cfs_throttled_periods_total", MetricType.Counter, detail.CfsThrottledPeriods);
        Add("container_cpu_cfs_throttled_seconds_total", MetricType.Counter, detail.CfsThrottledNanoseconds / second);
        Add("container_memory_cache", MetricType.Gauge, detail.MemoryCacheBytes);
        Add("container_memory_rss", MetricType.Gauge, usage.MemoryRssBytes);
        Add("container_memory_kernel_usage", MetricType.Gauge, detail.MemoryKernelBytes);
        Add("container_memory_mapped_file", MetricType.Gauge, detail.MemoryMappedFileBytes);
        Add("container_memory_swap", MetricType.Gauge, usage.SwapUsageBytes ?? 0);
        Add("container_memory_failcnt", MetricType.Counter, detail.MemoryFailcnt);
        Add("container_memory_usage_bytes", MetricType.Gauge, usage.MemoryUsageBytes);
        Add("container_memory_max_usage_bytes", MetricType.Gauge, detail.MemoryMaxUsageBytes);
        Add("container_memory_working_set_bytes", MetricType.Gauge, usage.MemoryWorkingSetBytes);
        // cadvisor reports the one page fault count under both scopes (CRI-O does the same).
        Add("container_memory_failures_total", MetricType.Counter, usage.PageFaults, "pgfault", "container");
        Add("container_memory_failures_total", MetricType.Counter, usage.PageFaults, "pgfault", "hierarchy");
        Add("container_memory_failures_total", MetricType.Counter, usage.MajorPageFaults, "pgmajfault", "container");
        Add("container_memory_failures_total", MetricType.Counter, usage.MajorPageFaults, "pgmajfault", "hierarchy");
        Add("container_spec_memory_limit_bytes", MetricType.Gauge, usage.MemoryLimitBytes ?? 0);
        Add("container_oom_events_total", MetricType.Counter, (ulong)cgroups.OomKillCount(container.CgroupsPath));
        Add("container_processes", MetricType.Gauge, usage.Pids);
        return metrics;
    }

    private static Metric Make(string name, MetricType type, ulong value, long now, string[] labels, params string[] extra)
    {
        var metric = new Metric { Name = name, MetricType = type, Timestamp = now, Value = new UInt64Value { Value = value } };
        metric.LabelValues.Add(labels);
        metric.LabelValues.Add(extra);
        return metric;
    }
}
