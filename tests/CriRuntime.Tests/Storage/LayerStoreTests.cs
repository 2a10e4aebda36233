using System.Text.Json;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Storage;

public sealed class LayerStoreTests : IDisposable
{
    private readonly TempDir tmp = new();
    private readonly string root;

    public LayerStoreTests() => root = tmp["overlay"];

    public void Dispose() => tmp.Dispose();

    private LayerStore NewStore() => new(root, NullLogger<LayerStore>.Instance);

    private static Func<CancellationToken, Task<Stream>> Open(byte[] blob) => _ => Task.FromResult<Stream>(new MemoryStream(blob));

    [Fact]
    public void ChainId_matches_a_hand_computed_value()
    {
        // Values computed with coreutils:
        //   d_i = printf 'layer<i>' | sha256sum;  c1 = printf "sha256:$d0 sha256:$d1" | sha256sum;  c2 likewise from c1 and d2.
        var diffIds = new[] { Digest.Sha256("layer0"), Digest.Sha256("layer1"), Digest.Sha256("layer2") };
        Assert.Equal("sha256:4fbec69b941195fd56f8212a5000e304129451d82efca94ff0e0fb2d5355472e", LayerStore.ChainId(diffIds, 0).ToString());
        Assert.Equal("sha256:ef232af0eb422cdfd7917631657cd8ed2bfd5b9461b37c427aa0d3e0a19adf79", LayerStore.ChainId(diffIds, 1).ToString());
        Assert.Equal("sha256:7ad3896338947cc04ee0b35b50d400ff32538d63f42f85ec87feac78bf71a54d", LayerStore.ChainId(diffIds, 2).ToString());
        Assert.Throws<ArgumentOutOfRangeException>(() => LayerStore.ChainId(diffIds, 3));
    }

