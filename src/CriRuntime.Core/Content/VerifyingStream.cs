using System.Security.Cryptography;

namespace CriRuntime.Content;

/// <summary>Content whose size or digest is not what its descriptor promised.</summary>
public sealed class BlobVerificationException(string message) : IOException(message), ICriError
{
    public CriErrorKind ErrorKind => CriErrorKind.DataLoss;
}

/// <summary>
/// Passes a blob through while hashing it. At end of stream the size and digest must equal the
/// descriptor's, and reading past the expected size fails at once, so nothing unverified is ever
/// reported as complete. Readers that stop before EOF (a decompressor that ignores trailing bytes)
/// must call <see cref="VerifyToEndAsync"/>.
/// </summary>
public sealed class VerifyingStream : Stream
{
    private readonly Stream inner;
    private readonly IncrementalHash hasher;
    private readonly Digest expectedDigest;
    private readonly long expectedSize;
    private readonly Action<long>? progress;
    private readonly string what;
    private readonly IDisposable? owner;
    private long read;
    private bool verified;
    private bool disposed;

    /// <param name="what">Names the blob in error messages, e.g. "layer sha256:… of docker.io/library/busybox".</param>
    /// <param name="owner">Disposed with the stream (the HTTP response the content comes from).</param>
    public VerifyingStream(Stream inner, Digest expectedDigest, long expectedSize, Action<long>? progress = null, string? what = null, IDisposable? owner = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(expectedSize);
        this.inner = inner;
        this.expectedDigest = expectedDigest;
        this.expectedSize = expectedSize;
        this.progress = progress;
        this.what = what ?? $"blob {expectedDigest}";
        this.owner = owner;
        hasher = expectedDigest.CreateHasher();
    }

    public long BytesRead => read;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => expectedSize;
    public override long Position { get => read; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (verified) return 0;
        int n = inner.Read(buffer);
        return Account(buffer[..n]);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (verified) return 0;
        int n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        return Account(buffer.Span[..n]);
    }

    /// <summary>Reads and hashes whatever the consumer left unread, then verifies.</summary>
    public async Task VerifyToEndAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[81920];
        while (await ReadAsync(buffer, cancellationToken).ConfigureAwait(false) > 0) { }
    }

    private int Account(ReadOnlySpan<byte> data)
    {
        if (data.Length == 0)
        {
            // EOF: the whole blob has been seen, so now both checks are possible.
            if (read != expectedSize)
                throw new BlobVerificationException($"{what} is truncated: got {read} bytes, expected {expectedSize}");
            var actual = expectedDigest.WithHash(hasher.GetHashAndReset());
            if (actual != expectedDigest)
                throw new BlobVerificationException($"{what} failed verification: its content has digest {actual}, expected {expectedDigest}");
            verified = true;
            return 0;
        }
        if (read + data.Length > expectedSize)
        {
            read += data.Length;
            throw new BlobVerificationException($"{what} is larger than its descriptor says: more than {expectedSize} bytes");
        }
        read += data.Length;
        hasher.AppendData(data);
        progress?.Invoke(data.Length);
        return data.Length;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !disposed)
        {
            disposed = true;
            inner.Dispose();
            owner?.Dispose();
            hasher.Dispose();
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!disposed)
        {
            disposed = true;
            await inner.DisposeAsync().ConfigureAwait(false);
            owner?.Dispose();
            hasher.Dispose();
        }
        GC.SuppressFinalize(this);
    }
}
