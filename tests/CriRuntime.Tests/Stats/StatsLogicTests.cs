using CriRuntime.Native;
using CriRuntime.Stats;
using Xunit;

namespace CriRuntime.Tests.Stats;

/// <summary>Pure logic of the stats RPCs: /proc/net/dev parsing, CPU rates, cgroup limit values.</summary>
public sealed class StatsLogicTests
{
    private const string NetDev =
        "Inter-|   Receive                                                |  Transmit\n" +
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
        "    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n" +
        "  eth0: 123456789   900    3    1    0     0          0         5  9876543     800    7    0    0     0       0          0\n" +
        "broken: 1 2 3\n";

    [Fact]
    public void Net_dev_gives_bytes_and_errors_in_each_direction()
    {
        var devices = NetworkDevices.Parse(NetDev);
        Assert.Equal(["lo", "eth0"], devices.Select(d => d.Name));
        var eth0 = devices[1];
        Assert.Equal(123456789UL, eth0.RxBytes);
        Assert.Equal(3UL, eth0.RxErrors);
        Assert.Equal(9876543UL, eth0.TxBytes);
        Assert.Equal(7UL, eth0.TxErrors);
    }

    [Fact]
    public void Net_dev_of_nothing_is_empty()
    {
        Assert.Empty(NetworkDevices.Parse(""));
        Assert.Empty(NetworkDevices.Parse("Inter-|   Receive\n face |bytes\n"));
    }

    [Theory]
    [InlineData(0L, 0UL, 1_000_000_000L, 500_000_000UL, 500_000_000UL)]     // half a core for a second
    [InlineData(0L, 0UL, 2_000_000_000L, 4_000_000_000UL, 2_000_000_000UL)] // two cores busy
    [InlineData(5L, 100UL, 10L, 100UL, 0UL)]                                 // idle
    public void Nano_cores_is_usage_over_elapsed_time(long t0, ulong u0, long t1, ulong u1, ulong expected) =>
        Assert.Equal(expected, StatsCollector.NanoCores(new CpuSample(t0, u0), new CpuSample(t1, u1)));

    [Theory]
    [InlineData(10L, 100UL, 10L, 200UL)] // no time passed
    [InlineData(10L, 100UL, 5L, 200UL)]  // clock went back
    [InlineData(10L, 200UL, 20L, 100UL)] // usage went down: a different cgroup under the same id
    public void Nano_cores_is_unknown_when_samples_cannot_be_compared(long t0, ulong u0, long t1, ulong u1) =>
        Assert.Null(StatsCollector.NanoCores(new CpuSample(t0, u0), new CpuSample(t1, u1)));

    [Fact]
    public void Nano_cores_does_not_overflow_on_long_running_containers() =>
        // A year of 64 cores: usage near 2^61 ns; multiplying by 10^9 would overflow 64 bits.
        Assert.Equal(64_000_000_000UL, StatsCollector.NanoCores(new CpuSample(0, 2_000_000_000_000_000_000), new CpuSample(1_000_000_000, 2_000_000_064_000_000_000)));

    [Theory]
    [InlineData("max", null)]
    [InlineData("max\n", null)]
    [InlineData("9223372036854771712\n", null)] // v1 "unlimited"
    [InlineData("67108864\n", 67108864UL)]
    [InlineData("", null)]
    [InlineData(null, null)]
    public void Limits_read_unlimited_as_null(string? text, ulong? expected) =>
        Assert.Equal(expected, Cgroups.Limit(text));
}
