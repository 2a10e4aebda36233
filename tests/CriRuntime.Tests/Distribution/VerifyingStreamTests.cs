using System.Text;
using CriRuntime.Images;
using CriRuntime.Images.Distribution;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Distribution;

public class VerifyingStreamTests
{
    private static readonly byte[] Content = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("layer content ", 10000)));

    [Fact]
    public async Task RightContentPassesAndReportsProgress()
    {
        long progress = 0;
        await using var stream = new VerifyingStream(new MemoryStream(Content), Digest.Sha256(Content), Content.Length, n => progress += n);
        var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        Assert.Equal(Content, copy.ToArray());
        Assert.Equal(Content.Length, progress);
        Assert.Equal(Content.Length, stream.BytesRead);
        Assert.Equal(0, await stream.ReadAsync(new byte[10])); // stays at EOF once verified
    }

    [Fact]
    public void SynchronousReadsVerifyToo()
    {
        using var stream = new VerifyingStream(new MemoryStream(Content), Digest.Sha256(Content), Content.Length);
        stream.CopyTo(Stream.Null);
        Assert.Equal(Content.Length, stream.BytesRead);

        var wrong = (byte[])Content.Clone();
        wrong[0] ^= 1;
        using var bad = new VerifyingStream(new MemoryStream(wrong), Digest.Sha256(Content), Content.Length);
        Assert.Throws<BlobVerificationException>(() => bad.CopyTo(Stream.Null));
    }

    [Fact]
    public async Task WrongDigestThrowsAtEof()
    {
        var wrong = (byte[])Content.Clone();
        wrong[^1] ^= 1;
        await using var stream = new VerifyingStream(new MemoryStream(wrong), Digest.Sha256(Content), Content.Length, what: "layer L");
        var buffer = new byte[Content.Length];
        int total = 0, n;
        // Every byte is handed out; only the EOF read fails.
        while (total < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(total))) > 0) total += n;
        Assert.Equal(Content.Length, total);
        var e = await Assert.ThrowsAsync<BlobVerificationException>(async () => Assert.Equal(0, await stream.ReadAsync(new byte[1])));
        Assert.Contains("layer L", e.Message);
        Assert.Contains(Digest.Sha256(wrong).ToString(), e.Message);
        Assert.Contains(Digest.Sha256(Content).ToString(), e.Message);
    }

    [Fact]
    public async Task TooManyBytesThrowsAsSoonAsTheSizeIsPassed()
    {
        var longer = Content.Concat(new byte[] { 1, 2, 3 }).ToArray();
        await using var stream = new VerifyingStream(new MemoryStream(longer), Digest.Sha256(Content), Content.Length);
        var e = await Assert.ThrowsAsync<BlobVerificationException>(() => stream.CopyToAsync(Stream.Null));
        Assert.Contains("larger", e.Message);
    }

    [Fact]
    public async Task TooFewBytesThrows()
    {
        var shorter = Content[..^10];
        await using var stream = new VerifyingStream(new MemoryStream(shorter), Digest.Sha256(Content), Content.Length);
        var e = await Assert.ThrowsAsync<BlobVerificationException>(() => stream.CopyToAsync(Stream.Null));
        Assert.Contains("truncated", e.Message);
        Assert.Contains($"got {shorter.Length} bytes", e.Message);
    }

    [Fact]
    public async Task VerifyToEndReadsWhatTheConsumerLeft()
    {
        await using var stream = new VerifyingStream(new MemoryStream(Content), Digest.Sha256(Content), Content.Length);
        await stream.ReadExactlyAsync(new byte[100]);
        await stream.VerifyToEndAsync(CancellationToken.None);
        Assert.Equal(Content.Length, stream.BytesRead);

        await using var bad = new VerifyingStream(new MemoryStream(Content), Digest.Sha256("other"), Content.Length);
        await bad.ReadExactlyAsync(new byte[100]);
        await Assert.ThrowsAsync<BlobVerificationException>(() => bad.VerifyToEndAsync(CancellationToken.None));
    }

    [Fact]
    public async Task EmptyBlob()
    {
        await using var stream = new VerifyingStream(new MemoryStream(), Digest.Sha256(ReadOnlySpan<byte>.Empty), 0);
        Assert.Equal(0, await stream.ReadAsync(new byte[10]));
    }

    [Fact]
    public async Task DisposeDisposesTheOwner()
    {
        var owner = new Flag();
        var stream = new VerifyingStream(new MemoryStream(Content), Digest.Sha256(Content), Content.Length, owner: owner);
        await stream.DisposeAsync();
        Assert.True(owner.Disposed);
    }

    private sealed class Flag : IDisposable
    {
        public bool Disposed;
        public void Dispose() => Disposed = true;
    }
}
