using CriRuntime.Native;
using Xunit;

namespace CriRuntime.Tests.Native;

/// <summary>Hierarchy detection and value conversions from canned mountinfo: pure logic.</summary>
public sealed class CgroupsDetectTests
{
    private static readonly IReadOnlySet<string> Kernel = new HashSet<string>
        { "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "net_cls", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc" };

    private static List<MountInfo> Parse(params string[] lines) => lines.Select(l => Mounts.ParseMountInfoLine(l)!).ToList();

    [Fact]
    public void Hybrid_with_comounted_controllers_uses_each_hierarchy_once_plus_systemd_and_unified()
    {
        var mounts = Parse(
            "30 22 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755",
            "31 30 0:28 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate",
            "32 30 0:29 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd",
            "33 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct",
            "34 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory",
            "35 30 0:31 / /sys/fs/cgroup/memory-again rw,relatime shared:13 - cgroup cgroup rw,memory",
            "36 30 0:32 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,freezer",
            "37 30 0:33 / /sys/fs/cgroup/other rw,relatime - cgroup cgroup rw,name=other",
            "38 22 0:34 / /elsewhere/cpuset rw,relatime - cgroup cgroup rw,cpuset");

        var c = Cgroups.Detect("/sys/fs/cgroup/", mounts, Kernel);

        Assert.False(c.IsUnified);
        Assert.Equal(
            ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"],
            c.HierarchyMountPoints.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Cgroup2_at_the_root_is_unified()
    {
        var c = Cgroups.Detect("/sys/fs/cgroup", Parse(
            "30 22 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot"), Kernel);
        Assert.True(c.IsUnified);
        Assert.Equal(["/sys/fs/cgroup"], c.HierarchyMountPoints);
    }

    [Fact]
    public void Nothing_mounted_is_an_error_that_says_where_it_looked()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Cgroups.Detect("/nowhere", Parse(
            "30 22 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw"), Kernel));
        Assert.Contains("/nowhere", e.Message);
    }

    [Theory]
    [InlineData(2UL, "1")]
    [InlineData(1024UL, "39")]
    [InlineData(262144UL, "10000")]
    [InlineData(1UL, "1")]
    public void Shares_map_to_weight_like_runc(ulong shares, string weight) => Assert.Equal(weight, Cgroups.SharesToWeight(shares));

    [Theory]
    [InlineData("/kubepods/pod1/", "/kubepods/pod1")]
    [InlineData("//kubepods//pod1", "/kubepods/pod1")]
    public void Paths_are_normalized(string input, string expected) => Assert.Equal(expected, Cgroups.NormalizePath(input, allowRoot: false));
}
