using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Image mounts (issue #10 item 6; CRI Mount.image, the ImageVolume feature): an image mounted read-only at a
/// container path, or one of its sub paths, pinned while a container uses it.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class ImageMountTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    /// <summary>
    /// An artifact image of two layers (so its mount is a real overlay): /artifact/hello.txt; then
    /// /artifact/sub/deep.txt, /artifact/to-sub -> /artifact/sub (absolute, meant inside the image) and
    /// /artifact/up -> ../../../../etc (which inside the image is its /etc, and it has none).
    /// </summary>
    private async Task<string> PushArtifactImageAsync()
    {
        var first = new LayerBuilder()
            .AddDirectory("artifact")
            .AddFile("artifact/hello.txt", "hello from the artifact\n");
        var second = new LayerBuilder()
            .AddDirectory("artifact/sub")
            .AddFile("artifact/sub/deep.txt", "deep\n")
            .AddSymlink("artifact/to-sub", "/artifact/sub")
            .AddSymlink("artifact/up", "../../../../etc");
        var image = new ImageBuilder()
            .WithPlatform(Platform.Host)
            .AddLayer(first, "artifact")
            .AddLayer(second, "artifact sub dir and links")
            .Build();
        string repo = RegistryFixture.UniqueRepo("artifact");
        await RegistryPusher.PushAsync(Registry.Registry, repo, "v1", image);
        string reference = Registry.Ref($"{repo}:v1");
        return await PullAsync(Daemon, reference);
    }

    private static Action<ContainerConfig> MountImage(string image, string containerPath, string subPath = "") => c =>
        c.Mounts.Add(new Mount { ContainerPath = containerPath, Image = new ImageSpec { Image = image }, ImageSubPath = subPath });

    private Task<RpcException> ExpectCreateErrorAsync(TestPod pod, string name, StatusCode code, Action<ContainerConfig> configure)
    {
        var config = NewContainerConfig(pod.Config, name, BusyboxImage, ["sleep", "3600"]);
        configure(config);
        return ExpectErrorAsync(code, $"CreateContainer({name})",
            dl => Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod.Id, Config = config, SandboxConfig = pod.Config }, deadline: dl));
    }

    private IReadOnlyList<string> ImageMountsOnNode() =>
        File.ReadAllLines("/proc/self/mountinfo").Select(l => l.Split(' ')[4])
            .Where(p => p.StartsWith(Daemon.State + "/", StringComparison.Ordinal) && p.Contains("/image-mounts/", StringComparison.Ordinal)).ToList();

    [Fact]
    public async Task ImageIsMountedReadOnly_WithSubPaths_AndPinnedUntilTheContainerGoes()
    {
        await StartPodDaemonAsync();
        string artifact = await PushArtifactImageAsync();
        var pod = await RunPodAsync("imgmount");
        string id = await CreateAndStartAsync(pod, "reader", ["sleep", "3600"], c =>
        {
            MountImage(artifact, "/mnt/artifact")(c);
            MountImage(artifact, "/mnt/sub", "artifact/to-sub")(c);
        });

        Assert.Equal("hello from the artifact\n", await ExecOkAsync(id, "cat", "/mnt/artifact/artifact/hello.txt"));
        Assert.Equal("deep\n", await ExecOkAsync(id, "cat", "/mnt/artifact/artifact/sub/deep.txt"));
        // The sub path's absolute symlink was resolved inside the image, not on the node.
        Assert.Equal("deep\n", await ExecOkAsync(id, "cat", "/mnt/sub/deep.txt"));
        var write = await ExecSyncAsync(id, Sh("echo x > /mnt/artifact/artifact/new.txt"));
        Assert.NotEqual(0, write.ExitCode);
        string mountOptions = await ExecOkAsync(id, "sh", "-c", "grep ' /mnt/artifact ' /proc/self/mountinfo");
        Assert.Contains("ro", mountOptions.Split(' ')[5].Split(','));
        Assert.Equal(2, ImageMountsOnNode().Count);

        // Pinned: RemoveImage refuses it while the container exists, as it refuses a container's own image.
        var refused = await ExpectRpcErrorAsync(Daemon, StatusCode.FailedPrecondition, "RemoveImage(artifact in use)",
            async () => await Daemon.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = artifact } }, deadline: Deadline()));
        Assert.Contains(id, refused.Status.Detail, StringComparison.Ordinal);

        // Still known after a daemon restart.
        var first = Daemon;
        await first.KillAsync();
        await RestartPodDaemonAsync(first);
        await ExpectRpcErrorAsync(Daemon, StatusCode.FailedPrecondition, "RemoveImage(artifact in use, after restart)",
            async () => await Daemon.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = artifact } }, deadline: Deadline()));
        Assert.Equal("hello from the artifact\n", await ExecOkAsync(id, "cat", "/mnt/artifact/artifact/hello.txt"));

        await StopContainerAsync(id, 0);
        await RemoveContainerAsync(id);
        Assert.Empty(ImageMountsOnNode());
        await CallAsync("RemoveImage(artifact, unused)",
            dl => Daemon.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = artifact } }, deadline: dl));
    }

    [Fact]
    public async Task MissingImageOrSubPath_IsRefused_NamingIt_AndLeavesNothingMounted()
    {
        await StartPodDaemonAsync();
        string artifact = await PushArtifactImageAsync();
        var pod = await RunPodAsync("imgmount-bad");

        string missing = Registry.Ref("no-such-artifact:v1");
        var e = await ExpectCreateErrorAsync(pod, "missing-image", StatusCode.NotFound, MountImage(missing, "/mnt/a"));
        Assert.Contains(missing, e.Status.Detail, StringComparison.Ordinal);

        e = await ExpectCreateErrorAsync(pod, "missing-sub", StatusCode.NotFound, MountImage(artifact, "/mnt/a", "artifact/nope"));
        Assert.Contains("artifact/nope", e.Status.Detail, StringComparison.Ordinal);

        // A symlink climbing out lands on the image's own /etc, which it does not have: never the node's.
        e = await ExpectCreateErrorAsync(pod, "climbing-link", StatusCode.NotFound, MountImage(artifact, "/mnt/a", "artifact/up"));
        Assert.Contains("artifact/up", e.Status.Detail, StringComparison.Ordinal);

        e = await ExpectCreateErrorAsync(pod, "dotdot", StatusCode.InvalidArgument, MountImage(artifact, "/mnt/a", "../etc"));
        Assert.Contains("image_sub_path", e.Status.Detail, StringComparison.Ordinal);
        e = await ExpectCreateErrorAsync(pod, "absolute", StatusCode.InvalidArgument, MountImage(artifact, "/mnt/a", "/etc"));
        Assert.Contains("image_sub_path", e.Status.Detail, StringComparison.Ordinal);
        e = await ExpectCreateErrorAsync(pod, "both", StatusCode.InvalidArgument, c =>
            c.Mounts.Add(new Mount { ContainerPath = "/mnt/a", HostPath = "/tmp", Image = new ImageSpec { Image = artifact } }));
        Assert.Contains("host_path", e.Status.Detail, StringComparison.Ordinal);

        Assert.Empty(ImageMountsOnNode());
        Assert.Empty(await ListContainersAsync());
        // Nothing pins the image after the failed creates.
        await CallAsync("RemoveImage(artifact)",
            dl => Daemon.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = artifact } }, deadline: dl));
    }
}
