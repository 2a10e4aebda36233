using System.Formats.Tar;
using System.Text;
using CriRuntime.Native;
using CriRuntime.Storage;
using Xunit;

namespace CriRuntime.Tests.Storage;

public sealed class LayerUnpackerTests : IDisposable
{
    private readonly TempDir tmp = new();
    private readonly string target;

    public LayerUnpackerTests()
    {
        // Nested, so an escape by one or two levels lands somewhere we can check.
        target = tmp["layer/diff"];
    }

    public void Dispose() => tmp.Dispose();

    private string T(string relative) => Path.Combine(target, relative);

    private Task<UnpackResult> Unpack(byte[] tar) => new LayerUnpacker().UnpackAsync(new MemoryStream(tar), target, CancellationToken.None);

    [Fact]
    public async Task Keeps_owners_modes_and_mtimes()
    {
        var dirTime = new DateTimeOffset(2020, 1, 2, 3, 4, 5, TimeSpan.Zero);
        var fileTime = new DateTimeOffset(2019, 6, 7, 8, 9, 10, TimeSpan.Zero);
        var tar = new TestTar()
            .Dir("app/", "750", uid: 1000, gid: 1001, mtime: dirTime)
            .File("app/suid", "#!/bin/sh\n", "4755", uid: 1234, gid: 5678, mtime: fileTime)
            .File("app/sgid", "x", "2711", uid: 0, gid: 50)
            .Dir("tmp/", "1777")
            .Dir("shared/", "2775", gid: 100)
            .File("app/later", "written after the dir entry") // changes app/'s mtime, which must be restored
            .Build();

        var result = await Unpack(tar);

        var app = Files.Lstat(T("app"));
        Assert.Equal((1000u, 1001u, Oct.Parse("750")), (app.Uid, app.Gid, app.Permissions));
        Assert.Equal(UnixTimestamp.FromDateTimeOffset(dirTime), app.ModificationTime);

        var suid = Files.Lstat(T("app/suid"));
        Assert.Equal((1234u, 5678u, Oct.Parse("4755")), (suid.Uid, suid.Gid, suid.Permissions));
        Assert.Equal(UnixTimestamp.FromDateTimeOffset(fileTime), suid.ModificationTime);
        Assert.Equal("#!/bin/sh\n", File.ReadAllText(T("app/suid")));

        Assert.Equal(Oct.Parse("2711"), Files.Lstat(T("app/sgid")).Permissions);
        Assert.Equal(Oct.Parse("1777"), Files.Lstat(T("tmp")).Permissions);
        Assert.Equal(Oct.Parse("2775"), Files.Lstat(T("shared")).Permissions);

        Assert.Equal(10 + 1 + "written after the dir entry".Length, result.TotalBytes);
        Assert.Equal(6, result.Inodes);
        Assert.False(result.Skipped);
    }