    [Theory]
    [InlineData("tar")]
    [InlineData("gzip")]
    [InlineData("zstd")]
    public async Task Ensure_unpacks_commits_and_lays_out_like_overlay2(string format)
    {
        byte[] tar = new TestTar().Dir("etc/").File("etc/os-release", "ID=test\n").Build();
        byte[] blob = format switch { "gzip" => Compress.Gzip(tar), "zstd" => Compress.Zstd(tar), _ => tar };
        var diffId = Digest.Sha256(tar);
        var store = NewStore();

        var info = await store.EnsureAsync(diffId, null, diffId, Open(blob), CancellationToken.None);

        Assert.Equal((diffId, diffId, (Digest?)null, 8L, 2L), (info.ChainId, info.DiffId, info.Parent, info.Size, info.Inodes));
        Assert.Equal(Path.Combine(root, diffId.Hex, "diff"), store.DiffDir(diffId));
        Assert.Equal("ID=test\n", File.ReadAllText(Path.Combine(store.DiffDir(diffId), "etc/os-release")));
        Assert.True(File.Exists(Path.Combine(root, diffId.Hex, "layer.json")));

        string link = store.ShortDiffDir(diffId);
        Assert.Equal(Path.Combine(root, "l"), Path.GetDirectoryName(link));
        Assert.Equal(26, Path.GetFileName(link).Length);
        Assert.Equal($"../{diffId.Hex}/diff", Files.ReadLink(link));
        Assert.Equal("ID=test\n", File.ReadAllText(Path.Combine(link, "etc/os-release")));

        Assert.True(store.TryGet(diffId, out var got));
        Assert.Equal(info, got);
        Assert.Equal([info], store.List());
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(root, "tmp")));

        // Already there: the stream is not opened again.
        var again = await store.EnsureAsync(diffId, null, diffId, _ => throw new InvalidOperationException("must not reopen"), CancellationToken.None);
        Assert.Equal(info, again);
    }

    [Fact]
    public async Task Concurrent_calls_for_one_layer_open_the_stream_once()
    {
        byte[] tar = new TestTar().File("f", "shared").Build();
        var diffId = Digest.Sha256(tar);
        var store = NewStore();
        int opens = 0;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var opened = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<Stream> OpenSlowly(CancellationToken ct)
        {
            Interlocked.Increment(ref opens);
            opened.TrySetResult();
            await gate.Task.WaitAsync(ct);
            return new MemoryStream(tar);
        }

        var first = store.EnsureAsync(diffId, null, diffId, OpenSlowly, CancellationToken.None);
        await opened.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var second = store.EnsureAsync(diffId, null, diffId, OpenSlowly, CancellationToken.None);
        Assert.False(second.IsCompleted);
        gate.SetResult();
        var results = await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(1, opens);
        Assert.Equal(results[0], results[1]);
        Assert.Single(Directory.GetFileSystemEntries(Path.Combine(root, "l")));
    }

    [Fact]
    public async Task One_caller_cancelling_does_not_cancel_the_shared_unpack()
    {
        byte[] tar = new TestTar().File("f", "x").Build();
        var diffId = Digest.Sha256(tar);
        var store = NewStore();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var opened = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<Stream> OpenSlowly(CancellationToken ct)
        {
            opened.TrySetResult();
            await gate.Task.WaitAsync(ct);
            return new MemoryStream(tar);
        }

        using var impatient = new CancellationTokenSource();
        var a = store.EnsureAsync(diffId, null, diffId, OpenSlowly, impatient.Token);
        await opened.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var b = store.EnsureAsync(diffId, null, diffId, OpenSlowly, CancellationToken.None);
        impatient.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a);
        gate.SetResult();
        var info = await b.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(diffId, info.ChainId);
        Assert.True(store.TryGet(diffId, out _));
    }

    [Fact]
    public async Task A_caller_arriving_while_an_unpack_is_abandoned_starts_a_fresh_one()
    {
        byte[] tar = new TestTar().File("f", "x").Build();
        var diffId = Digest.Sha256(tar);
        var store = NewStore();
        int opens = 0;
        var firstOpened = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseFirst = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sharedToken = CancellationToken.None;
        async Task<Stream> OpenLayer(CancellationToken ct)
        {
            if (Interlocked.Increment(ref opens) == 1)
            {
                sharedToken = ct;
                firstOpened.SetResult();
                await releaseFirst.Task; // a source slow to notice cancellation
            }
            return new MemoryStream(tar);
        }

        using var cts = new CancellationTokenSource();
        var abandoned = store.EnsureAsync(diffId, null, diffId, OpenLayer, cts.Token);
        await firstOpened.Task.WaitAsync(TimeSpan.FromSeconds(10));
        cts.Cancel();
        // The only caller left: the shared work gets cancelled (asynchronously, once its wait unwinds).
        for (int i = 0; !sharedToken.IsCancellationRequested; i++)
        {
            Assert.True(i < 2000, "the shared unpack was never cancelled");
            await Task.Delay(5);
        }
        var fresh = store.EnsureAsync(diffId, null, diffId, OpenLayer, CancellationToken.None);
        await Task.Delay(50);
        Assert.False(abandoned.IsCompleted); // the last caller out waits for the cleanup
        Assert.False(fresh.IsCompleted);
        releaseFirst.SetResult();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        var info = await fresh.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(diffId, info.ChainId);
        Assert.Equal(2, opens);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(root, "tmp")));
    }

    [Fact]
    public async Task Cancellation_leaves_nothing_behind()
    {
        var diffId = Digest.Sha256("whatever");
        var store = NewStore();
        byte[] head = new TestTar().File("a", new byte[4096]).Build()[..2048];
        var stalled = new StallingStream(head);
        using var cts = new CancellationTokenSource();
        var task = store.EnsureAsync(diffId, null, diffId, _ => Task.FromResult<Stream>(stalled), cts.Token);
        await stalled.Stalled.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotEmpty(Directory.GetFileSystemEntries(Path.Combine(root, "tmp"))); // it was mid-unpack
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => task);

        AssertEmptyStore(store, diffId);
        Assert.True(stalled.Disposed);
    }

    [Fact]
    public async Task DiffId_mismatch_leaves_nothing_behind()
    {
        byte[] tar = new TestTar().File("f", "actual content").Build();
        var claimed = Digest.Sha256("something else");
        var store = NewStore();
        var e = await Assert.ThrowsAsync<LayerDigestMismatchException>(() =>
            store.EnsureAsync(claimed, null, claimed, Open(Compress.Gzip(tar)), CancellationToken.None));
        Assert.Equal(claimed, e.Expected);
        Assert.Equal(Digest.Sha256(tar), e.Actual);
        Assert.Contains(claimed.ToString(), e.Message);
        Assert.Contains(Digest.Sha256(tar).ToString(), e.Message);
        AssertEmptyStore(store, claimed);
    }

    [Fact]
    public async Task Hostile_layer_leaves_nothing_behind()
    {
        byte[] tar = new TestTar().Symlink("evil", "/etc").File("evil/criruntime-store-pwned", "x").Build();
        var diffId = Digest.Sha256(tar);
        var store = NewStore();
        await Assert.ThrowsAsync<UnsafeLayerException>(() => store.EnsureAsync(diffId, null, diffId, Open(tar), CancellationToken.None));
        AssertEmptyStore(store, diffId);
        Assert.False(File.Exists("/etc/criruntime-store-pwned"));
    }

    [Fact]
    public async Task A_failing_source_is_a_failure_not_a_cancellation()
    {
        var diffId = Digest.Sha256("x");
        var store = NewStore();
        // E.g. HttpClient's timeout surfaces as TaskCanceledException although nobody cancelled.
        var e = await Assert.ThrowsAsync<IOException>(() =>
            store.EnsureAsync(diffId, null, diffId, _ => Task.FromException<Stream>(new TaskCanceledException("timeout")), CancellationToken.None));
        Assert.IsType<TaskCanceledException>(e.InnerException);
        AssertEmptyStore(store, diffId);
    }

    [Fact]
    public async Task Chain_id_must_follow_from_parent_and_diff_id()
    {
        var store = NewStore();
        var d0 = Digest.Sha256("a");
        var d1 = Digest.Sha256("b");
        await Assert.ThrowsAsync<ArgumentException>(() => store.EnsureAsync(d1, d0, d1, Open([]), CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentException>(() => store.EnsureAsync(d0, null, d1, Open([]), CancellationToken.None));
    }

    [Fact]
    public async Task Child_layers_record_their_parent()
    {
        byte[] t0 = new TestTar().File("a", "0").Build();
        byte[] t1 = new TestTar().File("b", "1").Build();
        var diffIds = new[] { Digest.Sha256(t0), Digest.Sha256(t1) };
        var store = NewStore();
        var c0 = LayerStore.ChainId(diffIds, 0);
        var c1 = LayerStore.ChainId(diffIds, 1);
        await store.EnsureAsync(c0, null, diffIds[0], Open(t0), CancellationToken.None);
        var info = await store.EnsureAsync(c1, c0, diffIds[1], Open(t1), CancellationToken.None);
        Assert.Equal(c0, info.Parent);
        Assert.Equal(diffIds[1], info.DiffId);
    }

    [Fact]
    public async Task Load_reloads_layers_and_cleans_leftovers()
    {
        byte[] tar = new TestTar().File("f", "persisted").Build();
        var diffId = Digest.Sha256(tar);
        var first = NewStore();
        var info = await first.EnsureAsync(diffId, null, diffId, Open(tar), CancellationToken.None);
        string link = first.ShortDiffDir(diffId);

        // Debris of a crash: an unpack in progress (with a whiteout device), a layer directory
        // without metadata, a stale link, and this layer's link gone missing.
        Directory.CreateDirectory(Path.Combine(root, "tmp/abc123/diff/sub"));
        Files.MakeWhiteout(Path.Combine(root, "tmp/abc123/diff/sub/wh"));
        string incomplete = Path.Combine(root, Digest.Sha256("incomplete").Hex);
        Directory.CreateDirectory(Path.Combine(incomplete, "diff"));
        string corrupt = Path.Combine(root, Digest.Sha256("corrupt").Hex);
        Directory.CreateDirectory(Path.Combine(corrupt, "diff"));
        File.WriteAllText(Path.Combine(corrupt, "layer.json"), "{not json");
        Files.Symlink("../nothing/diff", Path.Combine(root, "l/AAAAAAAAAAAAAAAAAAAAAAAAAA"));
        File.Delete(link);

        var second = NewStore();
        await second.LoadAsync(CancellationToken.None);

        Assert.True(second.TryGet(diffId, out var reloaded));
        Assert.Equal(info with { CreatedAt = reloaded.CreatedAt }, reloaded);
        Assert.Equal(info.CreatedAt.ToUnixTimeMilliseconds(), reloaded.CreatedAt.ToUnixTimeMilliseconds());
        Assert.Single(second.List());
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(root, "tmp")));
        Assert.False(Directory.Exists(incomplete));
        Assert.False(Directory.Exists(corrupt));
        Assert.Equal([Path.GetFileName(link)], Directory.GetFileSystemEntries(Path.Combine(root, "l")).Select(Path.GetFileName));
        Assert.Equal("persisted", File.ReadAllText(Path.Combine(second.ShortDiffDir(diffId), "f")));
    }

    [Fact]
    public async Task Metadata_is_json_with_the_link_id()
    {
        byte[] tar = new TestTar().File("f", "x").Build();
        var diffId = Digest.Sha256(tar);
        var store = NewStore();
        await store.EnsureAsync(diffId, null, diffId, Open(tar), CancellationToken.None);
        using var json = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(root, diffId.Hex, "layer.json")));
        Assert.Equal(diffId.ToString(), json.RootElement.GetProperty("chainId").GetString());
        Assert.Equal(Path.GetFileName(store.ShortDiffDir(diffId)), json.RootElement.GetProperty("link").GetString());
    }

    [Fact]
    public async Task Remove_deletes_files_whiteouts_and_link()
    {
        byte[] tar = new TestTar().Dir("d/").Whiteout("d/.wh.gone").Whiteout("d/.wh..wh..opq").File("d/f", "x").Build();
        var diffId = Digest.Sha256(tar);
        var store = NewStore();
        await store.EnsureAsync(diffId, null, diffId, Open(tar), CancellationToken.None);
        Assert.Equal(FileType.CharacterDevice, Files.Lstat(Path.Combine(store.DiffDir(diffId), "d/gone")).Type);

        Assert.True(await store.RemoveAsync(diffId, CancellationToken.None));
        Assert.False(await store.RemoveAsync(diffId, CancellationToken.None));
        AssertEmptyStore(store, diffId);
    }

    private void AssertEmptyStore(LayerStore store, Digest chainId)
    {
        Assert.False(store.TryGet(chainId, out _));
        Assert.Empty(store.List());
        Assert.Equal(["l", "tmp"], Directory.GetFileSystemEntries(root).Select(Path.GetFileName).Order());
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(root, "tmp")));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(root, "l")));
        Assert.Throws<KeyNotFoundException>(() => store.ShortDiffDir(chainId));
    }

    /// <summary>Returns some bytes, then blocks until cancelled, like a registry download that hangs.</summary>
    private sealed class StallingStream(byte[] head) : Stream
    {
        private int position;
        private readonly TaskCompletionSource stalled = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Stalled => stalled.Task;

        public bool Disposed { get; private set; }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (position < head.Length)
            {
                int n = Math.Min(buffer.Length, head.Length - position);
                head.AsMemory(position, n).CopyTo(buffer);
                position += n;
                return n;
            }
            stalled.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("async only");
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            Disposed = true;
            base.Dispose(disposing);
        }
    }
}
