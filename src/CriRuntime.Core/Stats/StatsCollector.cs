using CriRuntime.State;
using System.Collections.Concurrent;
using CriRuntime.Containers;
using CriRuntime.Native;
using CriRuntime.Pods;
using CriRuntime.Storage;
using Runtime.V1;

namespace CriRuntime.Stats;

/// <summary>
/// Resource usage of containers and pods in the CRI stats messages, read when asked: CPU, memory and swap
/// from the cgroup, the writable layer from the container's overlay upper dir, network counters from the
/// pod's network namespace, process counts from the pod cgroup. Nothing polls in the background.
/// </summary>
public sealed class StatsCollector(Cgroups cgroups, PodSandboxManager pods, ContainerManager containers)
{
    // The previous CPU sample of each container and pod, to turn cumulative usage into a rate between two calls.
    private readonly ConcurrentDictionary<string, CpuSample> lastCpu = new(StringComparer.Ordinal);

    /// <summary>
    /// Stats of one container. A container that is not running has no cgroup, so only its attributes and
    /// writable layer are reported (as containerd does).
    /// </summary>
    public ContainerStats ContainerStatsOf(ContainerRecord container)
    {
        long now = CriClock.NowNanos();
        var stats = new ContainerStats
        {
            Attributes = new ContainerAttributes { Id = container.Id, Metadata = container.Config.Metadata },
            WritableLayer = WritableLayerOf(container, now),
        };
        stats.Attributes.Labels.Add(container.Config.Labels);
        stats.Attributes.Annotations.Add(container.Config.Annotations);
        if (container.Phase == ContainerPhase.Running && cgroups.ReadUsage(container.CgroupsPath) is { } usage)
        {
            stats.Cpu = CpuOf(container.Id, usage, now);
            stats.Memory = MemoryOf(usage, now);
            stats.Swap = SwapOf(usage, now);
        }
        return stats;
    }

    /// <summary>
    /// Stats of one ready pod: its cgroup's CPU and memory (every container and the infra process together),
    /// the interfaces of its network namespace, its process count and its running containers.
    /// </summary>
    public PodSandboxStats PodStatsOf(PodSandboxRecord pod)
    {
        if (pod.Phase != PodSandboxPhase.Ready)
            throw new FailedPreconditionException($"pod sandbox {pod.Id} is not ready (it was stopped), so it uses nothing; stats are reported for ready pods only");
        long now = CriClock.NowNanos();
        var stats = new PodSandboxStats
        {
            Attributes = new PodSandboxAttributes { Id = pod.Id, Metadata = pod.Config.Metadata },
            Linux = new LinuxPodSandboxStats(),
        };
        stats.Attributes.Labels.Add(pod.Config.Labels);
        stats.Attributes.Annotations.Add(pod.Config.Annotations);

        var podContainers = containers.List().Where(c => c.PodSandboxId == pod.Id && c.Phase == ContainerPhase.Running).ToList();
        if (cgroups.ReadUsage(pod.CgroupParent) is { } usage)
        {
            stats.Linux.Cpu = CpuOf(pod.Id, usage, now);
            stats.Linux.Memory = MemoryOf(usage, now);
            stats.Linux.Process = new ProcessUsage { Timestamp = now, ProcessCount = new UInt64Value { Value = usage.Pids } };
        }
        if (!pod.HostNetwork && NetworkOf(pod, now) is { } network) stats.Linux.Network = network;
        foreach (var container in podContainers)
            stats.Linux.Containers.Add(ContainerStatsOf(container));
        return stats;
    }

    /// <summary>Drops remembered CPU samples of everything the node no longer has.</summary>
    public void ForgetGone()
    {
        var present = containers.List().Select(c => c.Id).Concat(pods.List().Select(p => p.Id)).ToHashSet(StringComparer.Ordinal);
        foreach (string id in lastCpu.Keys)
            if (!present.Contains(id)) lastCpu.TryRemove(id, out _);
    }

    private CpuUsage CpuOf(string id, CgroupUsage usage, long now)
    {
        var cpu = new CpuUsage { Timestamp = now, UsageCoreNanoSeconds = new UInt64Value { Value = usage.CpuUsageNanoseconds } };
        var sample = new CpuSample(now, usage.CpuUsageNanoseconds);
        if (lastCpu.TryGetValue(id, out var previous) && NanoCores(previous, sample) is { } rate)
            cpu.UsageNanoCores = new UInt64Value { Value = rate };
        // On the first call there is no rate yet; the kubelet then works it out from its own samples.
        lastCpu[id] = sample;
        return cpu;
    }