    [Fact]
    public async Task Symlinks_hardlinks_devices_and_fifos()
    {
        var linkTime = new DateTimeOffset(2018, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var tar = new TestTar()
            .File("bin/busybox", "binary", "755")
            .HardLink("bin/sh", "bin/busybox")
            .HardLink("bin/ls", "/bin/busybox") // absolute link names are layer-relative
            .Symlink("bin/abs", "/etc/passwd", uid: 42, gid: 43, mtime: linkTime)
            .Symlink("bin/rel", "../../../outside")
            .Device("dev/null", TarEntryType.CharacterDevice, 1, 3, "666")
            .Device("dev/loop0", TarEntryType.BlockDevice, 7, 0, "660")
            .Fifo("run/fifo", "600")
            .Build();

        var result = await Unpack(tar);

        var busybox = Files.Lstat(T("bin/busybox"));
        Assert.Equal(3UL, busybox.LinkCount);
        Assert.Equal(busybox.Inode, Files.Lstat(T("bin/sh")).Inode);
        Assert.Equal(busybox.Inode, Files.Lstat(T("bin/ls")).Inode);

        var abs = Files.Lstat(T("bin/abs"));
        Assert.Equal(FileType.Symlink, abs.Type);
        Assert.Equal("/etc/passwd", Files.ReadLink(T("bin/abs")));
        Assert.Equal((42u, 43u), (abs.Uid, abs.Gid));
        Assert.Equal(UnixTimestamp.FromDateTimeOffset(linkTime), abs.ModificationTime);
        Assert.Equal("../../../outside", Files.ReadLink(T("bin/rel")));

        var nul = Files.Lstat(T("dev/null"));
        Assert.Equal((FileType.CharacterDevice, 1u, 3u, Oct.Parse("666")), (nul.Type, nul.RDeviceMajor, nul.RDeviceMinor, nul.Permissions));
        var loop = Files.Lstat(T("dev/loop0"));
        Assert.Equal((FileType.BlockDevice, 7u, 0u, Oct.Parse("660")), (loop.Type, loop.RDeviceMajor, loop.RDeviceMinor, loop.Permissions));
        var fifo = Files.Lstat(T("run/fifo"));
        Assert.Equal((FileType.Fifo, Oct.Parse("600")), (fifo.Type, fifo.Permissions));

        // Implicit parents: bin, dev, run (0755, root).
        var bin = Files.Lstat(T("bin"));
        Assert.Equal((0u, Oct.Parse("755")), (bin.Uid, bin.Permissions));
        Assert.Equal(6 + 3, result.Inodes); // 6 entries creating inodes + 3 implicit dirs; hardlinks add none
        Assert.Equal(6, result.TotalBytes);
    }

    [Fact]
    public async Task Pax_xattrs_are_set_on_files_dirs_and_symlinks()
    {
        var tar = new TestTar()
            .Dir("d/", pax: new Dictionary<string, string> { ["SCHILY.xattr.trusted.dir"] = "on-dir" })
            .File("d/f", "x", pax: new Dictionary<string, string>
            {
                ["SCHILY.xattr.user.comment"] = "hello",
                ["LIBARCHIVE.xattr.user.lib%20name"] = Convert.ToBase64String("from libarchive"u8).TrimEnd('='),
            })
            .Build();
        var result = await Unpack(tar);

        Assert.Equal("on-dir"u8.ToArray(), Xattrs.Get(T("d"), "trusted.dir"));
        Assert.Equal("hello"u8.ToArray(), Xattrs.Get(T("d/f"), "user.comment"));
        Assert.Equal("from libarchive"u8.ToArray(), Xattrs.Get(T("d/f"), "user.lib name"));
        Assert.False(result.Skipped);
    }

    [Fact]
    public async Task Binary_xattrs_and_nanosecond_times_survive_exactly()
    {
        // cap_setfcap (bit 31) makes the permitted mask's last byte 0x80: not valid UTF-8 on its own.
        byte[] capability = [0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        byte[] binary = [0x00, 0xff, 0xfe, 0x80, 0x0a, 0x3d];
        var tar = new RawTar()
            .Entry("bin/", '5', mode: "755", pax: [("mtime", "1600000000.000000001"u8.ToArray())])
            .Entry("bin/tool", '0', "data"u8.ToArray(), mode: "755", pax:
            [
                ("SCHILY.xattr.security.capability", capability),
                ("SCHILY.xattr.trusted.blob", binary),
                ("mtime", "1700000000.123456789"u8.ToArray()),
                ("atime", "1700000001.5"u8.ToArray()),
            ])
            .Build();

        await Unpack(tar);

        Assert.Equal(capability, Xattrs.Get(T("bin/tool"), "security.capability"));
        Assert.Equal(binary, Xattrs.Get(T("bin/tool"), "trusted.blob"));
        var st = Files.Lstat(T("bin/tool"));
        Assert.Equal(new UnixTimestamp(1_700_000_000, 123_456_789), st.ModificationTime);
        Assert.Equal(new UnixTimestamp(1_700_000_001, 500_000_000), st.AccessTime);
        Assert.Equal(new UnixTimestamp(1_600_000_000, 1), Files.Lstat(T("bin")).ModificationTime);
    }

    [Fact]
    public async Task Xattrs_stay_with_their_own_entry()
    {
        var tar = new RawTar()
            .Entry("a", '0', "1"u8.ToArray())
            .Entry("b", '0', "2"u8.ToArray(), pax: [("SCHILY.xattr.trusted.mark", "b"u8.ToArray())])
            .Entry("c", '0', new byte[700]) // data spanning two blocks between headers
            .Entry("d/", '5', pax: [("SCHILY.xattr.trusted.mark", "d"u8.ToArray()), ("mtime", "1500000000"u8.ToArray())])
            .Entry("e", '0')
            .Build();
        await Unpack(tar);
        Assert.Null(Xattrs.Get(T("a"), "trusted.mark"));
        Assert.Equal("b"u8.ToArray(), Xattrs.Get(T("b"), "trusted.mark"));
        Assert.Null(Xattrs.Get(T("c"), "trusted.mark"));
        Assert.Equal("d"u8.ToArray(), Xattrs.Get(T("d"), "trusted.mark"));
        Assert.Null(Xattrs.Get(T("e"), "trusted.mark"));
        Assert.Equal(700, new FileInfo(T("c")).Length);
        Assert.Equal(new UnixTimestamp(1_500_000_000, 0), Files.Lstat(T("d")).ModificationTime);
    }

    [Fact]
    public async Task Pax_path_records_survive_xattr_filtering_and_duplicates_take_the_last()
    {
        string longPath = string.Join('/', Enumerable.Repeat("deep", 40)) + "/file"; // > 100 bytes: only in PAX
        var tar = new RawTar()
            .Entry("placeholder", '0', "content"u8.ToArray(), pax:
            [
                ("path", "first-choice"u8.ToArray()),
                ("SCHILY.xattr.user.k", "v"u8.ToArray()),
                ("path", System.Text.Encoding.UTF8.GetBytes(longPath)),
            ])
            .Build();
        await Unpack(tar);
        Assert.Equal("content", File.ReadAllText(T(longPath)));
        Assert.Equal("v"u8.ToArray(), Xattrs.Get(T(longPath), "user.k"));
        Assert.False(File.Exists(T("first-choice")));
        Assert.False(File.Exists(T("placeholder")));
    }

    [Fact]
    public async Task Overlay_internal_xattrs_from_the_tar_are_not_set()
    {
        var tar = new TestTar()
            .Dir("d/", pax: new Dictionary<string, string> { ["SCHILY.xattr.trusted.overlay.redirect"] = "/elsewhere" })
            .Build();
        var result = await Unpack(tar);
        Assert.Null(Xattrs.Get(T("d"), "trusted.overlay.redirect"));
        Assert.True(result.Skipped);
    }

    [Fact]
    public async Task User_xattrs_the_kernel_refuses_on_symlinks_are_skipped_not_fatal()
    {
        var tar = new RawTar()
            .Entry("link", '2', linkName: "target", pax: [("SCHILY.xattr.user.x", "1"u8.ToArray())])
            .Build();
        var result = await Unpack(tar);
        Assert.Equal(FileType.Symlink, Files.Lstat(T("link")).Type);
        Assert.True(result.Skipped);
    }

    [Fact]
    public async Task Whiteouts_become_0_0_char_devices_and_opaque_markers_an_xattr()
    {
        var tar = new TestTar()
            .Dir("etc/")
            .Whiteout("etc/.wh.removed.conf")
            .Dir("var/cache/")
            .Whiteout("var/cache/.wh..wh..opq")
            .Whiteout("newdir/.wh..wh..opq") // directory not in the tar: created
            .Whiteout(".wh.toplevel")
            .File(".wh..wh.plnk/12345", "aufs hardlink store") // AUFS metadata: ignored
            .Build();

        var result = await Unpack(tar);

        foreach (var path in new[] { "etc/removed.conf", "toplevel" })
        {
            var st = Files.Lstat(T(path));
            Assert.Equal((FileType.CharacterDevice, 0UL, 0u, 0u), (st.Type, st.RDevice, st.Uid, st.Gid));
        }
        Assert.False(File.Exists(T("etc/.wh.removed.conf")));
        Assert.Equal("y"u8.ToArray(), Xattrs.Get(T("var/cache"), "trusted.overlay.opaque"));
        Assert.Equal("y"u8.ToArray(), Xattrs.Get(T("newdir"), "trusted.overlay.opaque"));
        Assert.False(File.Exists(T("var/cache/.wh..wh..opq")));
        Assert.False(Directory.Exists(T(".wh..wh.plnk")));
        Assert.Null(Xattrs.Get(T("etc"), "trusted.overlay.opaque"));
        Assert.False(result.Skipped);
    }

    [Fact]
    public async Task Later_entries_replace_earlier_ones_but_directories_merge()
    {
        var tar = new TestTar()
            .File("f", "first")
            .File("f", "second")
            .Dir("merge/", "700")
            .File("merge/child", "kept")
            .Dir("merge/", "755")
            .Dir("gone/")
            .File("gone/child", "removed with its dir")
            .File("gone", "now a file")
            .File("becomes-dir", "x")
            .Dir("becomes-dir/")
            .File("becomes-link", "x")
            .Symlink("becomes-link", "f")
            .File("whited", "x")
            .Whiteout(".wh.whited")
            .Build();

        var result = await Unpack(tar);

        Assert.Equal("second", File.ReadAllText(T("f")));
        Assert.Equal("kept", File.ReadAllText(T("merge/child")));
        Assert.Equal(Oct.Parse("755"), Files.Lstat(T("merge")).Permissions);
        Assert.Equal("now a file", File.ReadAllText(T("gone")));
        Assert.True(Files.Lstat(T("becomes-dir")).IsDirectory);
        Assert.Equal(FileType.Symlink, Files.Lstat(T("becomes-link")).Type);
        Assert.Equal(FileType.CharacterDevice, Files.Lstat(T("whited")).Type);
        // Replaced files no longer count.
        Assert.Equal("second".Length + "kept".Length + "now a file".Length, result.TotalBytes);
    }

    [Fact]
    public async Task Root_entry_sets_the_layer_directory_metadata_and_dot_dot_inside_is_fine()
    {
        var time = new DateTimeOffset(2015, 5, 5, 5, 5, 5, TimeSpan.Zero);
        var tar = new TestTar()
            .Dir("./", "755", mtime: time)
            .File("./a/../b", "lexically inside")
            .Build();
        await Unpack(tar);
        Assert.Equal("lexically inside", File.ReadAllText(T("b")));
        Assert.False(Directory.Exists(T("a")));
        Assert.Equal(UnixTimestamp.FromDateTimeOffset(time), Files.Lstat(target).ModificationTime);
    }

    [Fact]
    public async Task Gnu_and_ustar_tars_work_too()
    {
        foreach (var format in new[] { TarEntryFormat.Gnu, TarEntryFormat.Ustar })
        {
            string dir = tmp[$"fmt-{format}"];
            var longName = string.Join('/', Enumerable.Repeat("component", 20)) + "/file"; // > 100 bytes
            var tar = format == TarEntryFormat.Gnu
                ? new TestTar(format).File(longName, "long").Build()
                : new TestTar(format).File("short/name", "ustar").Build();
            await new LayerUnpacker().UnpackAsync(new MemoryStream(tar), dir, CancellationToken.None);
            Assert.Equal(format == TarEntryFormat.Gnu ? "long" : "ustar",
                File.ReadAllText(Path.Combine(dir, format == TarEntryFormat.Gnu ? longName : "short/name")));
        }
    }

    [Fact]
    public async Task Reads_the_stream_to_its_end()
    {
        byte[] tar = new RawTar().Entry("f", '0', "x"u8.ToArray()).Build(trailing: new byte[10240]);
        var stream = new MemoryStream(tar);
        await new LayerUnpacker().UnpackAsync(stream, target, CancellationToken.None);
        Assert.Equal(stream.Length, stream.Position);
    }

    [Fact]
    public async Task Large_files_are_streamed_intact()
    {
        var data = new byte[5 * 1024 * 1024 + 123];
        new Random(7).NextBytes(data);
        await Unpack(new TestTar().File("big", data).Build());
        Assert.Equal(data, File.ReadAllBytes(T("big")));
    }

    [Fact]
    public async Task Cancellation_stops_the_unpack()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new LayerUnpacker().UnpackAsync(new MemoryStream(new TestTar().File("f", "x").Build()), target, cts.Token));
        Assert.False(File.Exists(T("f")));
    }

