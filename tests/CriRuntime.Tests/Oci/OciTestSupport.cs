using System.Security.Cryptography;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Oci;
using CriRuntime.TestSupport;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Oci;

/// <summary>A busybox rootfs in a fresh directory: /bin/busybox with applet links, /etc/passwd and /etc/group.</summary>
internal static class TestRootfs
{
    public static void Create(string dir, string extraGroups = "")
    {
        foreach (string d in new[] { "bin", "dev", "etc", "proc", "sys", "tmp", "root", "home/app" })
            Directory.CreateDirectory(Path.Combine(dir, d));
        File.WriteAllBytes(Path.Combine(dir, "bin/busybox"), TestImages.BusyboxBytes);
        Files.Chmod(Path.Combine(dir, "bin/busybox"), Convert.ToInt32("755", 8));
        foreach (string applet in TestImages.Applets.Append("kill").Distinct())
            Files.Symlink("busybox", Path.Combine(dir, "bin", applet));
        File.WriteAllText(Path.Combine(dir, "etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
        File.WriteAllText(Path.Combine(dir, "etc/group"), "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n" + extraGroups);
    }
}

/// <summary>
/// One test's world for real runtime tests: a scratch directory, a runtime with its own --root, a unique
/// cgroup parent, and tracking of every container so Dispose removes containers, conmons, cgroups and files
/// even when the test failed.
/// </summary>
internal sealed class RuntimeTestContext : IAsyncDisposable
{
    private readonly List<string> ids = [];
    private readonly List<int> conmonPids = [];

    public RuntimeTestContext(string runtimeName)
    {
        if (Environment.UserName != "root") Assert.Fail("runtime tests need root");
        Suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5));
        Base = Path.Combine("/var/tmp/criruntime-tests", $"oci-{Suffix}");
        Directory.CreateDirectory(Base);
        string binary = runtimeName switch { "runc" => "/usr/sbin/runc", "crun" => "/usr/bin/crun", _ => throw new ArgumentException(runtimeName) };
        Runtime = new OciRuntime(runtimeName, binary, Path.Combine(Base, "state"), NullLogger.Instance);
        Conmon = new Conmon("/usr/bin/conmon", NullLogger.Instance);
        CgroupParent = $"/criruntime-test-{Suffix}";
        ExitDir = Path.Combine(Base, "exits");
        Directory.CreateDirectory(ExitDir);
    }

    public string Suffix { get; }
    public string Base { get; }
    public OciRuntime Runtime { get; }
    public Conmon Conmon { get; }
    public string CgroupParent { get; }
    public string ExitDir { get; }

    public string NewId(string name) => $"{name}-{Suffix}-{ids.Count}";

    public string Bundle(string id) => Path.Combine(Base, id);

    public string LogPath(string id) => Path.Combine(Base, id, "ctr.log");

    /// <summary>Builds a bundle whose spec runs <paramref name="command"/> in a new mount and PID namespace
    /// (host net/ipc/uts), in cgroup &lt;parent&gt;/&lt;id&gt;.</summary>
    public string PrepareBundle(string id, params string[] command) => PrepareBundle(id, null, command);

