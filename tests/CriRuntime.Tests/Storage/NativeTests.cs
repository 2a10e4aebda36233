using System.Text;
using CriRuntime.Native;
using Xunit;

namespace CriRuntime.Tests.Storage;

public sealed class NativeTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Fact]
    public void Mount_failure_names_call_target_and_errno()
    {
        string target = tmp["does-not-exist"];
        var e = Assert.Throws<NativeException>(() => Mounts.Mount("overlay", target, "overlay", MountFlags.None, "lowerdir=/nope"));
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Equal("mount", e.Call);
        Assert.Equal(target, e.Path);
        Assert.Equal($"mount overlay on {target}: ENOENT (No such file or directory)", e.Message);
        Assert.IsAssignableFrom<IOException>(e);
    }

    [Fact]
    public void Paths_with_NUL_are_refused_before_reaching_the_kernel()
    {
        Assert.Throws<InvalidArgumentException>(() => Files.Lstat(tmp["a\0b"]));
    }

    [Fact]
    public void Whiteout_is_a_root_owned_0_0_character_device()
    {
        string path = tmp["wh"];
        Files.MakeWhiteout(path);
        var st = Files.Lstat(path);
        Assert.Equal(FileType.CharacterDevice, st.Type);
        Assert.Equal(0UL, st.RDevice);
        Assert.Equal(0u, st.Uid);
        Assert.Equal(0u, st.Gid);
    }

    [Fact]
    public void Mknod_makes_devices_and_fifos_with_numbers()
    {
        Files.Mknod(tmp["null"], FileType.CharacterDevice, Oct.Parse("666"), 1, 3);
        Files.Mknod(tmp["loop"], FileType.BlockDevice, Oct.Parse("660"), 7, 300);
        Files.Mknod(tmp["fifo"], FileType.Fifo, Oct.Parse("600"));
        var c = Files.Lstat(tmp["null"]);
        Assert.Equal((FileType.CharacterDevice, 1u, 3u), (c.Type, c.RDeviceMajor, c.RDeviceMinor));
        var b = Files.Lstat(tmp["loop"]);
        Assert.Equal((FileType.BlockDevice, 7u, 300u), (b.Type, b.RDeviceMajor, b.RDeviceMinor));
        Assert.Equal(FileType.Fifo, Files.Lstat(tmp["fifo"]).Type);
    }

    [Fact]
    public void Devices_encode_like_glibc()
    {
        Assert.Equal(0x801UL, Devices.MakeDev(8, 1));
        ulong big = Devices.MakeDev(4097, 1048577);
        Assert.Equal(4097u, Devices.Major(big));
        Assert.Equal(1048577u, Devices.Minor(big));
    }

    [Fact]
    public void Lstat_reports_inode_links_size_and_blocks()
    {
        string file = tmp["f"];
        File.WriteAllBytes(file, new byte[8192]);
        Files.Link(file, tmp["g"]);
        var a = Files.Lstat(file);
        var b = Files.Lstat(tmp["g"]);
        Assert.Equal(a.Inode, b.Inode);
        Assert.Equal(2UL, a.LinkCount);
        Assert.Equal(8192, a.Size);
        Assert.True(a.AllocatedBytes >= 8192, $"{a.Blocks} blocks");
        Assert.Equal(FileType.RegularFile, a.Type);
        Assert.Null(Files.TryLstat(tmp["missing"]));
        Assert.Equal(Errno.ENOENT, Assert.Throws<NativeException>(() => Files.Lstat(tmp["missing"])).Errno);
    }

    [Fact]
    public void Symlink_calls_act_on_the_link_not_its_target()
    {
        string target = tmp["target"];
        File.WriteAllText(target, "x");
        Files.Chmod(target, Oct.Parse("640"));
        var before = Files.Lstat(target);
        Files.Symlink(target, tmp["link"]);

        Files.Lchown(tmp["link"], 1234, 5678);
        Files.SetTimes(tmp["link"], new UnixTimestamp(1000, 1), new UnixTimestamp(2000, 123456789));

        var link = Files.Lstat(tmp["link"]);
        Assert.Equal(FileType.Symlink, link.Type);
        Assert.Equal((1234u, 5678u), (link.Uid, link.Gid));
        Assert.Equal(new UnixTimestamp(2000, 123456789), link.ModificationTime);
        var after = Files.Lstat(target);
        Assert.Equal((before.Uid, before.Gid, before.ModificationTime), (after.Uid, after.Gid, after.ModificationTime));
        Assert.Equal(Oct.Parse("640"), after.Permissions);
        Assert.Equal(target, Files.ReadLink(tmp["link"]));
    }

    [Fact]
    public void SetTimes_keeps_nanoseconds()
    {
        string file = tmp["t"];
        File.WriteAllText(file, "");
        Files.SetTimes(file, new UnixTimestamp(1_500_000_000, 987654321), new UnixTimestamp(1_600_000_000, 123456789));
        var st = Files.Lstat(file);
        Assert.Equal(new UnixTimestamp(1_600_000_000, 123456789), st.ModificationTime);
        Assert.Equal(new UnixTimestamp(1_500_000_000, 987654321), st.AccessTime);
    }

    [Fact]
    public void Xattrs_round_trip_binary_values_on_files_and_symlinks()
    {
        string file = tmp["x"];
        File.WriteAllText(file, "");
        byte[] binary = [0x00, 0xff, 0x80, 0x01];
        Xattrs.Set(file, "user.test", "hello"u8);
        Xattrs.Set(file, "trusted.bin", binary);
        Assert.Equal("hello"u8.ToArray(), Xattrs.Get(file, "user.test"));
        Assert.Equal(binary, Xattrs.Get(file, "trusted.bin"));
        Assert.Null(Xattrs.Get(file, "user.absent"));
        Assert.Contains("user.test", Xattrs.List(file));
        Assert.Contains("trusted.bin", Xattrs.List(file));

        // trusted.* on the symlink itself; the target is untouched.
        Files.Symlink(file, tmp["xl"]);
        Xattrs.Set(tmp["xl"], "trusted.onlink", "1"u8);
        Assert.Equal("1"u8.ToArray(), Xattrs.Get(tmp["xl"], "trusted.onlink"));
        Assert.Null(Xattrs.Get(file, "trusted.onlink"));

        // user.* is not allowed on symlinks: the caller gets EPERM to decide on.
        Assert.Equal(Errno.EPERM, Xattrs.TrySet(tmp["xl"], "user.x", "1"u8));
        Xattrs.Remove(file, "user.test");
        Assert.Null(Xattrs.Get(file, "user.test"));
    }

    [Fact]
    public void Rename_replaces_and_RenameNoReplace_refuses()
    {
        File.WriteAllText(tmp["a"], "a");
        File.WriteAllText(tmp["b"], "b");
        File.WriteAllText(tmp["c"], "c");
        Files.Rename(tmp["a"], tmp["b"]);
        Assert.Equal("a", File.ReadAllText(tmp["b"]));
        Assert.False(File.Exists(tmp["a"]));
        var e = Assert.Throws<NativeException>(() => Files.RenameNoReplace(tmp["c"], tmp["b"]));
        Assert.Equal(Errno.EEXIST, e.Errno);
        Assert.Equal("a", File.ReadAllText(tmp["b"]));
    }

    [Fact]
    public void Fsync_of_files_and_directories()
    {
        File.WriteAllText(tmp["s"], "data");
        Files.Fsync(tmp["s"]);
        Files.FsyncDirectory(tmp.Path);
        Files.SyncFilesystem(tmp.Path);
        Assert.Equal(Errno.ENOENT, Assert.Throws<NativeException>(() => Files.FsyncDirectory(tmp["nope"])).Errno);
    }

    [Fact]
    public void StatFs_reports_the_file_system_type_and_usage()
    {
        var root = Files.StatFs(tmp.Path);
        var rootMount = Mounts.ReadMountInfo().Where(m => tmp.Path.StartsWith(m.MountPoint.TrimEnd('/') + "/", StringComparison.Ordinal) || m.MountPoint == "/")
            .OrderByDescending(m => m.MountPoint.Length).First();
        if (rootMount.FsType == "ext4") Assert.Equal(FilesystemStats.Ext4Magic, root.Type);
        Assert.True(root.TotalBlocks > 0);
        Assert.True(root.FreeBlocks <= root.TotalBlocks);
        Assert.True(root.UsedBytes > 0);
        Assert.True(root.TotalInodes > root.FreeInodes);

        string tmpfs = tmp["tmpfs"];
        Directory.CreateDirectory(tmpfs);
        Mounts.Mount("tmpfs", tmpfs, "tmpfs", MountFlags.None, "size=1m");
        try
        {
            var st = Files.StatFs(tmpfs);
            Assert.Equal(FilesystemStats.TmpfsMagic, st.Type);
            Assert.Equal(1024UL * 1024, st.CapacityBytes);
        }
        finally
        {
            Mounts.Unmount(tmpfs);
        }
    }

    [Fact]
    public void IsMountPoint_follows_mountinfo()
    {
        string dir = tmp["mp"];
        Directory.CreateDirectory(dir);
        Assert.True(Mounts.IsMountPoint("/proc"));
        Assert.False(Mounts.IsMountPoint(dir));
        Assert.False(Mounts.IsMountPoint(tmp["absent"]));
        Mounts.Mount(dir, dir, null, MountFlags.Bind);
        Assert.True(Mounts.IsMountPoint(dir));
        Assert.True(Mounts.IsMountPoint(dir + "/"));
        Mounts.Unmount(dir, UnmountFlags.Detach);
        Assert.False(Mounts.IsMountPoint(dir));
        Assert.Equal(Errno.EINVAL, Mounts.TryUnmount(dir));
    }

    [Fact]
    public void Mountinfo_lines_are_parsed_and_unescaped()
    {
        var m = Mounts.ParseMountInfoLine("36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue");
        Assert.NotNull(m);
        Assert.Equal((36, 35, 98u, 0u), (m.MountId, m.ParentId, m.Major, m.Minor));
        Assert.Equal("/mnt/with space", m.MountPoint);
        Assert.Equal(["master:1"], m.OptionalFields);
        Assert.Equal(("ext3", "/dev/root", "rw,errors=continue"), (m.FsType, m.Source, m.SuperOptions));
    }

    [Fact]
    public void RemoveTree_deletes_devices_and_read_only_dirs_without_following_links()
    {
        string outside = tmp["outside"];
        Directory.CreateDirectory(outside);
        File.WriteAllText(Path.Combine(outside, "keep"), "k");
        string tree = tmp["tree"];
        Directory.CreateDirectory(Path.Combine(tree, "ro/sub"));
        Files.MakeWhiteout(Path.Combine(tree, "ro/sub/wh"));
        Files.Symlink(outside, Path.Combine(tree, "ro/link"));
        Files.Chmod(Path.Combine(tree, "ro"), Oct.Parse("555"));

        Assert.True(Files.RemoveTree(tree));
        Assert.False(Directory.Exists(tree));
        Assert.True(File.Exists(Path.Combine(outside, "keep")));
        Assert.False(Files.RemoveTree(tree));
    }

    [Fact]
    public void RealPath_resolves_links()
    {
        Directory.CreateDirectory(tmp["real"]);
        Files.Symlink(tmp["real"], tmp["alias"]);
        Assert.Equal(Files.RealPath(tmp["real"]), Files.RealPath(tmp["alias"]));
    }

    [Fact]
    public void UnixTimestamp_converts_DateTimeOffset_including_before_1970()
    {
        var t = UnixTimestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddTicks(-1));
        Assert.Equal(new UnixTimestamp(-1, 999_999_900), t);
        Assert.Equal(DateTimeOffset.UnixEpoch.AddTicks(-1), t.ToDateTimeOffset());
        Assert.Equal(new UnixTimestamp(1, 500_000_000), UnixTimestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddMilliseconds(1500)));
    }
}