    // ---- hostile layers ----

    public static TheoryData<string, string> EscapingNames => new()
    {
        { "../x", "escapes the layer directory" },
        { "a/../../x", "escapes the layer directory" },
        { "/../../x", "escapes the layer directory" },
        { "./../layer/x", "escapes the layer directory" },
    };

    [Theory]
    [MemberData(nameof(EscapingNames))]
    public async Task Names_climbing_out_are_refused(string name, string reason)
    {
        var tar = new TestTar().File("ok", "fine").File(name, "pwned").Build();
        var e = await Assert.ThrowsAsync<UnsafeLayerException>(() => Unpack(tar));
        Assert.Equal($"entry '{name}' {reason}", e.Message);
        AssertNothingOutsideTarget();
    }

    [Fact]
    public async Task Absolute_names_are_made_relative()
    {
        await Unpack(new TestTar().File("/etc/hostname", "inside").Build());
        Assert.Equal("inside", File.ReadAllText(T("etc/hostname")));
    }

    [Fact]
    public async Task Hardlink_out_of_the_layer_is_refused()
    {
        var tar = new TestTar().HardLink("passwd", "../../etc/passwd").Build();
        var e = await Assert.ThrowsAsync<UnsafeLayerException>(() => Unpack(tar));
        Assert.Contains("is a hardlink to '../../etc/passwd'", e.Message);
        Assert.Contains("escapes the layer directory", e.Message);
        Assert.False(File.Exists(T("passwd")));
        AssertNothingOutsideTarget();
    }

