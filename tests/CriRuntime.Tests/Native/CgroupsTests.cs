using System.Diagnostics;
using System.Security.Cryptography;
using CriRuntime.Native;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Native;

/// <summary>
/// Real cgroups on this host (v1, hybrid or v2), as root. Each test works below its own
/// /criruntime-test-&lt;random&gt; cgroup and removes it (killing anything left in it) even on failure.
/// </summary>
public sealed class CgroupsTests : IAsyncLifetime
{
    private readonly Cgroups cgroups = Cgroups.Detect();
    private readonly string root = "/criruntime-test-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
    private readonly List<Process> started = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var p in started)
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            p.Dispose();
        }
        await cgroups.KillAllAndRemoveAsync(root, TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.All(cgroups.HierarchyMountPoints, h => Assert.False(Directory.Exists(h + root)));
    }

    [Fact]
    public void Detects_this_hosts_hierarchies()
    {
        Assert.Equal(File.Exists("/sys/fs/cgroup/cgroup.controllers"), cgroups.IsUnified);
        if (!cgroups.IsUnified)
        {
            Assert.Contains("/sys/fs/cgroup/memory", cgroups.HierarchyMountPoints);
            Assert.Contains("/sys/fs/cgroup/freezer", cgroups.HierarchyMountPoints);
            Assert.Contains(cgroups.HierarchyMountPoints, h => h.EndsWith("/systemd", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Create_makes_the_cgroup_in_every_hierarchy_and_removal_leaves_nothing()
    {
        string path = root + "/besteffort/pod-a";
        Assert.False(cgroups.Exists(path));
        Assert.Null(cgroups.ReadUsage(path));
        Assert.Equal(0, cgroups.OomKillCount(path));

        cgroups.Create(path);
        cgroups.Create(path); // mkdir -p semantics

        Assert.True(cgroups.Exists(path));
        Assert.All(cgroups.HierarchyMountPoints, h => Assert.True(Directory.Exists(h + path), h + path));
        if (!cgroups.IsUnified)
        {
            // A v1 cpuset cgroup is unusable until it has CPUs and memory nodes.
            Assert.NotEqual("", File.ReadAllText($"/sys/fs/cgroup/cpuset{path}/cpuset.cpus").Trim());
            Assert.NotEqual("", File.ReadAllText($"/sys/fs/cgroup/cpuset{path}/cpuset.mems").Trim());
        }
        Assert.Empty(cgroups.Pids(path));
        Assert.Equal(0, cgroups.OomKillCount(path));

        await cgroups.KillAllAndRemoveAsync(root, TimeSpan.FromSeconds(5), CancellationToken.None);

        Assert.False(cgroups.Exists(root));
        Assert.All(cgroups.HierarchyMountPoints, h => Assert.False(Directory.Exists(h + root)));
        await cgroups.KillAllAndRemoveAsync(root, TimeSpan.FromSeconds(5), CancellationToken.None); // idempotent
    }

    [Fact]
    public void SetResources_writes_cpu_cpuset_and_memory_files()
    {
        string path = root + "/pod-res";
        cgroups.Create(path);
        var resources = new LinuxContainerResources
        {
            CpuShares = 512,
            CpuPeriod = 100_000,
            CpuQuota = 50_000,
            MemoryLimitInBytes = 64L * 1024 * 1024,
            CpusetCpus = "0",
            CpusetMems = "0",
        };
        cgroups.SetResources(path, resources);
        cgroups.SetResources(path, null); // nothing

        if (cgroups.IsUnified)
        {
            string dir = "/sys/fs/cgroup" + path;
            Assert.Equal("20", Read(dir, "cpu.weight"));
            Assert.Equal("50000 100000", Read(dir, "cpu.max"));
            Assert.Equal("67108864", Read(dir, "memory.max"));
            Assert.Equal("0", Read(dir, "cpuset.cpus"));
        }
        else
        {
            Assert.Equal("512", Read("/sys/fs/cgroup/cpu" + path, "cpu.shares"));
            Assert.Equal("100000", Read("/sys/fs/cgroup/cpu" + path, "cpu.cfs_period_us"));
            Assert.Equal("50000", Read("/sys/fs/cgroup/cpu" + path, "cpu.cfs_quota_us"));
            Assert.Equal("67108864", Read("/sys/fs/cgroup/memory" + path, "memory.limit_in_bytes"));
            Assert.Equal("0", Read("/sys/fs/cgroup/cpuset" + path, "cpuset.cpus"));
            Assert.Equal("0", Read("/sys/fs/cgroup/cpuset" + path, "cpuset.mems"));

            // Unlimited quota and a raised limit go through too.
            cgroups.SetResources(path, new LinuxContainerResources { CpuQuota = -1, MemoryLimitInBytes = 128L * 1024 * 1024 });
            Assert.Equal("-1", Read("/sys/fs/cgroup/cpu" + path, "cpu.cfs_quota_us"));
            Assert.Equal("134217728", Read("/sys/fs/cgroup/memory" + path, "memory.limit_in_bytes"));

            var unified = new LinuxContainerResources();
            unified.Unified["memory.high"] = "1G";
            Assert.Contains("cgroup v2", Assert.Throws<InvalidArgumentException>(() => cgroups.SetResources(path, unified)).Message);
        }

        Assert.Throws<InvalidArgumentException>(() => cgroups.SetResources(path, new LinuxContainerResources { CpusetCpus = "0\n1" }));
        Assert.Throws<InvalidArgumentException>(() => cgroups.SetResources(path,
            new LinuxContainerResources { HugepageLimits = { new HugepageLimit { PageSize = "2M/../x", Limit = 1 } } }));
        Assert.Contains("Create it", Assert.Throws<InvalidOperationException>(() =>
            cgroups.SetResources(root + "/never-created", new LinuxContainerResources { CpuShares = 2 })).Message);
    }

    [Fact]
    public async Task KillAllAndRemove_kills_a_process_and_its_forked_children()
    {
        string path = root + "/burstable/pod-kill";
        cgroups.Create(path);

        // unshare makes the shell the init of a new pid namespace, so the sleeps it forks are reaped by the
        // kernel when it dies instead of lingering as zombies under this host's (non-reaping) pid 1.
        var launcher = Start("/usr/bin/unshare", "--pid", "--fork", "--kill-child", "/usr/bin/busybox", "sh", "-c",
            "read go; /usr/bin/busybox sleep 1000 & /usr/bin/busybox sleep 1000 & exec /usr/bin/busybox sleep 1000");
        int shell = await ChildOf(launcher.Id);
        cgroups.AddProcess(path, shell);
        Assert.Equal([shell], cgroups.Pids(path));
        await launcher.StandardInput.WriteLineAsync("go");
        await launcher.StandardInput.FlushAsync();

        // The shell forks two sleeps inside the cgroup, then becomes the third.
        var pids = await WaitFor(() => cgroups.Pids(path), p => p.Count == 3);
        Assert.Contains(shell, pids);
        Assert.All(cgroups.HierarchyMountPoints, h =>
            Assert.Equal(3, File.ReadAllLines(h + path + "/cgroup.procs").Length));  // children inherit every hierarchy

        var usage = cgroups.ReadUsage(path);
        Assert.NotNull(usage);
        Assert.Equal(3UL, usage.Pids);
        Assert.True(usage.CpuUsageNanoseconds > 0, "the forks and exec used some CPU");
        Assert.True(usage.MemoryUsageBytes > 0, "the children's pages are charged here");
        Assert.True(usage.MemoryWorkingSetBytes <= usage.MemoryUsageBytes);
        Assert.Equal(3UL, cgroups.ReadUsage(root)!.Pids); // the parent counts its subtree

        await cgroups.KillAllAndRemoveAsync(root, TimeSpan.FromSeconds(10), CancellationToken.None);

        Assert.All(pids, pid => Assert.False(IsLive(pid), $"pid {pid} survived"));
        Assert.All(cgroups.HierarchyMountPoints, h => Assert.False(Directory.Exists(h + root), h + root));
        await launcher.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Refuses_to_kill_a_cgroup_holding_this_process()
    {
        // The daemon's own cgroup (in any hierarchy) must never be a kill target.
        string? own = File.ReadAllLines("/proc/self/cgroup").Select(l => l.Split(':', 3)[2]).FirstOrDefault(p => p != "/");
        bool moved = own is null;
        if (moved)
        {
            // This process sits in the root cgroup of every hierarchy (a plain machine without systemd or a
            // container manager): put it into a cgroup of its own for the check, and back into the root after.
            own = root + "/self";
            cgroups.Create(own);
            cgroups.AddProcess(own, Environment.ProcessId);
        }
        try
        {
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
                cgroups.KillAllAndRemoveAsync(own!, TimeSpan.FromSeconds(1), CancellationToken.None));
            Assert.Contains(Environment.ProcessId.ToString(), e.Message);
            Assert.True(Signals.Exists(Environment.ProcessId));
            Assert.True(cgroups.Exists(own!), "the refused cgroup was left in place");
        }
        finally
        {
            if (moved)
                foreach (string hierarchy in cgroups.HierarchyMountPoints)
                    File.WriteAllText(Path.Combine(hierarchy, "cgroup.procs"), Environment.ProcessId.ToString());
        }
    }

    [Fact]
    public async Task Memory_limit_triggers_the_oom_killer_and_is_counted()
    {
        string path = root + "/pod-oom";
        cgroups.Create(path);
        cgroups.SetResources(path, new LinuxContainerResources { MemoryLimitInBytes = 8L * 1024 * 1024, MemorySwapLimitInBytes = 8L * 1024 * 1024 });
        var hog = Start("/usr/bin/busybox", "sh", "-c", "read go; exec /usr/bin/busybox dd if=/dev/zero of=/dev/null bs=64M count=1");
        cgroups.AddProcess(path, hog.Id);
        await hog.StandardInput.WriteLineAsync("go");
        await hog.StandardInput.FlushAsync();
        await hog.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(137, hog.ExitCode); // SIGKILL from the OOM killer
        Assert.True(cgroups.OomKillCount(path) >= 1);
        Assert.Equal(0, cgroups.OomKillCount(root + "/missing"));
    }

    [Fact]
    public async Task Usage_reports_memory_details_limit_and_page_faults()
    {
        string path = root + "/pod-mem";
        cgroups.Create(path);
        cgroups.SetResources(path, new LinuxContainerResources { MemoryLimitInBytes = 256L * 1024 * 1024 });
        // Holds 16 MiB of anonymous memory (a shell variable) until told to go.
        var holder = Start("/usr/bin/busybox", "sh", "-c",
            "read go; x=$(/usr/bin/busybox head -c 16777216 /dev/zero | /usr/bin/busybox tr '\\0' a); echo held; read done");
        cgroups.AddProcess(path, holder.Id);
        await holder.StandardInput.WriteLineAsync("go");
        await holder.StandardInput.FlushAsync();
        Assert.Equal("held", await holder.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20)));

        var usage = cgroups.ReadUsage(path)!;
        Assert.Equal(256UL * 1024 * 1024, usage.MemoryLimitBytes);
        Assert.True(usage.MemoryRssBytes >= 16UL * 1024 * 1024, $"rss {usage.MemoryRssBytes} holds the 16 MiB string");
        Assert.True(usage.MemoryUsageBytes >= usage.MemoryRssBytes, $"usage {usage.MemoryUsageBytes} >= rss {usage.MemoryRssBytes}");
        Assert.True(usage.PageFaults > 4096, $"page faults {usage.PageFaults}: every new page faults once");
        Assert.True(usage.MajorPageFaults <= usage.PageFaults);
        // Without a limit of its own the parent reports none.
        Assert.Null(cgroups.ReadUsage(root)!.MemoryLimitBytes);

        await holder.StandardInput.WriteLineAsync("done");
        await holder.StandardInput.FlushAsync();
        await holder.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData("relative/path")]
    [InlineData("/a/../b")]
    [InlineData("/")]
    [InlineData("/a/./b")]
    public async Task Bad_paths_are_refused(string path)
    {
        Assert.Throws<InvalidArgumentException>(() => cgroups.Create(path));
        await Assert.ThrowsAsync<InvalidArgumentException>(() => cgroups.KillAllAndRemoveAsync(path, TimeSpan.FromSeconds(1), CancellationToken.None));
    }

    [Fact]
    public async Task Missing_cgroup_is_fine_to_remove()
    {
        await cgroups.KillAllAndRemoveAsync(root + "/never/was", TimeSpan.FromSeconds(1), CancellationToken.None);
        Assert.Empty(cgroups.Pids(root + "/never/was"));
    }

    private Process Start(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        started.Add(p);
        return p;
    }

    private static async Task<int> ChildOf(int pid)
    {
        var children = await WaitFor(
            () => File.ReadAllText($"/proc/{pid}/task/{pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries),
            c => c.Length == 1);
        return int.Parse(children[0]);
    }

    private static async Task<T> WaitFor<T>(Func<T> read, Func<T, bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var value = read();
            if (done(value)) return value;
            if (DateTime.UtcNow > deadline) Assert.Fail($"condition not reached within 10s; last value: {value}");
            await Task.Delay(20);
        }
    }

    /// <summary>Exists and is not a zombie.</summary>
    private static bool IsLive(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException) { return false; }
    }

    private static string Read(string dir, string file) => File.ReadAllText(Path.Combine(dir, file)).Trim();
}