    /// <summary>As <see cref="PrepareBundle(string, string[])"/>, with the ContainerConfig changed by <paramref name="configure"/> first.</summary>
    public string PrepareBundle(string id, Action<ContainerConfig>? configure, string[] command)
    {
        ids.Add(id);
        string bundle = Bundle(id);
        string rootfs = Path.Combine(bundle, "rootfs");
        TestRootfs.Create(rootfs);
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = id }, Command = { command } };
        configure?.Invoke(config);
        var spec = RuntimeSpecBuilder.BuildContainer(new ContainerSpecInput
        {
            Id = id,
            Config = config,
            PodConfig = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "pod", Namespace = "default", Uid = "uid-" + Suffix } },
            Image = new ImageRuntimeConfig { Env = ["PATH=" + TestImages.PathEnv] },
            RootfsPath = rootfs,
            PidMode = PidNamespaceMode.Container,
            CgroupsPath = $"{CgroupParent}/{id}",
            Hostname = "test-host",
        });
        RuntimeSpecBuilder.WriteBundle(bundle, spec);
        return bundle;
    }

    public Task<ConmonCreateResult> CreateAsync(string id, params string[] command) => CreateAsync(id, null, command);

    public async Task<ConmonCreateResult> CreateAsync(string id, Action<ContainerConfig>? configure, string[] command)
    {
        string bundle = PrepareBundle(id, configure, command);
        var result = await Conmon.CreateContainerAsync(new ConmonCreateRequest
        {
            Id = id, Runtime = Runtime, BundleDir = bundle, LogPath = LogPath(id), ExitDir = ExitDir,
        }, CancellationToken.None);
        conmonPids.Add(result.ConmonPid);
        return result;
    }

    public Task<ConmonCreateResult> RunAsync(string id, params string[] command) => RunAsync(id, null, command);

    public async Task<ConmonCreateResult> RunAsync(string id, Action<ContainerConfig>? configure, string[] command)
    {
        var created = await CreateAsync(id, configure, command);
        await Runtime.StartAsync(id, CancellationToken.None);
        return created;
    }

    public async Task<int> WaitForExitAsync(string id, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(20));
        while (DateTime.UtcNow < deadline)
        {
            if (ExitFiles.TryRead(ExitDir, id, out int code, out _)) return code;
            await Task.Delay(20);
        }
        Assert.Fail($"container {id} did not exit (no exit file) in time");
        return -1;
    }

    public static async Task<string> WaitForLogAsync(string path, Func<string, bool> done, TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(10));
        string text = "";
        while (DateTime.UtcNow < deadline)
        {
            text = File.Exists(path) ? await File.ReadAllTextAsync(path) : "";
            if (done(text)) return text;
            await Task.Delay(20);
        }
        Assert.Fail($"log {path} never got what the test waits for; it has:\n{text}");
        return text;
    }

    /// <summary>Every pid in the container's cgroup (pids controller).</summary>
    public IReadOnlyList<int> CgroupPids(string id)
    {
        string file = $"/sys/fs/cgroup/pids{CgroupParent}/{id}/cgroup.procs";
        return File.ReadAllLines(file).Where(l => l.Length > 0).Select(int.Parse).ToList();
    }

    /// <summary>conmon processes whose command line names this container id.</summary>
    public static IReadOnlyList<int> ConmonsFor(string id)
    {
        var result = new List<int>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (args.Length > 0 && Path.GetFileName(args[0]) == "conmon" && args.Contains(id)) result.Add(pid);
            }
            catch (IOException) { }
        }
        return result;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (string id in ids)
        {
            try { await Runtime.DeleteAsync(id, force: true, CancellationToken.None); }
            catch (Exception) { /* keep cleaning */ }
            foreach (int pid in ConmonsFor(id)) Signals.Kill(pid, Signals.SIGKILL);
        }
        foreach (int pid in conmonPids)
            if (File.Exists($"/proc/{pid}/comm") && File.ReadAllText($"/proc/{pid}/comm").Trim() == "conmon") Signals.Kill(pid, Signals.SIGKILL);
        // Give conmons a moment to go, then remove cgroups leaf-first.
        await Task.Delay(50);
        // Every mounted hierarchy (the set differs between hosts: hugetlb, net_cls, unified, ...).
        foreach (string hierarchy in Directory.EnumerateDirectories("/sys/fs/cgroup"))
        {
            string parent = hierarchy + CgroupParent;
            if (!Directory.Exists(parent)) continue;
            foreach (string child in Directory.EnumerateDirectories(parent, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length))
                TryRmdir(child);
            TryRmdir(parent);
        }
        foreach (var mount in Mounts.ReadMountInfo().Select(m => m.MountPoint)
                     .Where(m => m == Base || m.StartsWith(Base + "/", StringComparison.Ordinal))
                     .OrderByDescending(m => m.Length))
            Mounts.TryUnmount(mount, UnmountFlags.Detach);
        Files.RemoveTree(Base);
    }

    private static void TryRmdir(string dir)
    {
        for (int i = 0; i < 50; i++)
        {
            try { Directory.Delete(dir); return; }
            catch (IOException) when (Directory.Exists(dir)) { Thread.Sleep(20); }
            catch (DirectoryNotFoundException) { return; }
        }
    }
}
