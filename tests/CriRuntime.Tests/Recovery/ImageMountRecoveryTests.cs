using System.Text.Json.Nodes;
using CriRuntime.Storage;
using CriRuntime.Tests.Lifecycle;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Recovery;

/// <summary>
/// Image mounts (Mount.image) across a daemon restart, with the managers and recovery run as the daemon runs them
/// over real overlay mounts and a fake OCI runtime (needs root): the record keeps the image pinned, and what a
/// half-made or unrecorded container left mounted is unmounted before its directories go.
/// </summary>
public sealed class ImageMountRecoveryTests
{
    private static ContainerConfig WithImageMount(PodWorld world, string name)
    {
        var config = world.ContainerConfig(name);
        config.Mounts.Add(new Mount { ContainerPath = "/mnt/image", Image = new ImageSpec { Image = world.Image.Id.ToString() } });
        return config;
    }

    private static List<string> ImageMounts(PodWorld world) => world.Mounts().Where(m => m.Contains("/image-mounts/", StringComparison.Ordinal)).ToList();

    [Fact]
    public async Task The_record_pins_the_mounted_image_across_a_restart_and_removal_unmounts_it()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("pinned");
        var container = await world.Containers.CreateAsync(pod.Id, WithImageMount(world, "c"), CancellationToken.None);
        var mount = Assert.Single(container.ImageMounts!);
        Assert.Equal(world.Image.Id.ToString(), mount.ImageId);
        Assert.Equal("test\n", File.ReadAllText(Path.Combine(mount.MountPoint, "etc", "hostname")));

        await world.RestartAsync();

        Assert.Equal(container.Id, world.Containers.ContainerUsing(world.Image.Id.ToString()));
        Assert.Contains(world.Image.ChainIds[0], world.Containers.LayersInUse()!);
        await Assert.ThrowsAsync<FailedPreconditionException>(() => world.Images.RemoveAsync(world.Image.Id.ToString(), CancellationToken.None));
        Assert.Single(ImageMounts(world));

        await world.Containers.RemoveAsync(container.Id, CancellationToken.None);
        Assert.Empty(ImageMounts(world));
        Assert.False(Directory.Exists(container.Bundle));
    }

    [Fact]
    public async Task A_half_made_container_with_an_image_mount_is_undone_at_start_up()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("half");
        var container = await world.Containers.CreateAsync(pod.Id, WithImageMount(world, "c"), CancellationToken.None);
        // As if the daemon died before the record said Created.
        string record = Path.Combine(world.RootDir, "containers", "records", container.Id + ".json");
        var json = JsonNode.Parse(File.ReadAllText(record))!.AsObject();
        json["phase"] = "Creating";
        File.WriteAllText(record, json.ToJsonString());

        await world.RestartAsync();

        Assert.Null(world.Containers.Find(container.Id));
        Assert.Empty(ImageMounts(world));
        Assert.False(Directory.Exists(container.Bundle));
    }

    [Fact]
    public async Task A_leftover_bundle_without_a_record_has_its_image_mounts_unmounted_before_it_is_deleted()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("leftover");
        var container = await world.Containers.CreateAsync(pod.Id, WithImageMount(world, "c"), CancellationToken.None);
        OverlayMount.Unmount(container.Rootfs);
        File.Delete(Path.Combine(world.RootDir, "containers", "records", container.Id + ".json"));

        await world.RestartAsync();

        Assert.Empty(ImageMounts(world));
        Assert.False(Directory.Exists(container.Bundle));
        // The image's layer was never written through: its content is intact.
        Assert.True(File.Exists(Path.Combine(world.Layers.DiffDir(world.Image.ChainIds[0]), "etc", "hostname")));
    }
}
