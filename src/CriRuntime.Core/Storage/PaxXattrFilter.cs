using System.Text;

namespace CriRuntime.Storage;

/// <summary>
/// Sits between the layer stream and TarReader and takes extended-attribute records out of PAX
/// headers before TarReader parses them. System.Formats.Tar decodes PAX values as UTF-8 (mangling
/// binary values such as security.capability) and splits records at the first '\n' instead of using
/// their length (failing on a binary value containing 0x0a). This filter parses records by length,
/// as Go's archive/tar does, and exposes the exact bytes as <see cref="CurrentXattrs"/>: the xattrs
/// of the most recent entry header passed through, i.e. of the entry TarReader just returned
/// (TarReader reads an entry's data lazily, never the next header early).
/// </summary>
internal sealed class PaxXattrFilter(Stream inner) : Stream
{
    // Larger PAX headers are passed through untouched (TarReader then gets the lossy strings).
    private const int MaxPaxHeader = 16 * 1024 * 1024;
    private const int Block = 512;

    private byte[] pending = [];
    private int pendingOffset;
    private long dataRemaining;
    private bool passthrough;
    private List<(string Name, byte[] Value)>? nextXattrs;
    private long? nextSize;

    /// <summary>Xattrs (name, exact value) of the last entry header read.</summary>
    public IReadOnlyList<(string Name, byte[] Value)> CurrentXattrs { get; private set; } = [];

