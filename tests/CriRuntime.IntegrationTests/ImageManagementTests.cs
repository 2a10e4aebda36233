using System.Text;
using System.Text.Json;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>ListImages, ImageStatus, RemoveImage and ImageFsInfo, and the unpacked layers on disk.</summary>
[Collection(RegistryCollection.Name)]
public sealed class ImageManagementTests(RegistryFixture registry, ITestOutputHelper output) : DaemonTest(output)
{
    [Fact]
    public async Task ListImages_AllOrFilteredByReference()
    {
        var d = await StartDaemonAsync();
        Assert.Empty(await ListAsync(d));
        await PullAsync(d, registry.Ref("busybox:latest"));
        await PullAsync(d, registry.Ref("busybox:1.35"));
        await PullAsync(d, registry.Ref("multilayer:latest"));

        var all = await ListAsync(d);
        Assert.Equal(
            new[] { registry.Busybox.ImageId, registry.Busybox135.ImageId, registry.MultiLayer.ImageId }.Order(),
            all.Select(i => i.Id).Order());

        foreach (var (filter, id) in new[]
                 {
                     (registry.Ref("busybox:1.35"), registry.Busybox135.ImageId),
                     (registry.MultiLayer.ImageId, registry.MultiLayer.ImageId),
                     ($"{registry.Host}/busybox@{registry.Busybox.ManifestDigest}", registry.Busybox.ImageId),
                 })
        {
            var filtered = await ListAsync(d, filter);
            Assert.True(filtered.Count == 1, $"ListImages(filter {filter}) gave {filtered.Count} images: {string.Join(", ", filtered.Select(i => i.Id))}");
            Assert.Equal(id, filtered[0].Id);
        }
        Assert.Empty(await ListAsync(d, registry.Ref("busybox:nonroot")));

        // StreamImages answers the same items as ListImages, filter included.
        var streamed = new List<Image>();
        using (var call = d.Images.StreamImages(new StreamImagesRequest(), deadline: Deadline()))
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
                streamed.AddRange(call.ResponseStream.Current.Images);
        Assert.Equal(all.Select(i => i.ToString()).Order(), streamed.Select(i => i.ToString()).Order());
        var streamedFiltered = new List<Image>();
        using (var call = d.Images.StreamImages(new StreamImagesRequest { Filter = new ImageFilter { Image = new ImageSpec { Image = registry.Ref("busybox:1.35") } } }, deadline: Deadline()))
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
                streamedFiltered.AddRange(call.ResponseStream.Current.Images);
        Assert.Equal(registry.Busybox135.ImageId, Assert.Single(streamedFiltered).Id);
    }

