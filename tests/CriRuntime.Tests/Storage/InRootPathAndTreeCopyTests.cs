using CriRuntime.Native;
using CriRuntime.Storage;
using Xunit;

namespace CriRuntime.Tests.Storage;

/// <summary>
/// Resolving paths inside an untrusted tree (an image's rootfs or layers) and copying out of it: on the real file
/// system, with symlinks that try to lead out of the tree.
/// </summary>
public sealed class InRootPathAndTreeCopyTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    /// <summary>root/ with data/seed, data/sub/deep, abs -> /data, climb -> ../../../.., out -> /etc/hostname-like paths, file, loop1 <-> loop2.</summary>
    private string MakeTree()
    {
        string root = tmp["root"];
        Directory.CreateDirectory(Path.Combine(root, "data", "sub"));
        File.WriteAllText(Path.Combine(root, "data", "seed"), "seed\n");
        File.WriteAllText(Path.Combine(root, "data", "sub", "deep"), "deep\n");
        File.WriteAllText(Path.Combine(root, "file"), "a file\n");
        File.CreateSymbolicLink(Path.Combine(root, "abs"), "/data");
        File.CreateSymbolicLink(Path.Combine(root, "climb"), "../../../../../..");
        File.CreateSymbolicLink(Path.Combine(root, "data", "up"), "../../../../etc");
        File.CreateSymbolicLink(Path.Combine(root, "loop1"), "loop2");
        File.CreateSymbolicLink(Path.Combine(root, "loop2"), "loop1");
        // The node has this; the tree does not: resolving must never find it.
        Directory.CreateDirectory(tmp["outside"]);
        File.WriteAllText(tmp["outside/secret"], "node secret\n");
        return root;
    }

    [Theory]
    [InlineData("data", "data")]
    [InlineData("/data/sub/", "data/sub")]
    [InlineData("abs/sub/deep", "data/sub/deep")]
    [InlineData("climb/data/seed", "data/seed")]
    [InlineData("data/../data/./seed", "data/seed")]
    [InlineData("../../data", "data")]
    [InlineData("", "")]
    public void Resolve_stays_inside_the_root(string path, string expected)
    {
        var found = InRootPath.Resolve(MakeTree(), path);
        Assert.Null(found.Problem);
        Assert.True(found.Exists, $"{path} should resolve to {expected}");
        Assert.Equal(expected, found.RelativePath);
    }

    [Fact]
    public void Resolve_reports_missing_paths_loops_and_files_used_as_directories()
    {
        string root = MakeTree();
        // ../../../../etc from /data/up is the tree's /etc, which it does not have.
        var up = InRootPath.Resolve(root, "data/up");
        Assert.False(up.Exists);
        Assert.Null(up.Problem);
        Assert.Equal("etc", up.RelativePath);

        var outside = InRootPath.Resolve(root, "climb/../outside/secret");
        Assert.False(outside.Exists);
        Assert.Equal("outside/secret", outside.RelativePath);

        var loop = InRootPath.Resolve(root, "loop1/x");
        Assert.Contains("symlinks", loop.Problem);

        var notDir = InRootPath.Resolve(root, "file/x");
        Assert.Contains("not a directory", notDir.Problem);

        var file = InRootPath.Resolve(root, "file");
        Assert.True(file.Exists);
        Assert.Equal(FileType.RegularFile, file.Status!.Value.Type);
    }

    [Fact]
    public void Copy_keeps_modes_owners_and_symlinks_and_never_follows_them()
    {
        string source = tmp["src"];
        Directory.CreateDirectory(Path.Combine(source, "dir"));
        File.WriteAllText(Path.Combine(source, "dir", "file"), "content\n");
        Files.Chmod(Path.Combine(source, "dir", "file"), Oct.Parse("640"));
        Files.Lchown(Path.Combine(source, "dir", "file"), 999, 998);
        Files.Chmod(Path.Combine(source, "dir"), Oct.Parse("750"));
        Files.Lchown(Path.Combine(source, "dir"), 999, 998);
        File.CreateSymbolicLink(Path.Combine(source, "to-etc"), "/etc");
        File.CreateSymbolicLink(Path.Combine(source, "dir", "to-file"), "file");
        Files.Mknod(Path.Combine(source, "fifo"), FileType.Fifo, Oct.Parse("600"));
        Files.Mknod(Path.Combine(source, "null"), FileType.CharacterDevice, Oct.Parse("666"), 1, 3);
        string target = tmp["dst"];
        Directory.CreateDirectory(target);

        TreeCopyResult result;
        using (var from = Files.OpenDirectory(source))
        using (var to = Files.OpenDirectory(target))
            result = TreeCopy.CopyContents(from, to, new TreeCopyLimits(100, 10, 1 << 20), "/src");

        Assert.Equal("content\n", File.ReadAllText(Path.Combine(target, "dir", "file")));
        var file = Files.Lstat(Path.Combine(target, "dir", "file"));
        Assert.Equal((Oct.Parse("640"), 999u, 998u), (file.Permissions, file.Uid, file.Gid));
        var dir = Files.Lstat(Path.Combine(target, "dir"));
        Assert.Equal((Oct.Parse("750"), 999u, 998u), (dir.Permissions, dir.Uid, dir.Gid));
        Assert.Equal("/etc", Files.ReadLink(Path.Combine(target, "to-etc")));
        Assert.Equal(FileType.Symlink, Files.Lstat(Path.Combine(target, "to-etc")).Type);
        Assert.Equal("file", Files.ReadLink(Path.Combine(target, "dir", "to-file")));
        Assert.Equal(FileType.Fifo, Files.Lstat(Path.Combine(target, "fifo")).Type);
        // A device node is not copied into a container's writable volume.
        Assert.Null(Files.TryLstat(Path.Combine(target, "null")));
        Assert.Equal(["null"], result.Skipped);
    }

    [Fact]
    public void Copy_stops_at_its_limits()
    {
        string source = tmp["many"];
        Directory.CreateDirectory(source);
        for (int i = 0; i < 20; i++) File.WriteAllText(Path.Combine(source, $"f{i}"), new string('x', 100));
        string deep = source;
        for (int i = 0; i < 5; i++) Directory.CreateDirectory(deep = Path.Combine(deep, "d"));

        void Copy(TreeCopyLimits limits, string into)
        {
            Directory.CreateDirectory(into);
            using var from = Files.OpenDirectory(source);
            using var to = Files.OpenDirectory(into);
            TreeCopy.CopyContents(from, to, limits, "/many");
        }

        var entries = Assert.Throws<CriException>(() => Copy(new TreeCopyLimits(10, 100, 1 << 20), tmp["a"]));
        Assert.Equal(CriErrorKind.ResourceExhausted, entries.ErrorKind);
        var bytes = Assert.Throws<CriException>(() => Copy(new TreeCopyLimits(100, 100, 1000), tmp["b"]));
        Assert.Contains("bytes", bytes.Message);
        var depth = Assert.Throws<CriException>(() => Copy(new TreeCopyLimits(100, 3, 1 << 20), tmp["c"]));
        Assert.Contains("deep", depth.Message);
        Copy(new TreeCopyLimits(100, 10, 1 << 20), tmp["d"]);
        Assert.Equal(20, Directory.GetFiles(tmp["d"]).Length);
    }
}