    /// <summary>CPU use between two samples in nanocores (10^9 = one core busy), or null when they cannot be compared.</summary>
    public static ulong? NanoCores(CpuSample earlier, CpuSample later)
    {
        if (later.TimestampNanos <= earlier.TimestampNanos || later.UsageNanos < earlier.UsageNanos) return null;
        ulong elapsed = (ulong)(later.TimestampNanos - earlier.TimestampNanos);
        return (ulong)((UInt128)(later.UsageNanos - earlier.UsageNanos) * 1_000_000_000 / elapsed);
    }

    private static MemoryUsage MemoryOf(CgroupUsage usage, long now)
    {
        var memory = new MemoryUsage
        {
            Timestamp = now,
            WorkingSetBytes = new UInt64Value { Value = usage.MemoryWorkingSetBytes },
            UsageBytes = new UInt64Value { Value = usage.MemoryUsageBytes },
            RssBytes = new UInt64Value { Value = usage.MemoryRssBytes },
            PageFaults = new UInt64Value { Value = usage.PageFaults },
            MajorPageFaults = new UInt64Value { Value = usage.MajorPageFaults },
        };
        // What is left before the limit, as the kubelet's eviction manager reads it; absent without a limit.
        if (usage.MemoryLimitBytes is { } limit)
            memory.AvailableBytes = new UInt64Value { Value = limit > usage.MemoryWorkingSetBytes ? limit - usage.MemoryWorkingSetBytes : 0 };
        return memory;
    }

    private static SwapUsage? SwapOf(CgroupUsage usage, long now)
    {
        if (usage.SwapUsageBytes is not { } used) return null;
        var swap = new SwapUsage { Timestamp = now, SwapUsageBytes = new UInt64Value { Value = used } };
        if (usage.SwapLimitBytes is { } limit)
            swap.SwapAvailableBytes = new UInt64Value { Value = limit > used ? limit - used : 0 };
        return swap;
    }

    private static FilesystemUsage WritableLayerOf(ContainerRecord container, long now)
    {
        var used = DiskUsage.Measure(Path.Combine(container.WritableLayerDir, "upper"));
        return new FilesystemUsage
        {
            Timestamp = now,
            // Where the writable layers live; the kubelet finds the filesystem's capacity from this path.
            FsId = new FilesystemIdentifier { Mountpoint = Path.GetDirectoryName(container.WritableLayerDir) ?? container.WritableLayerDir },
            UsedBytes = new UInt64Value { Value = used.Bytes },
            InodesUsed = new UInt64Value { Value = used.Inodes },
        };
    }

    /// <summary>
    /// Counters of the pod's interfaces, read through a process of the pod (every process in the pod cgroup
    /// shares its network namespace); null when none runs, as nothing then can be measured without entering it.
    /// </summary>
    private NetworkUsage? NetworkOf(PodSandboxRecord pod, long now)
    {
        if (NetworkDevicesOf(pod) is not { } devices) return null;
        var network = new NetworkUsage { Timestamp = now };
        foreach (var device in devices)
        {
            if (device.Name == "lo") continue;
            var usage = new NetworkInterfaceUsage
            {
                Name = device.Name,
                RxBytes = new UInt64Value { Value = device.RxBytes },
                RxErrors = new UInt64Value { Value = device.RxErrors },
                TxBytes = new UInt64Value { Value = device.TxBytes },
                TxErrors = new UInt64Value { Value = device.TxErrors },
            };
            network.Interfaces.Add(usage);
            // CNI gives every pod its interface as eth0 (CNI_IFNAME).
            if (device.Name == "eth0") network.DefaultInterface = usage;
        }
        return network;
    }

    /// <summary>The interfaces of the pod's network namespace, read through the first of its processes whose
    /// /proc/&lt;pid&gt;/net/dev can be read; null when none runs.</summary>
    internal IReadOnlyList<NetworkDeviceCounters>? NetworkDevicesOf(PodSandboxRecord pod)
    {
        foreach (int pid in cgroups.Pids(pod.CgroupParent))
        {
            string text;
            try { text = File.ReadAllText($"/proc/{pid}/net/dev"); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            return NetworkDevices.Parse(text);
        }
        return null;
    }
}

/// <summary>A cumulative CPU usage reading and when it was taken, both in nanoseconds.</summary>
public readonly record struct CpuSample(long TimestampNanos, ulong UsageNanos);