    [Fact]
    public async Task ImageStatus_UnknownImageIsOkWithoutImage_EmptyIsInvalidArgument()
    {
        var d = await StartDaemonAsync();
        var response = await d.Images.ImageStatusAsync(
            new ImageStatusRequest { Image = new ImageSpec { Image = registry.Ref("busybox:latest") }, Verbose = true }, deadline: Deadline());
        Assert.Null(response.Image);
        Assert.Null(await StatusAsync(d, registry.Busybox.ImageId));
        await ExpectRpcErrorAsync(d, StatusCode.InvalidArgument, "ImageStatus(\"\")",
            async () => await d.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = "" } }, deadline: Deadline()));
    }

    [Fact]
    public async Task ImageStatus_VerboseInfoHasImageSpecAndChainIds()
    {
        var d = await StartDaemonAsync();
        string reference = registry.Ref("multilayer:latest");
        await PullAsync(d, reference);

        var response = await d.Images.ImageStatusAsync(
            new ImageStatusRequest { Image = new ImageSpec { Image = reference }, Verbose = true }, deadline: Deadline());
        Assert.NotNull(response.Image);
        Assert.True(response.Info.TryGetValue("info", out var infoJson), "verbose ImageStatus has no info[\"info\"]");
        using var info = JsonDocument.Parse(infoJson);
        var spec = info.RootElement.GetProperty("imageSpec");
        Assert.Equal("linux", spec.GetProperty("os").GetString());
        Assert.Equal("/data", spec.GetProperty("config").GetProperty("WorkingDir").GetString());
        Assert.Equal(registry.MultiLayer.DiffIds, spec.GetProperty("rootfs").GetProperty("diff_ids").EnumerateArray().Select(e => e.GetString()!));
        var chainIds = info.RootElement.GetProperty("chainIDs").EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.Equal(OnDisk.ChainIds(registry.MultiLayer), chainIds);

        // Not verbose: no info.
        var plain = await d.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = reference } }, deadline: Deadline());
        Assert.Empty(plain.Info);
    }

    [Fact]
    public async Task MultiLayer_UnpacksWhiteoutsOpaqueDirsAndLinks()
    {
        var d = await StartDaemonAsync();
        await PullAsync(d, registry.Ref("multilayer:latest"));
        var chains = OnDisk.ChainIds(registry.MultiLayer);
        Assert.Equal(4, chains.Count);
        foreach (var chain in chains)
            Assert.True(Directory.Exists(Path.Combine(OnDisk.LayerDir(d.Root, chain), "diff")),
                $"layer {chain} has no diff dir\n{OnDisk.Describe(d.Root)}");

        string diff1 = Path.Combine(OnDisk.LayerDir(d.Root, chains[0]), "diff");
        string diff2 = Path.Combine(OnDisk.LayerDir(d.Root, chains[1]), "diff");
        string diff3 = Path.Combine(OnDisk.LayerDir(d.Root, chains[2]), "diff");
        string diff4 = Path.Combine(OnDisk.LayerDir(d.Root, chains[3]), "diff");

        // Layer 1: busybox, with its symlinks and modes.
        Assert.Equal(TestImages.BusyboxBytes.Length, new FileInfo(Path.Combine(diff1, "bin/busybox")).Length);
        Assert.Equal("busybox", new FileInfo(Path.Combine(diff1, "bin/sh")).LinkTarget);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute
                     | UnixFileMode.OtherRead | UnixFileMode.OtherExecute, File.GetUnixFileMode(Path.Combine(diff1, "bin/busybox")));
        Assert.True(File.GetUnixFileMode(Path.Combine(diff1, "tmp")).HasFlag(UnixFileMode.StickyBit), "/tmp lost its sticky bit");
        Assert.Equal(TestImages.AppUid.ToString(), OnDisk.Run("stat", "-c", "%u:%g", Path.Combine(diff1, "home/app")).Split(':')[0]);

        // Layer 2: files, a hardlink and a symlink.
        Assert.Equal("keep\n", File.ReadAllText(Path.Combine(diff2, "data/keep")));
        Assert.Equal(2, OnDisk.LinkCount(Path.Combine(diff2, "data/keep-hardlink")));
        Assert.Equal("keep", new FileInfo(Path.Combine(diff2, "data/keep-symlink")).LinkTarget);
        Assert.True(File.Exists(Path.Combine(diff2, "opaque/old1")));

        // Layer 3: the whiteout is a 0:0 character device, /opaque carries trusted.overlay.opaque=y,
        // and no .wh. file is left as such.
        Assert.Equal("character special file 0:0", OnDisk.StatTypeAndDevice(Path.Combine(diff3, "data/remove-me")));
        var opaque = OnDisk.GetXattr(Path.Combine(diff3, "opaque"), "trusted.overlay.opaque");
        Assert.True(opaque is not null && Encoding.ASCII.GetString(opaque) == "y",
            $"trusted.overlay.opaque on {diff3}/opaque is {(opaque is null ? "unset" : "'" + Encoding.ASCII.GetString(opaque) + "'")}");
        Assert.Equal("new\n", File.ReadAllText(Path.Combine(diff3, "opaque/new")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(diff3, ".wh.*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }));
        Assert.False(Path.Exists(Path.Combine(diff3, "opaque/old1")));

        // Layer 4: uncompressed.
        Assert.Equal("multilayer 4\n", File.ReadAllText(Path.Combine(diff4, "etc/multilayer-release")));

        Assert.Empty(OnDisk.TmpEntries(d.Root));
    }

    [Fact]
    public async Task RemoveImage_ByIdTagOrDigest_RemovesWholeImage_UnknownIsOk()
    {
        var d = await StartDaemonAsync();
        string latest = registry.Ref("busybox:latest");
        string second = registry.Ref("busybox:second");
        string byDigest = $"{registry.Host}/busybox@{registry.Busybox.ManifestDigest}";

        foreach (var how in new[] { "id", "tag", "digest" })
        {
            await PullAsync(d, latest);
            await PullAsync(d, second);
            await PullAsync(d, registry.Ref("busybox:1.35"));
            string target = how switch { "id" => registry.Busybox.ImageId, "tag" => second, _ => byDigest };

            await RemoveAsync(d, target);

            var left = await ListAsync(d);
            Assert.True(left.Count == 1 && left[0].Id == registry.Busybox135.ImageId,
                $"after RemoveImage by {how} ({target}) the list is: {string.Join("; ", left.Select(i => $"{i.Id} [{string.Join(", ", i.RepoTags)}]"))}");
            Assert.Null(await StatusAsync(d, latest));
            Assert.Null(await StatusAsync(d, second));
            Assert.Null(await StatusAsync(d, registry.Busybox.ImageId));
            await RemoveAsync(d, registry.Ref("busybox:1.35"));
            Assert.Empty(await ListAsync(d));
        }

        // Unknown images: OK.
        await RemoveAsync(d, registry.Ref("busybox:latest"));
        await RemoveAsync(d, registry.Busybox.ImageId);
        await RemoveAsync(d, "sha256:" + new string('a', 64));
        await RemoveAsync(d, "docker.io/library/never-pulled:1.0");
        await ExpectRpcErrorAsync(d, StatusCode.InvalidArgument, "RemoveImage(\"\")",
            async () => await d.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = "" } }, deadline: Deadline()));
    }

    [Fact]
    public async Task RemoveImage_KeepsLayersSharedWithAnotherImage_AndFreesTheRest()
    {
        var d = await StartDaemonAsync();
        await PullAsync(d, registry.Ref("busybox:latest"));
        await PullAsync(d, registry.Ref("multilayer:latest"));
        var busyboxChains = OnDisk.ChainIds(registry.Busybox);
        var multiChains = OnDisk.ChainIds(registry.MultiLayer);
        Assert.Equal(busyboxChains[0], multiChains[0]); // the shared base layer
        var before = await FsInfoAsync(d);

        await RemoveAsync(d, registry.Ref("multilayer:latest"));

        string baseDiff = Path.Combine(OnDisk.LayerDir(d.Root, busyboxChains[0]), "diff");
        Assert.True(File.Exists(Path.Combine(baseDiff, "bin/busybox")),
            $"the base layer busybox:latest still uses lost bin/busybox\n{OnDisk.Describe(d.Root)}");
        Assert.NotNull(await StatusAsync(d, registry.Ref("busybox:latest")));
        // The layers only multilayer used go away.
        bool freed = await EventuallyAsync(() => multiChains.Skip(1).All(c => !Directory.Exists(OnDisk.LayerDir(d.Root, c))), TimeSpan.FromSeconds(10));
        Assert.True(freed, $"multilayer's own layers are still on disk after RemoveImage\n{OnDisk.Describe(d.Root)}");
        Assert.Equal(busyboxChains.Select(OnDisk.Hex).Order(StringComparer.Ordinal), OnDisk.LayerDirNames(d.Root));
        var after = await FsInfoAsync(d);
        Assert.True(after.UsedBytes.Value < before.UsedBytes.Value, $"used bytes {before.UsedBytes.Value} -> {after.UsedBytes.Value}");

        // Pulling multilayer again reuses the base layer and works.
        Assert.Equal(registry.MultiLayer.ImageId, await PullAsync(d, registry.Ref("multilayer:latest")));
    }

    [Fact]
    public async Task ImageFsInfo_ReportsOverlayUsage()
    {
        var d = await StartDaemonAsync();
        var empty = await FsInfoAsync(d);
        Assert.Equal(OnDisk.Overlay(d.Root), empty.FsId?.Mountpoint);
        Assert.True(empty.Timestamp > 0, "timestamp is 0");

        await PullAsync(d, registry.Ref("busybox:latest"));
        await PullAsync(d, registry.Ref("multilayer:latest"));
        var full = await FsInfoAsync(d);
        Assert.Equal(OnDisk.Overlay(d.Root), full.FsId?.Mountpoint);
        Assert.NotNull(full.UsedBytes);
        Assert.NotNull(full.InodesUsed);
        Assert.True(full.UsedBytes.Value >= (ulong)TestImages.BusyboxBytes.Length,
            $"used bytes {full.UsedBytes.Value} < the busybox binary alone ({TestImages.BusyboxBytes.Length})");
        Assert.True(full.InodesUsed.Value > (ulong)TestImages.Applets.Count, $"inodes used {full.InodesUsed.Value}");
        Assert.True(full.UsedBytes.Value > (empty.UsedBytes?.Value ?? 0), $"used bytes {empty.UsedBytes?.Value} -> {full.UsedBytes.Value}");

        await RemoveAsync(d, registry.Ref("multilayer:latest"));
        var fewer = await FsInfoAsync(d);
        Assert.True(fewer.UsedBytes.Value < full.UsedBytes.Value, $"used bytes {full.UsedBytes.Value} -> {fewer.UsedBytes.Value} after removing multilayer");
        Assert.True(fewer.InodesUsed.Value < full.InodesUsed.Value, $"inodes {full.InodesUsed.Value} -> {fewer.InodesUsed.Value} after removing multilayer");

        await RemoveAsync(d, registry.Ref("busybox:latest"));
        var none = await FsInfoAsync(d);
        Assert.True(none.UsedBytes.Value < fewer.UsedBytes.Value, $"used bytes {fewer.UsedBytes.Value} -> {none.UsedBytes.Value} after removing busybox");
    }
}
