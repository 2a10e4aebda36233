using CriRuntime.Images;
using CriRuntime.Storage;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Storage;

public sealed class BlobStoreTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Fact]
    public async Task Put_stores_content_addressed_and_Read_returns_it()
    {
        var store = new BlobStore(tmp["blobs"]);
        byte[] data = "{\"schemaVersion\":2}"u8.ToArray();
        var digest = Digest.Sha256(data);

        Assert.False(store.Exists(digest));
        await store.PutAsync(digest, data, CancellationToken.None);
        Assert.True(store.Exists(digest));
        Assert.Equal(Path.Combine(tmp["blobs"], "sha256", digest.Hex), store.PathOf(digest));
        Assert.Equal(data, File.ReadAllBytes(store.PathOf(digest)));
        Assert.Equal(data, await store.ReadAsync(digest, CancellationToken.None));
        Assert.Equal([digest], store.List());

        await store.PutAsync(digest, data, CancellationToken.None); // idempotent
        Assert.Empty(Directory.GetFileSystemEntries(tmp["blobs/ingest"]));
    }

    [Fact]
    public async Task Put_refuses_content_that_does_not_match_the_digest()
    {
        var store = new BlobStore(tmp["blobs"]);
        var claimed = Digest.Sha256("something else");
        var e = await Assert.ThrowsAsync<DigestMismatchException>(() => store.PutAsync(claimed, "data"u8.ToArray(), CancellationToken.None));
        Assert.Equal(claimed, e.Expected);
        Assert.Equal(Digest.Sha256("data"), e.Actual);
        Assert.False(store.Exists(claimed));
        Assert.Empty(store.List());
    }

    [Fact]
    public async Task Read_detects_corruption_on_disk()
    {
        var store = new BlobStore(tmp["blobs"]);
        byte[] data = "config"u8.ToArray();
        var digest = Digest.Sha256(data);
        await store.PutAsync(digest, data, CancellationToken.None);
        File.WriteAllText(store.PathOf(digest), "confiG");
        var e = await Assert.ThrowsAsync<DigestMismatchException>(() => store.ReadAsync(digest, CancellationToken.None));
        Assert.Contains("corrupt", e.Message);
        await Assert.ThrowsAsync<FileNotFoundException>(() => store.ReadAsync(Digest.Sha256("absent"), CancellationToken.None));
    }

    [Fact]
    public async Task Put_repairs_a_truncated_blob()
    {
        var store = new BlobStore(tmp["blobs"]);
        byte[] data = "manifest bytes"u8.ToArray();
        var digest = Digest.Sha256(data);
        Directory.CreateDirectory(Path.GetDirectoryName(store.PathOf(digest))!);
        File.WriteAllText(store.PathOf(digest), "mani");
        await store.PutAsync(digest, data, CancellationToken.None);
        Assert.Equal(data, await store.ReadAsync(digest, CancellationToken.None));
    }

    [Fact]
    public async Task Delete_and_CleanupIngest()
    {
        var store = new BlobStore(tmp["blobs"]);
        byte[] data = "x"u8.ToArray();
        var digest = Digest.Sha256(data);
        await store.PutAsync(digest, data, CancellationToken.None);
        Assert.True(store.Delete(digest));
        Assert.False(store.Delete(digest));
        Assert.False(store.Exists(digest));

        File.WriteAllText(tmp["blobs/ingest/.abc.tmp-1234"], "partial");
        Directory.CreateDirectory(tmp["blobs/ingest/stray"]);
        var reopened = new BlobStore(tmp["blobs"]);
        reopened.CleanupIngest();
        Assert.Empty(Directory.GetFileSystemEntries(tmp["blobs/ingest"]));
    }

    [Fact]
    public void List_ignores_files_that_are_not_digests()
    {
        var store = new BlobStore(tmp["blobs"]);
        File.WriteAllText(tmp["blobs/sha256/not-a-digest"], "");
        Assert.Empty(store.List());
    }
}
