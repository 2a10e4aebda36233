using CriRuntime.Storage;
using Xunit;

namespace CriRuntime.Tests.Storage;

public sealed class AtomicFileTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Fact]
    public async Task Writes_and_replaces_leaving_no_temp_files()
    {
        string path = tmp["state.json"];
        await AtomicFile.WriteAllBytesAsync(path, "one"u8.ToArray(), CancellationToken.None);
        Assert.Equal("one", File.ReadAllText(path));
        var inode = CriRuntime.Native.Files.Lstat(path).Inode;

        AtomicFile.WriteAllBytes(path, "two, longer"u8);
        Assert.Equal("two, longer", File.ReadAllText(path));
        // Replaced by rename, not rewritten in place: a reader holding the old file never sees a mix.
        Assert.NotEqual(inode, CriRuntime.Native.Files.Lstat(path).Inode);
        Assert.Equal(["state.json"], Directory.GetFileSystemEntries(tmp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public async Task Cancelled_write_keeps_the_old_content_and_no_temp_file()
    {
        string path = tmp["keep"];
        File.WriteAllText(path, "old");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => AtomicFile.WriteAllBytesAsync(path, "new"u8.ToArray(), cts.Token));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Single(Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public async Task Failure_to_rename_removes_the_temp_file()
    {
        // The target is a non-empty directory: rename(2) fails after the temp file was written.
        string path = tmp["dir"];
        Directory.CreateDirectory(Path.Combine(path, "child"));
        await Assert.ThrowsAnyAsync<IOException>(() => AtomicFile.WriteAllBytesAsync(path, "x"u8.ToArray(), CancellationToken.None));
        Assert.Equal(["dir"], Directory.GetFileSystemEntries(tmp.Path).Select(Path.GetFileName));
    }
}
