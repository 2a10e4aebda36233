using System.Text.Json.Nodes;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Image VOLUMEs (issue #10 item 3): each path in the image config's Volumes is a writable directory of the
/// container's own, seeded with the image's content there (postgres, redis and mongo with readOnlyRootFilesystem).
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class ImageVolumeTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private const int DataUid = 999;

    /// <summary>
    /// Busybox with VOLUME /data (owned 999:999, mode 0750, holding seed.txt, a nested dir and a symlink to the
    /// node's /etc that must stay a symlink) and VOLUME /fresh, which the image does not have.
    /// </summary>
    private async Task<string> PushVolumeImageAsync()
    {
        var layer = new LayerBuilder()
            .AddDirectory("data", LayerBuilder.Oct("750"), DataUid, DataUid)
            .AddFile("data/seed.txt", "seeded by the image\n", LayerBuilder.Oct("640"), DataUid, DataUid)
            .AddDirectory("data/nested", uid: DataUid, gid: DataUid)
            .AddFile("data/nested/deep.txt", "deep\n")
            .AddSymlink("data/etc-link", "/etc");
        var image = TestImages.BusyboxImageBuilder("volumes")
            .AddLayer(layer, "VOLUME /data with a seed")
            .WithVolume("/data")
            .WithVolume("/fresh")
            .Build();
        string repo = RegistryFixture.UniqueRepo("volumes");
        await RegistryPusher.PushAsync(Registry.Registry, repo, "v1", image);
        string reference = Registry.Ref($"{repo}:v1");
        await PullAsync(Daemon, reference);
        return reference;
    }

    private static void ReadOnlyRootfs(ContainerConfig c) => c.Linux.SecurityContext.ReadonlyRootfs = true;

    [Fact]
    public async Task Copy_ReadOnlyRootfs_VolumeIsWritableAndSeeded_AndGoesWithTheContainer()
    {
        await StartPodDaemonAsync();
        string image = await PushVolumeImageAsync();
        var pod = await RunPodAsync("imgvol-copy");
        string id = await CreateAndStartAsync(pod.Id, pod.Config, "db", image, ["sleep", "3600"], configure: ReadOnlyRootfs);

        Assert.Equal("seeded by the image\n", await ExecOkAsync(id, "cat", "/data/seed.txt"));
        Assert.Equal("deep\n", await ExecOkAsync(id, "cat", "/data/nested/deep.txt"));
        Assert.Equal("written\n", await ExecOkAsync(id, "sh", "-c", "echo written > /data/new.txt && cat /data/new.txt"));
        Assert.Equal("fresh\n", await ExecOkAsync(id, "sh", "-c", "echo fresh > /fresh/f && cat /fresh/f"));
        // The rootfs itself stays read-only: the volumes are what is writable.
        var rootfsWrite = await ExecSyncAsync(id, Sh("echo x > /not-a-volume"));
        Assert.NotEqual(0, rootfsWrite.ExitCode);
        // Owner and mode of the image's directory and file are kept.
        Assert.Equal($"{DataUid}:{DataUid} 750\n", await ExecOkAsync(id, "busybox", "stat", "-c", "%u:%g %a", "/data"));
        Assert.Equal($"{DataUid}:{DataUid} 640\n", await ExecOkAsync(id, "busybox", "stat", "-c", "%u:%g %a", "/data/seed.txt"));

        // On the node: the volumes live in the container's own directory; the symlink was copied as a symlink.
        string containerDir = Path.Combine(Daemon.Root, "containers", id);
        string volumes = Path.Combine(containerDir, "volumes");
        var volumeDirs = Directory.GetDirectories(volumes);
        Assert.Equal(2, volumeDirs.Length);
        string data = volumeDirs.Single(d => File.Exists(Path.Combine(d, "seed.txt")));
        Assert.Equal("/etc", new FileInfo(Path.Combine(data, "etc-link")).LinkTarget);
        Assert.Equal("written\n", File.ReadAllText(Path.Combine(data, "new.txt")));

        await StopContainerAsync(id, 0);
        await RemoveContainerAsync(id);
        Assert.False(Directory.Exists(containerDir), $"{containerDir} (with the container's volumes) is still there after RemoveContainer");
    }

    [Fact]
    public async Task CriMountAtTheSamePath_Wins()
    {
        await StartPodDaemonAsync();
        string image = await PushVolumeImageAsync();
        string hostDir = TempDir("criruntime-imgvol-host-");
        File.WriteAllText(Path.Combine(hostDir, "from-host.txt"), "host\n");
        var pod = await RunPodAsync("imgvol-crimount");
        string id = await CreateAndStartAsync(pod.Id, pod.Config, "db", image, ["sleep", "3600"], configure: c =>
        {
            ReadOnlyRootfs(c);
            c.Mounts.Add(new Mount { ContainerPath = "/data", HostPath = hostDir });
        });
        Assert.Equal("host\n", await ExecOkAsync(id, "cat", "/data/from-host.txt"));
        Assert.NotEqual(0, (await ExecSyncAsync(id, ["cat", "/data/seed.txt"])).ExitCode);
        // Only /fresh got a volume directory.
        Assert.Single(Directory.GetDirectories(Path.Combine(Daemon.Root, "containers", id, "volumes")));
    }

    [Fact]
    public async Task Mkdir_GivesAnEmptyWritableDirectory()
    {
        await StartPodDaemonAsync(runtimeKeys: "image_volumes = \"mkdir\"");
        string image = await PushVolumeImageAsync();
        var pod = await RunPodAsync("imgvol-mkdir");
        string id = await CreateAndStartAsync(pod.Id, pod.Config, "db", image, ["sleep", "3600"], configure: ReadOnlyRootfs);
        Assert.Equal("", await ExecOkAsync(id, "ls", "-A", "/data"));
        Assert.Equal("written\n", await ExecOkAsync(id, "sh", "-c", "echo written > /data/new.txt && cat /data/new.txt"));
        // Still the image directory's owner and mode.
        Assert.Equal($"{DataUid}:{DataUid} 750\n", await ExecOkAsync(id, "busybox", "stat", "-c", "%u:%g %a", "/data"));
    }

    [Fact]
    public async Task Ignore_LeavesThePathInTheReadOnlyRootfs()
    {
        await StartPodDaemonAsync(runtimeKeys: "image_volumes = \"ignore\"");
        string image = await PushVolumeImageAsync();
        var pod = await RunPodAsync("imgvol-ignore");
        string id = await CreateAndStartAsync(pod.Id, pod.Config, "db", image, ["sleep", "3600"], configure: ReadOnlyRootfs);
        Assert.Equal("seeded by the image\n", await ExecOkAsync(id, "cat", "/data/seed.txt"));
        Assert.NotEqual(0, (await ExecSyncAsync(id, Sh("echo x > /data/new.txt"))).ExitCode);
        Assert.False(Directory.Exists(Path.Combine(Daemon.Root, "containers", id, "volumes")));
    }

    /// <summary>The same through stock crictl v1.26.1 (grpc-go), which can ask for a read-only rootfs.</summary>
    [Fact]
    public async Task StockCrictl_ReadOnlyRootfs_WritesInTheSeededVolume()
    {
        string crictl = StockCriTools.Crictl;
        await StartPodDaemonAsync();
        string image = await PushVolumeImageAsync();
        string dir = TempDir("criruntime-crictl-imgvol-");
        string crictlConfig = Path.Combine(dir, "crictl.yaml");
        File.WriteAllText(crictlConfig, $"runtime-endpoint: unix://{Daemon.Socket}\nimage-endpoint: unix://{Daemon.Socket}\ntimeout: 60\npull-image-on-create: false\n");
        async Task<HostCommand.Result> Crictl(params string[] args)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            var run = await HostCommand.RunAsync(crictl, ["--config", crictlConfig, .. args], cancellationToken: timeout.Token);
            Output.WriteLine($"$ crictl {string.Join(' ', args)}  (exit {run.ExitCode})\n{run.Stdout.TrimEnd()}\n{run.Stderr.TrimEnd()}");
            return run;
        }
        async Task<string> CrictlOk(params string[] args)
        {
            var run = await Crictl(args);
            if (run.ExitCode != 0) throw Failure($"crictl {string.Join(' ', args)} exited {run.ExitCode}\nstdout: {run.Stdout}\nstderr: {run.Stderr}");
            return run.Stdout;
        }

        var podConfig = NewPodConfig("crictl-imgvol");
        // network=POD(0), pid=CONTAINER(1), ipc=POD(0); crictl reads JSON into the Go structs (snake_case, enums as numbers).
        JsonObject Namespaces() => new() { ["network"] = 0, ["pid"] = 1, ["ipc"] = 0 };
        string podJson = Path.Combine(dir, "pod.json");
        File.WriteAllText(podJson, new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = podConfig.Metadata.Name, ["uid"] = podConfig.Metadata.Uid, ["namespace"] = podConfig.Metadata.Namespace, ["attempt"] = 0 },
            ["hostname"] = podConfig.Hostname,
            ["log_directory"] = podConfig.LogDirectory,
            ["linux"] = new JsonObject { ["cgroup_parent"] = podConfig.Linux.CgroupParent, ["security_context"] = new JsonObject { ["namespace_options"] = Namespaces() } },
        }.ToJsonString());
        Directory.CreateDirectory(Path.Combine(podConfig.LogDirectory, "db"));
        string containerJson = Path.Combine(dir, "container.json");
        File.WriteAllText(containerJson, new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = "db", ["attempt"] = 0 },
            ["image"] = new JsonObject { ["image"] = image },
            ["command"] = new JsonArray("sleep", "3600"),
            ["log_path"] = "db/0.log",
            ["linux"] = new JsonObject
            {
                ["security_context"] = new JsonObject { ["readonly_rootfs"] = true, ["namespace_options"] = Namespaces() },
            },
        }.ToJsonString());

        TrackPod(podConfig.Metadata.Uid);
        string podId = (await CrictlOk("runp", podJson)).Trim();
        TrackPod(podConfig.Metadata.Uid, podId);
        string id = (await CrictlOk("create", podId, containerJson, podJson)).Trim();
        await CrictlOk("start", id);

        string seeded = await CrictlOk("exec", "-s", id, "sh", "-c", "cat /data/seed.txt && echo written > /data/new.txt && cat /data/new.txt");
        Assert.StartsWith("seeded by the image\nwritten\n", seeded, StringComparison.Ordinal);
        Assert.NotEqual(0, (await Crictl("exec", "-s", id, "sh", "-c", "echo x > /not-a-volume")).ExitCode);

        await CrictlOk("rm", "-f", id);
        Assert.False(Directory.Exists(Path.Combine(Daemon.Root, "containers", id)), "the container's directory (with its volumes) is still there after crictl rm");
        await CrictlOk("stopp", podId);
        await CrictlOk("rmp", podId);
    }
}
