using System.IO.Compression;
using ZstdSharp;

namespace CriRuntime.Storage;

/// <summary>
/// Opens a layer blob as a tar stream, choosing the codec from the first bytes rather than from the
/// media type (registries and manifests get the media type wrong often enough).
/// </summary>
public static class LayerDecompression
{
    private static ReadOnlySpan<byte> GzipMagic => [0x1f, 0x8b];
    private static ReadOnlySpan<byte> ZstdMagic => [0x28, 0xb5, 0x2f, 0xfd];

    public enum Format { Tar, Gzip, Zstd }

    /// <summary>The decompressed stream; disposing it disposes <paramref name="compressed"/>.</summary>
    public static Stream OpenDecompressed(Stream compressed)
    {
        var head = new byte[4];
        int n = 0;
        while (n < head.Length)
        {
            int read = compressed.Read(head, n, head.Length - n);
            if (read == 0) break;
            n += read;
        }
        return Wrap(compressed, head.AsMemory(0, n));
    }

    public static async ValueTask<Stream> OpenDecompressedAsync(Stream compressed, CancellationToken ct)
    {
        var head = new byte[4];
        int n = await compressed.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        return Wrap(compressed, head.AsMemory(0, n));
    }

    public static Format Detect(ReadOnlySpan<byte> head) =>
        head.StartsWith(GzipMagic) ? Format.Gzip : head.StartsWith(ZstdMagic) ? Format.Zstd : Format.Tar;

    private static Stream Wrap(Stream compressed, ReadOnlyMemory<byte> head)
    {
        var whole = new PrefixedStream(head, compressed);
        return Detect(head.Span) switch
        {
            Format.Gzip => new GZipStream(whole, CompressionMode.Decompress, leaveOpen: false),
            Format.Zstd => new DecompressionStream(whole, leaveOpen: false),
            _ => whole,
        };
    }

    /// <summary>Gives back the sniffed bytes before the rest of the stream.</summary>
    private sealed class PrefixedStream(ReadOnlyMemory<byte> prefix, Stream inner) : Stream
    {
        private ReadOnlyMemory<byte> prefix = prefix;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (TakePrefix(buffer) is int n and > 0) return n;
            return inner.Read(buffer);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (TakePrefix(buffer.Span) is int n and > 0) return ValueTask.FromResult(n);
            return inner.ReadAsync(buffer, cancellationToken);
        }

        private int TakePrefix(Span<byte> buffer)
        {
            if (prefix.IsEmpty || buffer.IsEmpty) return 0;
            int n = Math.Min(prefix.Length, buffer.Length);
            prefix.Span[..n].CopyTo(buffer);
            prefix = prefix[n..];
            return n;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync().ConfigureAwait(false);
            await base.DisposeAsync().ConfigureAwait(false);
        }
    }
}
