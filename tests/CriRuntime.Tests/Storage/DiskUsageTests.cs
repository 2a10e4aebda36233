using CriRuntime.Native;
using CriRuntime.Storage;
using Xunit;

namespace CriRuntime.Tests.Storage;

/// <summary>du-style counting on the real filesystem.</summary>
public sealed class DiskUsageTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "criruntime-du-" + Guid.NewGuid().ToString("N"));

    public DiskUsageTests() => Directory.CreateDirectory(root);

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void Counts_allocated_bytes_and_inodes_with_hardlinks_once()
    {
        var empty = DiskUsage.Measure(root);
        Assert.Equal(1UL, empty.Inodes);

        Directory.CreateDirectory(Path.Combine(root, "a/b"));
        File.WriteAllBytes(Path.Combine(root, "a/b/data"), new byte[1 << 20]);
        Files.Link(Path.Combine(root, "a/b/data"), Path.Combine(root, "a/link"));
        Files.Symlink("/etc/passwd", Path.Combine(root, "a/sym")); // not followed
        using (var sparse = File.Create(Path.Combine(root, "sparse"))) sparse.SetLength(1L << 30);

        var usage = DiskUsage.Measure(root);
        // root, a, b, data (twice linked, counted once), sym, sparse
        Assert.Equal(6UL, usage.Inodes);
        ulong expected = 0;
        foreach (string p in new[] { root, root + "/a", root + "/a/b", root + "/a/b/data", root + "/a/sym", root + "/sparse" })
            expected += (ulong)Files.Lstat(p).AllocatedBytes;
        Assert.Equal(expected, usage.Bytes);
        Assert.InRange(usage.Bytes, 1UL << 20, 1UL << 24); // the megabyte, not the sparse gigabyte
    }

    [Fact]
    public void A_missing_directory_uses_nothing() =>
        Assert.Equal(default, DiskUsage.Measure(Path.Combine(root, "missing")));
}