    /// <summary>Entry headers passed through (PAX 'x'/'g' and GNU 'L'/'K' metadata headers excluded).</summary>
    public long EntryHeaders { get; private set; }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var array = new byte[buffer.Length];
        int n = ReadAsync(array, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        array.AsSpan(0, n).CopyTo(buffer);
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty) return 0;
        while (true)
        {
            if (pendingOffset < pending.Length)
            {
                int n = Math.Min(buffer.Length, pending.Length - pendingOffset);
                pending.AsSpan(pendingOffset, n).CopyTo(buffer.Span);
                pendingOffset += n;
                return n;
            }
            if (passthrough) return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (dataRemaining > 0)
            {
                int want = (int)Math.Min(buffer.Length, dataRemaining);
                int n = await inner.ReadAsync(buffer[..want], cancellationToken).ConfigureAwait(false);
                dataRemaining -= n;
                return n;
            }
            await NextHeaderAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask NextHeaderAsync(CancellationToken ct)
    {
        var header = new byte[Block];
        int got = await inner.ReadAtLeastAsync(header, Block, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        SetPending(header.AsSpan(0, got).ToArray());
        // End of archive, a torn stream or a header TarReader will reject: stop interpreting.
        if (got < Block || header.AsSpan().IndexOfAnyExcept((byte)0) < 0 || !ChecksumValid(header))
        {
            passthrough = true;
            return;
        }
        long size = ParseNumber(header.AsSpan(124, 12));
        if (size < 0)
        {
            passthrough = true;
            return;
        }
        switch ((char)header[156])
        {
            case 'x' when size <= MaxPaxHeader:
                await FilterPaxHeaderAsync(header, (int)size, ct).ConfigureAwait(false);
                break;
            case 'x' or 'g' or 'L' or 'K':
                dataRemaining = Align(size);
                break;
            default:
                EntryHeaders++;
                CurrentXattrs = nextXattrs ?? [];
                dataRemaining = Align(nextSize ?? size);
                nextXattrs = null;
                nextSize = null;
                break;
        }
    }

    private async ValueTask FilterPaxHeaderAsync(byte[] header, int size, CancellationToken ct)
    {
        var data = new byte[Align(size)];
        int got = await inner.ReadAtLeastAsync(data, data.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        if (got < data.Length || !TryParseRecords(data.AsSpan(0, size), out var kept, out var xattrs, out var sizeRecord))
        {
            // Let TarReader see (and judge) the original bytes.
            SetPending([.. header, .. data.AsSpan(0, got)]);
            if (got < data.Length) passthrough = true;
            return;
        }
        if (xattrs.Count > 0) (nextXattrs ??= new()).AddRange(xattrs);
        if (sizeRecord is not null) nextSize = sizeRecord;

        WriteOctal(header.AsSpan(124, 12), kept.Length);
        header.AsSpan(148, 8).Fill((byte)' ');
        int sum = 0;
        foreach (byte b in header) sum += b;
        WriteOctal(header.AsSpan(148, 7), sum);
        header[155] = (byte)' ';
        var output = new byte[Block + Align(kept.Length)];
        header.CopyTo(output, 0);
        kept.CopyTo(output, Block);
        SetPending(output);
    }

    /// <summary>Parses "LENGTH KEY=VALUE\n" records by their length. Xattr records are taken out;
    /// the others are kept verbatim (the last of duplicate keys wins, as in Go).</summary>
    internal static bool TryParseRecords(ReadOnlySpan<byte> data, out byte[] kept,
        out List<(string Name, byte[] Value)> xattrs, out long? sizeRecord)
    {
        kept = [];
        xattrs = new();
        sizeRecord = null;
        var others = new Dictionary<string, byte[]>();
        var order = new List<string>();
        int pos = 0;
        while (pos < data.Length)
        {
            if (data[pos..].IndexOfAnyExcept((byte)0) < 0) break; // NUL padding at the end
            int space = data[pos..].IndexOf((byte)' ');
            if (space <= 0 || !int.TryParse(data.Slice(pos, space), System.Globalization.NumberStyles.None, null, out int length)
                || length <= space + 2 || pos + length > data.Length || data[pos + length - 1] != (byte)'\n')
                return false;
            var record = data.Slice(pos, length);
            var body = record[(space + 1)..^1];
            int eq = body.IndexOf((byte)'=');
            if (eq <= 0) return false;
            string key = Encoding.UTF8.GetString(body[..eq]);
            var value = body[(eq + 1)..];
            if (key.StartsWith(LayerUnpacker.SchilyXattrPrefix, StringComparison.Ordinal))
            {
                xattrs.Add((key[LayerUnpacker.SchilyXattrPrefix.Length..], value.ToArray()));
            }
            else if (key.StartsWith(LayerUnpacker.LibarchiveXattrPrefix, StringComparison.Ordinal))
            {
                if (!LayerUnpacker.TryDecodeLibarchiveXattr(key, Encoding.ASCII.GetString(value), out var xattr)) return false;
                xattrs.Add(xattr);
            }
            else
            {
                if (key == "size")
                {
                    if (!long.TryParse(value, System.Globalization.NumberStyles.None, null, out long s)) return false;
                    sizeRecord = s;
                }
                if (!others.ContainsKey(key)) order.Add(key);
                others[key] = record.ToArray();
            }
            pos += length;
        }
        kept = order.SelectMany(k => others[k]).ToArray();
        return true;
    }

    private void SetPending(byte[] bytes)
    {
        pending = bytes;
        pendingOffset = 0;
    }

    private static bool ChecksumValid(ReadOnlySpan<byte> header)
    {
        long stored = ParseNumber(header.Slice(148, 8));
        long unsigned = 0, signed = 0;
        for (int i = 0; i < Block; i++)
        {
            byte b = i is >= 148 and < 156 ? (byte)' ' : header[i];
            unsigned += b;
            signed += (sbyte)b;
        }
        return stored == unsigned || stored == signed;
    }

    /// <summary>An octal field, or GNU base-256 when the high bit is set; -1 when malformed.</summary>
    private static long ParseNumber(ReadOnlySpan<byte> field)
    {
        if ((field[0] & 0x80) != 0)
        {
            if ((field[0] & 0x40) != 0) return -1; // negative
            long value = field[0] & 0x3f;
            foreach (byte b in field[1..])
            {
                if (value > (long.MaxValue >> 8)) return -1;
                value = (value << 8) | b;
            }
            return value;
        }
        long octal = 0;
        bool digits = false;
        foreach (byte b in field)
        {
            if (b is (byte)' ' or 0)
            {
                if (digits) break;
                continue;
            }
            if (b is < (byte)'0' or > (byte)'7') return -1;
            octal = octal * 8 + (b - '0');
            digits = true;
        }
        return octal;
    }

    private static void WriteOctal(Span<byte> field, long value)
    {
        // Zero-padded digits filling the field but its last byte, which is NUL.
        string text = Convert.ToString(value, 8).PadLeft(field.Length - 1, '0');
        Encoding.ASCII.GetBytes(text, field);
        field[^1] = 0;
    }

    private static long Align(long n) => (n + Block - 1) & ~(long)(Block - 1);

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
