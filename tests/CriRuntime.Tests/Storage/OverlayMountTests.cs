using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Storage;

public sealed class OverlayMountTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Fact]
    public async Task Two_layers_with_whiteout_and_opaque_dir_mount_read_and_write()
    {
        byte[] lower = new TestTar()
            .File("file", "from lower")
            .Dir("dir/")
            .File("dir/lower-only", "hidden by opaque")
            .File("kept", "still visible")
            .Build();
        byte[] upper = new TestTar()
            .Whiteout(".wh.file")
            .Dir("dir/")
            .Whiteout("dir/.wh..wh..opq")
            .File("dir/upper-only", "from upper layer")
            .Build();
        var diffIds = new[] { Digest.Sha256(lower), Digest.Sha256(upper) };
        var chainIds = new[] { LayerStore.ChainId(diffIds, 0), LayerStore.ChainId(diffIds, 1) };
        var store = new LayerStore(tmp["overlay"], NullLogger<LayerStore>.Instance);
        await store.EnsureAsync(chainIds[0], null, diffIds[0], _ => Task.FromResult<Stream>(new MemoryStream(Compress.Gzip(lower))), CancellationToken.None);
        await store.EnsureAsync(chainIds[1], chainIds[0], diffIds[1], _ => Task.FromResult<Stream>(new MemoryStream(Compress.Zstd(upper))), CancellationToken.None);

        string rootfs = tmp["ctr/rootfs"], upperDir = tmp["ctr/upper"], workDir = tmp["ctr/work"];
        OverlayMount.MountLayers(store, chainIds, upperDir, workDir, rootfs);
        try
        {
            Assert.True(Mounts.IsMountPoint(rootfs));
            var mount = Mounts.ReadMountInfo().Single(m => m.MountPoint == rootfs);
            Assert.Equal("overlay", mount.FsType);
            Assert.Contains(store.ShortDiffDir(chainIds[1]) + ":" + store.ShortDiffDir(chainIds[0]), mount.SuperOptions);

            Assert.False(File.Exists(Path.Combine(rootfs, "file")));                 // whiteout hides it
            Assert.True(Directory.Exists(Path.Combine(rootfs, "dir")));
            Assert.False(File.Exists(Path.Combine(rootfs, "dir/lower-only")));        // opaque dir hides lower contents
            Assert.Equal("from upper layer", File.ReadAllText(Path.Combine(rootfs, "dir/upper-only")));
            Assert.Equal("still visible", File.ReadAllText(Path.Combine(rootfs, "kept")));
            Assert.Equal(["dir", "kept"], Directory.GetFileSystemEntries(rootfs).Select(Path.GetFileName).Order());

            File.WriteAllText(Path.Combine(rootfs, "written"), "by the container");
            File.Delete(Path.Combine(rootfs, "kept"));
            Assert.Equal("by the container", File.ReadAllText(Path.Combine(upperDir, "written")));
            Assert.Equal(FileType.CharacterDevice, Files.Lstat(Path.Combine(upperDir, "kept")).Type); // the kernel's own whiteout
            Assert.Equal("still visible", File.ReadAllText(Path.Combine(store.DiffDir(chainIds[0]), "kept"))); // layers untouched
        }
        finally
        {
            OverlayMount.Unmount(rootfs);
        }

        Assert.False(Mounts.IsMountPoint(rootfs));
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), line => line.Contains(tmp.Path));
        Assert.Empty(Directory.GetFileSystemEntries(rootfs));
        OverlayMount.Unmount(rootfs);              // idempotent
        OverlayMount.Unmount(tmp["never-created"]);
    }

    [Fact]
    public void Single_lower_without_upper_is_a_read_only_bind()
    {
        string lower = tmp["lower"], target = tmp["ro"];
        Directory.CreateDirectory(lower);
        File.WriteAllText(Path.Combine(lower, "f"), "ro");
        OverlayMount.Mount([lower], null, null, target);
        try
        {
            Assert.Equal("ro", File.ReadAllText(Path.Combine(target, "f")));
            var e = Assert.ThrowsAny<IOException>(() => File.WriteAllText(Path.Combine(target, "new"), "x"));
            Assert.Contains("Read-only", e.Message, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            OverlayMount.Unmount(target);
        }
        Assert.False(Mounts.IsMountPoint(target));
    }

    [Fact]
    public void Two_lowers_without_upper_are_a_read_only_overlay()
    {
        string a = tmp["a"], b = tmp["b"], target = tmp["merged"];
        Directory.CreateDirectory(a);
        Directory.CreateDirectory(b);
        File.WriteAllText(Path.Combine(a, "same"), "top");
        File.WriteAllText(Path.Combine(b, "same"), "bottom");
        File.WriteAllText(Path.Combine(b, "only-b"), "b");
        OverlayMount.Mount([a, b], null, null, target);
        try
        {
            Assert.Equal("top", File.ReadAllText(Path.Combine(target, "same")));
            Assert.Equal("b", File.ReadAllText(Path.Combine(target, "only-b")));
            Assert.ThrowsAny<IOException>(() => File.WriteAllText(Path.Combine(target, "new"), "x"));
        }
        finally
        {
            OverlayMount.Unmount(target);
        }
    }

    [Fact]
    public void Options_over_a_page_fail_clearly_before_mounting()
    {
        var lowers = Enumerable.Range(0, 200).Select(i => $"/var/lib/criruntime/overlay/l/{i:D26}").ToList();
        var e = Assert.Throws<InvalidOperationException>(() => OverlayMount.Mount(lowers, tmp["u"], tmp["w"], tmp["t"]));
        Assert.Contains("200 layers", e.Message);
        Assert.Contains($"limit of {Environment.SystemPageSize - 1}", e.Message);
        Assert.False(Mounts.IsMountPoint(tmp["t"]));
    }

    [Fact]
    public void Paths_overlay_options_cannot_carry_are_refused()
    {
        Assert.Throws<ArgumentException>(() => OverlayMount.Mount(["/a,upperdir=/etc"], tmp["u"], tmp["w"], tmp["t"]));
        Assert.Throws<ArgumentException>(() => OverlayMount.Mount(["/a:/b"], tmp["u"], tmp["w"], tmp["t"]));
        Assert.Throws<ArgumentException>(() => OverlayMount.Mount([], tmp["u"], tmp["w"], tmp["t"]));
    }

    [Fact]
    public void Kernel_errors_name_the_mount()
    {
        var e = Assert.Throws<NativeException>(() => OverlayMount.Mount([tmp["missing-lower"]], tmp["u"], tmp["w"], tmp["t"]));
        Assert.StartsWith($"mount overlay on {tmp["t"]}: ", e.Message);
        Assert.False(Mounts.IsMountPoint(tmp["t"]));
    }
}