    [Fact]
    public async Task Hardlink_to_an_entry_not_yet_extracted_is_refused()
    {
        var tar = new TestTar().HardLink("a", "b").File("b", "x").Build();
        var e = await Assert.ThrowsAsync<UnsafeLayerException>(() => Unpack(tar));
        Assert.Contains("not in this layer", e.Message);
    }

    [Fact]
    public async Task Hardlink_through_a_symlink_is_refused()
    {
        string decoy = Decoy();
        var tar = new TestTar().Symlink("evil", decoy).HardLink("stolen", "evil/victim").Build();
        var e = await Assert.ThrowsAsync<UnsafeLayerException>(() => Unpack(tar));
        Assert.Contains("symlink", e.Message);
        Assert.False(File.Exists(T("stolen")));
        Assert.Equal(1UL, Files.Lstat(Path.Combine(decoy, "victim")).LinkCount);
    }

    [Fact]
    public async Task Writing_through_a_symlink_to_etc_is_refused()
    {
        string pwned = "/etc/criruntime-test-pwned";
        Assert.False(File.Exists(pwned));
        var tar = new TestTar().Symlink("evil", "/etc").File("evil/criruntime-test-pwned", "pwned").Build();
        var e = await Assert.ThrowsAsync<UnsafeLayerException>(() => Unpack(tar));
        Assert.Equal("entry 'evil/criruntime-test-pwned' lies below 'evil', which is a symlink; refusing to write through it", e.Message);
        Assert.False(File.Exists(pwned));
    }

