using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Issue #11, items 1 and 8, on the real daemon started as the systemd unit starts it (umask 077): an unprivileged
/// host user (uid 65534 through setpriv) learns nothing of a running container (its config.json with a secret in its
/// environment, the layers, the writable layer with a set-uid file the container made), while containers still work
/// as they did: a non-root container user reaches a volume below directories runc had to make, exec'd processes get
/// umask 022, and a container sees its own cgroup namespace.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class SecureDefaultsTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private const int Nobody = 65534;

    protected override string? DaemonUmask => "077";

    [Fact]
    public async Task An_unprivileged_host_user_reaches_nothing_of_a_running_container()
    {
        var daemon = await StartPodDaemonAsync();
        // The test's base dir is 0700 (a temp dir); open it as /var/lib and /run are, so only the daemon's modes protect.
        File.SetUnixFileMode(daemon.BaseDir, FileModes755);
        string secret = "s3cr3t-" + Guid.NewGuid().ToString("N");

        var pod = await RunPodAsync("secure-defaults");
        string id = await CreateAndStartAsync(pod, "holder",
            Sh("mkdir -p /tmp && cp /bin/busybox /tmp/sx && chmod 4755 /tmp/sx && touch /tmp/made && sleep 3600"),
            c => c.Envs.Add(new Runtime.V1.KeyValue { Key = "API_TOKEN", Value = Google.Protobuf.ByteString.CopyFromUtf8(secret) }));
        await WaitUntilAsync(async () => (await ExecSyncAsync(id, ["test", "-e", "/tmp/made"])).ExitCode == 0, "the container made its set-uid file");

        string bundleConfig = Path.Combine(daemon.State, "containers", id, "config.json");
        string upperFile = Path.Combine(daemon.Root, "containers", id, "upper", "tmp", "sx");
        Assert.Contains(secret, File.ReadAllText(bundleConfig)); // the file the probe must not read does hold the secret
        Assert.True(File.Exists(upperFile), $"{upperFile} is where the container's set-uid file lands");

        // A control: the same user reads a file that is open to it, so each refusal below is the modes' doing.
        string open = Path.Combine(daemon.BaseDir, "open-to-all");
        await File.WriteAllTextAsync(open, "ok");
        File.SetUnixFileMode(open, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var control = await AsNobodyAsync("cat", open);
        Assert.True(control.ExitCode == 0 && control.Stdout == "ok", $"setpriv control failed: {control}");

        foreach (var (what, args) in new (string, string[])[]
        {
            ("read the bundle's config.json", ["cat", bundleConfig]),
            ("list root/overlay", ["ls", Path.Combine(daemon.Root, "overlay")]),
            ("list root/containers", ["ls", Path.Combine(daemon.Root, "containers")]),
            ("reach the set-uid file in the upper dir", ["stat", upperFile]),
            ("run the set-uid file in the upper dir", [upperFile, "id"]),
            ("list root", ["ls", daemon.Root]),
            ("read the image index", ["cat", Path.Combine(daemon.Root, "images", "images.json")]),
            ("list the container records", ["ls", Path.Combine(daemon.Root, "containers", "records")]),
            ("list the bundles", ["ls", Path.Combine(daemon.State, "containers")]),
            ("list state", ["ls", daemon.State]),
            ("reach the rootfs mount", ["ls", Path.Combine(daemon.State, "containers", id, "rootfs", "tmp")]),
        })
        {
            var result = await AsNobodyAsync(args);
            Assert.True(result.ExitCode != 0, $"uid {Nobody} could {what}: {result}");
        }
        // Nothing under root or state that this user can read holds the secret.
        var grep = await AsNobodyAsync("grep", "-rl", secret, daemon.Root, daemon.State);
        Assert.True(grep.Stdout.Trim().Length == 0, $"uid {Nobody} found the secret in: {grep.Stdout}");

        // The modes themselves, as the issue states them.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(daemon.Root));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute,
            File.GetUnixFileMode(daemon.State));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(bundleConfig));
        foreach (string record in Directory.GetFiles(Path.Combine(daemon.Root, "containers", "records")).Concat(Directory.GetFiles(Path.Combine(daemon.Root, "pods"))))
            Assert.True(File.GetUnixFileMode(record) == (UnixFileMode.UserRead | UnixFileMode.UserWrite), $"{record} is {File.GetUnixFileMode(record)}");
        // The host's copy of the rootfs mount honours neither set-uid bits nor device nodes.
        string hostOptions = MountOptions(File.ReadAllText("/proc/self/mountinfo"), Path.Combine(daemon.State, "containers", id, "rootfs"));
        Assert.True(hostOptions.Split(',').Contains("nosuid") && hostOptions.Split(',').Contains("nodev"), $"host-side rootfs mount options: {hostOptions}");
        // The socket keeps its deliberate 0660 in a directory its group can pass through.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(daemon.Socket));
    }

    [Fact]
    public async Task Containers_work_as_before_under_the_daemons_umask_077()
    {
        await StartPodDaemonAsync();
        string volume = TempDir("criruntime-vol-");
        File.SetUnixFileMode(volume, FileModes755);
        await File.WriteAllTextAsync(Path.Combine(volume, "f"), "from the host");
        File.SetUnixFileMode(Path.Combine(volume, "f"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var pod = await RunPodAsync("umask");
        // /deep/er does not exist in the image: runc makes it, before it sets the container's umask.
        string id = await CreateAndStartAsync(pod, "nonroot", ["sleep", "3600"], c =>
        {
            c.Linux.SecurityContext.RunAsUser = new Int64Value { Value = Nobody };
            c.Mounts.Add(new Mount { HostPath = volume, ContainerPath = "/deep/er/vol", Readonly = true });
        });
        Assert.Equal("from the host", await ExecOkAsync(id, "cat", "/deep/er/vol/f"));
        Assert.Equal("0022", (await ExecOkAsync(id, "sh", "-c", "umask")).Trim());
        Assert.Equal("0022", (await ExecOkAsync(id, "cat", "/proc/1/status")).Split('\n').Single(l => l.StartsWith("Umask:", StringComparison.Ordinal)).Split(':')[1].Trim());
        // Inside, "/" keeps set-uid and devices (allowPrivilegeEscalation works as under containerd).
        string inside = MountOptions(await ExecOkAsync(id, "cat", "/proc/self/mountinfo"), "/");
        Assert.False(inside.Split(',').Contains("nosuid") || inside.Split(',').Contains("nodev"), $"the container's / is mounted {inside}");
        // The container's "/" is 0755 as in its image, not the daemon's 0700.
        Assert.Equal("755", (await ExecOkAsync(id, "busybox", "stat", "-c", "%a", "/")).Trim());
        // Item 8: on cgroup v2 a cgroup namespace of its own; on v1 (as containerd 2.x) the host's.
        string hostCgroupns = NamespaceOf("/proc/self/ns/cgroup");
        string containerCgroupns = NamespaceOf($"/proc/{await ContainerPidAsync(id)}/ns/cgroup");
        if (File.Exists("/sys/fs/cgroup/cgroup.controllers"))
        {
            Assert.NotEqual(hostCgroupns, containerCgroupns);
            Assert.Equal("0::/", (await ExecOkAsync(id, "cat", "/proc/self/cgroup")).Trim());
        }
        else
        {
            Output.WriteLine("cgroup v1 host: a container keeps the host's cgroup namespace; the v2 case is covered by LsmSpecTests");
            Assert.Equal(hostCgroupns, containerCgroupns);
        }
    }

    [Fact]
    public async Task A_privileged_container_keeps_the_hosts_cgroup_namespace()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("cgroupns-priv", c => c.Linux.SecurityContext.Privileged = true);
        string id = await CreateAndStartAsync(pod, "priv", ["sleep", "3600"], c => c.Linux.SecurityContext.Privileged = true);
        Assert.Equal(NamespaceOf("/proc/self/ns/cgroup"), NamespaceOf($"/proc/{await ContainerPidAsync(id)}/ns/cgroup"));
        Assert.NotEqual("0::/", (await ExecOkAsync(id, "cat", "/proc/self/cgroup")).Trim());
    }

    private const UnixFileMode FileModes755 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    /// <summary>The per-mount options of the (last) mount at <paramref name="mountPoint"/> in a mountinfo text.</summary>
    private static string MountOptions(string mountinfo, string mountPoint) =>
        mountinfo.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).Last(f => f[4] == mountPoint)[5];

    /// <summary>The namespace a /proc/PID/ns/ link names, e.g. "cgroup:[4026531835]".</summary>
    private static string NamespaceOf(string link) => new FileInfo(link).LinkTarget ?? throw new InvalidOperationException($"{link} is not a link");

    private static Task<HostCommand.Result> AsNobodyAsync(params string[] command) =>
        HostCommand.RunAsync("setpriv", ["--reuid=" + Nobody, "--regid=" + Nobody, "--clear-groups", "--", .. command]);

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + StateTimeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting until {what}");
            await Task.Delay(100);
        }
    }
}
