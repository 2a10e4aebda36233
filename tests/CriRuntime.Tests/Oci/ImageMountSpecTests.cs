using CriRuntime.Containers;
using CriRuntime.Images;
using CriRuntime.Oci;
using CriRuntime.Tests.Storage;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Oci;

/// <summary>How image mounts (Mount.image) and image VOLUMEs enter a container's spec, and what is refused before.</summary>
public sealed class ImageMountSpecTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    private ContainerSpecInput Input(ContainerConfig config) => new()
    {
        Id = "c1",
        Config = config,
        PodConfig = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "u1" } },
        Image = new ImageRuntimeConfig(),
        RootfsPath = tmp["rootfs"],
        PidMode = PidNamespaceMode.Container,
        CgroupsPath = "/kubepods/podu1/c1",
        Hostname = "h1",
        SwapLimitSupported = true,
    };

    private static ContainerConfig Config(params Mount[] mounts)
    {
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" } };
        config.Mounts.Add(mounts);
        return config;
    }

    [Fact]
    public void Image_mounts_bind_their_prepared_source_read_only_noexec_and_volumes_yield_to_cri_mounts()
    {
        string source = tmp["image-mounts/0"], volume = tmp["volumes/v"], hostData = tmp["host-data"];
        foreach (var dir in new[] { source, volume, hostData }) Directory.CreateDirectory(dir);
        var config = Config(
            new Mount { ContainerPath = "/mnt/artifact", Image = new ImageSpec { Image = "artifact:v1" } },
            new Mount { ContainerPath = "/data", HostPath = hostData });
        var spec = RuntimeSpecBuilder.BuildContainer(Input(config) with
        {
            ImageMountSources = new Dictionary<int, string> { [0] = source },
            ImageVolumeMounts =
            [
                new Mount { ContainerPath = "/data", HostPath = volume },      // a CRI mount has /data: left out
                new Mount { ContainerPath = "/var/lib/db/", HostPath = volume },
            ],
        });

        var artifact = Assert.Single(spec.Mounts, m => m.Destination == "/mnt/artifact");
        Assert.Equal(source, artifact.Source);
        Assert.Equal(["rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"], artifact.Options!);
        var data = Assert.Single(spec.Mounts, m => m.Destination == "/data");
        Assert.Equal(hostData, data.Source);
        var db = Assert.Single(spec.Mounts, m => m.Destination == "/var/lib/db/");
        Assert.Equal(volume, db.Source);
        Assert.Equal(["rbind", "rprivate", "rw"], db.Options!);
    }

    [Fact]
    public void An_image_mount_that_was_not_prepared_is_a_bug_not_a_host_path()
    {
        var config = Config(new Mount { ContainerPath = "/mnt/a", Image = new ImageSpec { Image = "artifact:v1" } });
        var e = Assert.Throws<InvalidOperationException>(() => RuntimeSpecBuilder.BuildContainer(Input(config)));
        Assert.Contains("artifact:v1", e.Message);
    }

    [Theory]
    [InlineData("/etc", "absolute")]
    [InlineData("../etc", "'..'")]
    [InlineData("a/../../b", "'..'")]
    public void Bad_sub_paths_are_refused_naming_the_field(string subPath, string why)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => ImageMounts.ValidateSubPath(subPath, 2));
        Assert.Contains("config.mounts[2].image_sub_path", e.Message);
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void Plan_refuses_a_missing_image_and_a_mount_with_two_sources()
    {
        var missing = Config(new Mount { ContainerPath = "/mnt/a", Image = new ImageSpec { Image = "nowhere/artifact:v1" } });
        var e = Assert.Throws<NotFoundException>(() => ImageMounts.Plan(missing, _ => null, "/run/b/c1"));
        Assert.Contains("nowhere/artifact:v1", e.Message);
        var both = Config(new Mount { ContainerPath = "/mnt/a", HostPath = "/tmp", Image = new ImageSpec { Image = "artifact:v1" } });
        Assert.Throws<InvalidArgumentException>(() => ImageMounts.Plan(both, _ => null, "/run/b/c1"));
        // A plain host mount is no image mount.
        Assert.Empty(ImageMounts.Plan(Config(new Mount { ContainerPath = "/mnt/a", HostPath = "/tmp" }), _ => null, "/run/b/c1"));
    }

    [Fact]
    public void Volume_paths_are_cleaned_deduplicated_and_left_out_under_cri_mounts_or_at_root()
    {
        var paths = ImageVolumes.PathsToMake(["/var/lib/db/", "/data", "/var/lib/db", "/", "/cache/../logs"],
            [new Mount { ContainerPath = "/data/", HostPath = "/x" }], "img");
        Assert.Equal(["/logs", "/var/lib/db"], paths);
        var tooMany = Enumerable.Range(0, ImageVolumes.MaxVolumes + 1).Select(i => $"/v{i}").ToList();
        Assert.Throws<FailedPreconditionException>(() => ImageVolumes.PathsToMake(tooMany, [], "img"));
    }
}
