using CriRuntime.Native;
using Microsoft.Win32.SafeHandles;
using Xunit;

namespace CriRuntime.Tests.Storage;

/// <summary>Files.RemoveTree on the real kernel (as root): depth, symlinks, mount points.</summary>
public sealed class TreeRemovalTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    /// <summary>Makes name/name/... <paramref name="levels"/> deep below <paramref name="top"/> with *at calls
    /// (the path is far past PATH_MAX), a file at every 1000th level; returns the status of the deepest dir.</summary>
    private static FileStatus MakeDeepTree(string top, int levels, string name = "d")
    {
        Directory.CreateDirectory(top);
        SafeFileHandle current = Files.OpenDirectory(top);
        try
        {
            for (int i = 0; i < levels; i++)
            {
                FilesAt.Mkdir(current, name, Convert.ToInt32("755", 8));
                if (i % 1000 == 0) FilesAt.CreateFile(current, "f", Convert.ToInt32("644", 8)).Dispose();
                var next = FilesAt.OpenDirectory(current, name);
                current.Dispose();
                current = next;
            }
            return Files.Fstat(current);
        }
        finally
        {
            current.Dispose();
        }
    }

    /// <summary>This process's fds open inside <paramref name="top"/> (other tests run in parallel in this process, so
    /// a plain count would be theirs too). A directory deeper than PATH_MAX has no /proc link text: ENAMETOOLONG counts.</summary>
    private static int OpenFdsUnder(string top)
    {
        int n = 0;
        foreach (string fd in Directory.GetFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                if (Files.ReadLink(fd).StartsWith(top + "/", StringComparison.Ordinal)) n++;
            }
            catch (NativeException e) when (e.Errno == Errno.ENAMETOOLONG) { n++; }
            catch (NativeException) { } // closed meanwhile
        }
        return n;
    }

    [Fact]
    public void Removes_a_tree_30000_levels_deep_without_recursion_and_with_a_bounded_number_of_fds()
    {
        string top = tmp["deep"];
        MakeDeepTree(top, 30_000);
        int maxDuring = 0, removed = 0, samples = 0;

        Assert.True(Files.RemoveTree(top, st =>
        {
            if (removed++ % 1000 == 0) { maxDuring = Math.Max(maxDuring, OpenFdsUnder(top)); samples++; }
        }));

        Assert.False(Directory.Exists(top));
        Assert.Equal(30_000 + 1 + 30, removed); // every directory, the top, and a file every 1000 levels
        // One directory fd inside the tree at a time (plus the enumerator's while listing), not one per level.
        Assert.True(samples > 20);
        Assert.InRange(maxDuring, 1, 2);
    }

    [Fact]
    public void Long_names_at_every_level_do_not_hit_a_path_length_limit()
    {
        string top = tmp["long"];
        MakeDeepTree(top, 200, new string('n', 255)); // about 51 KiB of path
        Assert.True(Files.RemoveTree(top));
        Assert.False(Directory.Exists(top));
    }

    [Fact]
    public void Symlinks_to_outside_directories_and_files_are_removed_themselves_never_followed()
    {
        string outside = tmp["outside"];
        Directory.CreateDirectory(Path.Combine(outside, "sub"));
        File.WriteAllText(Path.Combine(outside, "keep"), "k");
        File.WriteAllText(Path.Combine(outside, "sub", "keep2"), "k");
        string tree = tmp["tree"];
        Directory.CreateDirectory(Path.Combine(tree, "a/b"));
        Files.Symlink(outside, Path.Combine(tree, "a/b/to-dir"));
        Files.Symlink(Path.Combine(outside, "keep"), Path.Combine(tree, "a/to-file"));
        Files.Symlink("../../../outside", Path.Combine(tree, "a/b/relative"));
        Files.Symlink(outside, Path.Combine(tree, "top-link"));

        Assert.True(Files.RemoveTree(tree));
        Assert.False(Directory.Exists(tree));
        Assert.Equal("k", File.ReadAllText(Path.Combine(outside, "keep")));
        Assert.Equal("k", File.ReadAllText(Path.Combine(outside, "sub", "keep2")));

        // A symlink given as the tree itself is unlinked, not followed.
        string link = tmp["link-to-outside"];
        Files.Symlink(outside, link);
        Assert.True(Files.RemoveTree(link));
        Assert.Null(Files.TryLstat(link));
        Assert.True(File.Exists(Path.Combine(outside, "keep")));
    }

    [Fact]
    public void A_tmpfs_mounted_inside_is_not_crossed_and_is_reported()
    {
        string tree = tmp["mounted"];
        string mountPoint = Path.Combine(tree, "x/mnt");
        Directory.CreateDirectory(mountPoint);
        File.WriteAllText(Path.Combine(tree, "x/sibling"), "s");
        Directory.CreateDirectory(Path.Combine(tree, "other/deeper"));
        Mounts.Mount("tmpfs", mountPoint, "tmpfs", MountFlags.None, "size=1m");
        try
        {
            File.WriteAllText(Path.Combine(mountPoint, "on-tmpfs"), "t");

            var e = Assert.Throws<MountPointsInTreeException>(() => Files.RemoveTree(tree));

            Assert.Equal([mountPoint], e.MountPoints);
            Assert.Contains(mountPoint, e.Message);
            Assert.Contains("unmount", e.Message);
            Assert.Equal("t", File.ReadAllText(Path.Combine(mountPoint, "on-tmpfs")));
            Assert.True(Mounts.IsMountPoint(mountPoint));
            // Everything not above the mount point is gone.
            Assert.False(File.Exists(Path.Combine(tree, "x/sibling")));
            Assert.False(Directory.Exists(Path.Combine(tree, "other")));
        }
        finally
        {
            Mounts.Unmount(mountPoint);
        }
        Assert.True(Files.RemoveTree(tree));
        Assert.False(Directory.Exists(tree));
    }

    [Fact]
    public void A_bind_mount_from_the_same_filesystem_is_not_crossed()
    {
        // Same st_dev as its parent: only statx's mount-root attribute tells it apart.
        string source = tmp["bind-source"];
        Directory.CreateDirectory(source);
        File.WriteAllText(Path.Combine(source, "precious"), "p");
        string tree = tmp["bound"];
        string mountPoint = Path.Combine(tree, "m");
        Directory.CreateDirectory(mountPoint);
        Mounts.Mount(source, mountPoint, null, MountFlags.Bind);
        try
        {
            Assert.Equal(Files.Lstat(tree).Device, Files.Lstat(mountPoint).Device);
            var e = Assert.Throws<MountPointsInTreeException>(() => Files.RemoveTree(tree));
            Assert.Equal([mountPoint], e.MountPoints);
            Assert.Equal("p", File.ReadAllText(Path.Combine(source, "precious")));
        }
        finally
        {
            Mounts.Unmount(mountPoint);
        }
    }

    [Fact]
    public void A_tree_that_is_itself_a_mount_point_is_left_alone()
    {
        string mountPoint = tmp["itself"];
        Directory.CreateDirectory(mountPoint);
        Mounts.Mount("tmpfs", mountPoint, "tmpfs", MountFlags.None, "size=1m");
        try
        {
            File.WriteAllText(Path.Combine(mountPoint, "f"), "f");
            Assert.Throws<MountPointsInTreeException>(() => Files.RemoveTree(mountPoint));
            Assert.True(File.Exists(Path.Combine(mountPoint, "f")));
        }
        finally
        {
            Mounts.Unmount(mountPoint);
        }
    }
}