    [Fact]
    public async Task Writing_through_a_symlink_to_the_parent_is_refused()
    {
        var tar = new TestTar().Symlink("up", "..").File("up/x", "pwned").Build();
        await Assert.ThrowsAsync<UnsafeLayerException>(() => Unpack(tar));
        Assert.False(File.Exists(tmp["layer/x"]));
        AssertNothingOutsideTarget();
    }

    [Fact]
    public async Task Symlink_chains_and_directories_through_symlinks_are_refused()
    {
        string decoy = Decoy();
        var cases = new[]
        {
            new TestTar().Symlink("evil", decoy).Dir("evil/sub/").Build(),
            new TestTar().Symlink("evil", decoy).Whiteout("evil/.wh.victim").Build(),
            new TestTar().Symlink("evil", decoy).Whiteout("evil/.wh..wh..opq").Build(),
            new TestTar().Symlink("evil", decoy).Symlink("evil/victim", "/").Build(),
            new TestTar().Dir("d/").Symlink("d/l", decoy).Device("d/l/dev", TarEntryType.CharacterDevice, 1, 3).Build(),
            new TestTar().Symlink("a", ".").Symlink("b", "a").File("b/a/x", "pwned").Build(),
        };
        foreach (var tar in cases)
        {
            Files.RemoveTree(target);
            await Assert.ThrowsAsync<UnsafeLayerException>(() => Unpack(tar));
            Assert.Equal(["victim"], Directory.GetFileSystemEntries(decoy).Select(Path.GetFileName));
            Assert.Equal("precious", File.ReadAllText(Path.Combine(decoy, "victim")));
            Assert.Null(Xattrs.Get(decoy, "trusted.overlay.opaque"));
            Assert.False(Directory.Exists(T("x")));
        }
    }

    [Fact]
    public async Task Replacing_the_root_with_a_non_directory_is_refused()
    {
        var e = await Assert.ThrowsAsync<UnsafeLayerException>(() => Unpack(new TestTar().Symlink("./", "/").Build()));
        Assert.Contains("layer directory itself", e.Message);
        Assert.True(Files.Lstat(target).IsDirectory);
    }

    [Fact]
    public async Task Whiteout_of_dot_dot_is_refused()
    {
        var e = await Assert.ThrowsAsync<UnsafeLayerException>(() => Unpack(new TestTar().Dir("d/").Whiteout("d/.wh...").Build()));
        Assert.Contains("whiteout", e.Message);
        Assert.True(Directory.Exists(T("d")));
    }

    /// <summary>A directory outside the layer with one file, for hostile layers to aim at.</summary>
    private string Decoy()
    {
        string decoy = tmp["decoy"];
        Directory.CreateDirectory(decoy);
        File.WriteAllText(Path.Combine(decoy, "victim"), "precious");
        return decoy;
    }

    private void AssertNothingOutsideTarget()
    {
        var outside = Directory.GetFileSystemEntries(tmp.Path, "*", SearchOption.AllDirectories)
            .Where(p => p != target && !p.StartsWith(target + "/", StringComparison.Ordinal))
            .Select(p => Path.GetRelativePath(tmp.Path, p))
            .Where(p => p != "layer" && p != "decoy" && p != Path.Combine("decoy", "victim"));
        Assert.Empty(outside);
        Assert.False(File.Exists("/var/tmp/criruntime-tests/x"));
    }
}
