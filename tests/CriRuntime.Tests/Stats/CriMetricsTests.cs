using CriRuntime.Stats;
using Xunit;

namespace CriRuntime.Tests.Stats;

/// <summary>The descriptors the kubelet's CRI metrics collector builds its Prometheus descriptions from.</summary>
public sealed class CriMetricsTests
{
    [Fact]
    public void Descriptors_are_cadvisors_names_each_once_with_the_base_labels_first()
    {
        var descriptors = CriMetrics.Descriptors;

        Assert.NotEmpty(descriptors);
        Assert.Equal(descriptors.Count, descriptors.Select(d => d.Name).Distinct().Count());
        foreach (var d in descriptors)
        {
            Assert.StartsWith("container_", d.Name);
            Assert.False(string.IsNullOrWhiteSpace(d.Help), d.Name);
            Assert.Equal(["id", "name", "image"], d.LabelKeys.Take(3));
        }
        Assert.Equal(["id", "name", "image", "failure_type", "scope"], descriptors.Single(d => d.Name == "container_memory_failures_total").LabelKeys);
        Assert.Contains(descriptors, d => d.Name == "container_memory_working_set_bytes" && d.LabelKeys.Count == 3);
    }

    [Fact]
    public void Net_dev_counters_include_packets_and_drops()
    {
        const string text = """
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
                lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
              eth0:    5000      50    1    2    0     0          0         0     7000      70    3    4    0     0       0          0
            """;
        var eth0 = NetworkDevices.Parse(text).Single(d => d.Name == "eth0");
        Assert.Equal((5000UL, 50UL, 1UL, 2UL, 7000UL, 70UL, 3UL, 4UL),
            (eth0.RxBytes, eth0.RxPackets, eth0.RxErrors, eth0.RxDropped, eth0.TxBytes, eth0.TxPackets, eth0.TxErrors, eth0.TxDropped));
    }
}
