using CriRuntime.Containers;
using CriRuntime.Pods;
using CriRuntime.Images;
using Grpc.Core;
using Prometheus;

namespace CriRuntime.Hosting;

/// <summary>What /metrics exposes beyond the process and .NET runtime metrics prometheus-net adds.</summary>
internal static class DaemonMetrics
{
    private static readonly Counter Calls = Metrics.CreateCounter("criruntime_grpc_requests_total",
        "CRI gRPC calls served, by method and status code.", "method", "code");

    private static readonly Histogram CallSeconds = Metrics.CreateHistogram("criruntime_grpc_request_duration_seconds",
        "Time to serve a CRI gRPC call, by method.", new HistogramConfiguration
        {
            LabelNames = ["method"],
            Buckets = Histogram.ExponentialBuckets(0.0005, 4, 10),
        });

    private static readonly Gauge Images = Metrics.CreateGauge("criruntime_images", "Images on the node.");
    private static readonly Gauge ImageBytes = Metrics.CreateGauge("criruntime_image_store_bytes", "Bytes used by image layers and blobs.");
    private static readonly Gauge PodSandboxes = Metrics.CreateGauge("criruntime_pod_sandboxes", "Pod sandboxes on the node, by state.", "state");
    private static readonly Gauge Containers = Metrics.CreateGauge("criruntime_containers", "Containers on the node, by state.", "state");

    public static void ObserveCall(string fullMethod, StatusCode code, TimeSpan elapsed)
    {
        // "/runtime.v1.ImageService/PullImage" -> "PullImage": the method names are unique across both services.
        string method = fullMethod[(fullMethod.LastIndexOf('/') + 1)..];
        Calls.WithLabels(method, code.ToString()).Inc();
        CallSeconds.WithLabels(method).Observe(elapsed.TotalSeconds);
    }

    public static void Register(IServiceProvider services)
    {
        var images = services.GetRequiredService<ImageManager>();
        var pods = services.GetRequiredService<PodSandboxManager>();
        var containers = services.GetRequiredService<ContainerManager>();
        var criMetrics = services.GetRequiredService<CriRuntime.Stats.CriMetrics>();
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() =>
        {
            ContainerFigures.Update(criMetrics.List());
            Images.Set(images.List().Count);
            ImageBytes.Set(images.GetUsage().UsedBytes);
            var podList = pods.List().ToList();
            PodSandboxes.WithLabels("ready").Set(podList.Count(p => p.Phase == PodSandboxPhase.Ready));
            PodSandboxes.WithLabels("notready").Set(podList.Count(p => p.Phase == PodSandboxPhase.NotReady));
            var containerList = containers.List().ToList();
            foreach (var phase in new[] { ContainerPhase.Created, ContainerPhase.Running, ContainerPhase.Exited })
                Containers.WithLabels(ContainerManager.StateName(phase).ToLowerInvariant()).Set(containerList.Count(c => c.Phase == phase));
        });
    }

    /// <summary>
    /// The per-container and per-pod figures of ListPodSandboxMetrics, under the same cadvisor names and labels, so a
    /// scraper of this endpoint sees what the kubelet serves from the CRI. Series of containers that are gone are removed.
    /// </summary>
    private static class ContainerFigures
    {
        private static readonly Dictionary<string, Gauge> Gauges = CriRuntime.Stats.CriMetrics.Descriptors.ToDictionary(
            d => d.Name, d => Metrics.CreateGauge(d.Name, d.Help, [.. d.LabelKeys]), StringComparer.Ordinal);
        private static readonly Lock Sync = new();
        private static HashSet<(string Name, string Labels)> previous = [];

        public static void Update(IEnumerable<Runtime.V1.PodSandboxMetrics> pods)
        {
            lock (Sync)
            {
                var current = new HashSet<(string, string)>();
                foreach (var pod in pods)
                    foreach (var metric in pod.Metrics.Concat(pod.ContainerMetrics.SelectMany(c => c.Metrics)))
                    {
                        if (!Gauges.TryGetValue(metric.Name, out var gauge)) continue;
                        string[] labels = [.. metric.LabelValues];
                        gauge.WithLabels(labels).Set(metric.Value?.Value ?? 0);
                        current.Add((metric.Name, string.Join('\0', labels)));
                    }
                foreach (var (name, labels) in previous)
                    if (!current.Contains((name, labels))) Gauges[name].RemoveLabelled(labels.Split('\0'));
                previous = current;
            }
        }
    }
}
