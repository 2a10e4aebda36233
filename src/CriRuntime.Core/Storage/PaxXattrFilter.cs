using System.Text;

namespace CriRuntime.Storage;

/// <summary>
/// Sits between the layer stream and TarReader and follows the tar framing (headers, data, padding)
/// exactly as System.Formats.Tar's TarReader does, for three jobs:
/// <list type="bullet">
/// <item>Takes extended-attribute records out of PAX headers before TarReader parses them.
/// System.Formats.Tar decodes PAX values as UTF-8 (mangling binary values such as
/// security.capability) and splits records at the first '\n' instead of using their length (failing
/// on a binary value containing 0x0a). This filter parses records by length, as Go's archive/tar
/// does, and exposes the exact bytes as <see cref="CurrentXattrs"/>: the xattrs of the most recent
/// entry header passed through, i.e. of the entry TarReader just returned (TarReader reads an
/// entry's data lazily, never the next header early).</item>
/// <item>Accepts a tar stream that stops without the end-of-archive blocks, as Go's archive/tar (and
/// so containerd) does: when the stream ends at a header boundary, or right where the padding after
/// an entry's data would start (what a Go tar.Writer that was never closed leaves, e.g. umoci insert
/// before 0.4.8), TarReader is given the missing padding and an end-of-archive block. A stream that
/// ends anywhere else (inside a header, an entry's data, partway through padding, or after a PAX/GNU
/// header whose entry never comes) is refused as truncated.</item>
/// <item>Refuses PAX headers over 1 MiB and GNU long names/links over 64 KiB before TarReader sees
/// them: TarReader rents a buffer of whatever size the header declares.</item>
/// </list>
/// </summary>
internal sealed class PaxXattrFilter(Stream inner) : Stream
{
    /// <summary>Go's archive/tar limit for PAX headers (maxSpecialFileSize, as libarchive's).</summary>
    internal const int MaxPaxHeader = 1024 * 1024;
    /// <summary>Go allows 1 MiB here too; a path that long cannot be created (PATH_MAX is 4 KiB).</summary>
    internal const int MaxGnuLongName = 64 * 1024;
    private const int Block = 512;

    private byte[] pending = [];
    private int pendingOffset;
    private long position;           // bytes read from the inner stream
    private long dataRemaining;      // unread data bytes of the current entry or metadata header
    private long dataSize;
    private int paddingRemaining;    // unread padding bytes after that data
    private int paddingSize;
    private string section = "";     // what the current data belongs to, for messages
    private bool sectionIsEntry;     // an entry TarReader returns (not a PAX 'x' / GNU 'L' 'K' header)
    private string? awaitingEntry;   // a PAX 'x' / GNU 'L' 'K' header still waiting for its entry
    private bool passthrough;
    private bool ended;              // the inner stream ended and the synthetic end was queued
    private List<(string Name, byte[] Value)>? nextXattrs;
    private long? nextSize;
    private string? nextPath;

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
            if (ended) return 0;
            if (passthrough) return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (dataRemaining > 0)
            {
                int want = (int)Math.Min(buffer.Length, dataRemaining);
                int n = await inner.ReadAsync(buffer[..want], cancellationToken).ConfigureAwait(false);
                if (n == 0) throw Truncated($"inside the data of {section}: {dataSize - dataRemaining} of {dataSize} bytes are there");
                dataRemaining -= n;
                position += n;
                return n;
            }
            if (paddingRemaining > 0)
            {
                int n = await inner.ReadAsync(buffer[..Math.Min(buffer.Length, paddingRemaining)], cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    // No padding at all after an entry's data: an unclosed Go tar.Writer (it pads
                    // when the next header or the end is written). Go's reader takes this as the end.
                    if (paddingRemaining == paddingSize && sectionIsEntry)
                    {
                        End(paddingRemaining);
                        continue;
                    }
                    throw Truncated($"inside the padding after the data of {section}: {paddingSize - paddingRemaining} of {paddingSize} bytes are there");
                }
                paddingRemaining -= n;
                position += n;
                return n;
            }
            await NextHeaderAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask NextHeaderAsync(CancellationToken ct)
    {
        var header = new byte[Block];
        long at = position;
        int got = await inner.ReadAtLeastAsync(header, Block, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        position += got;
        if (got == 0)
        {
            if (awaitingEntry is not null) throw Truncated($"after {awaitingEntry}, before the entry it describes");
            // The end of the stream at a header boundary: the end of the archive, as for Go's reader.
            End(0);
            return;
        }
        if (got < Block) throw Truncated($"{got} bytes into the header at byte {at}");
        SetPending(header);
        // The end-of-archive marker or a header TarReader will reject: stop interpreting.
        if (!ChecksumValid(header))
        {
            passthrough = true;
            return;
        }
        long size = ParseNumber(header.AsSpan(124, 12));
        // TarReader would throw too (some of these as exceptions that do not say "bad data").
        if (size < 0) throw new InvalidDataException($"the header at byte {at} of the layer tar has an invalid size field");
        char type = (char)header[156];
        switch (type)
        {
            case 'x':
                if (size > MaxPaxHeader) throw TooLarge("PAX extended header", size, at, MaxPaxHeader);
                await FilterPaxHeaderAsync(header, (int)size, at, ct).ConfigureAwait(false);
                awaitingEntry = $"the PAX extended header at byte {at}";
                break;
            case 'g':
                // TarReader returns a global header as an entry of its own.
                if (size > MaxPaxHeader) throw TooLarge("PAX global header", size, at, MaxPaxHeader);
                StartSection(size, $"the PAX global header at byte {at}", entry: true);
                break;
            case 'L' or 'K':
                string what = type == 'L' ? "GNU long name" : "GNU long link name";
                if (size > MaxGnuLongName) throw TooLarge(what, size, at, MaxGnuLongName);
                StartSection(size, $"the {what} at byte {at}", entry: false);
                awaitingEntry = section;
                break;
            case 'S':
                // TarReader throws NotSupportedException for these; say what is wrong instead.
                throw new InvalidDataException($"layer entry '{nextPath ?? HeaderName(header)}' is a GNU sparse file, which is not supported");
            default:
                EntryHeaders++;
                CurrentXattrs = nextXattrs ?? [];
                StartSection(nextSize ?? size, $"entry '{nextPath ?? HeaderName(header)}' (header at byte {at})", entry: true);
                nextXattrs = null;
                nextSize = null;
                nextPath = null;
                awaitingEntry = null;
                break;
        }
    }

    private async ValueTask FilterPaxHeaderAsync(byte[] header, int size, long at, CancellationToken ct)
    {
        var data = new byte[Align(size)];
        int got = await inner.ReadAtLeastAsync(data, data.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        position += got;
        if (got < size) throw Truncated($"inside the PAX extended header at byte {at}: {got} of {size} bytes are there");
        if (got < data.Length) throw Truncated($"inside the padding after the PAX extended header at byte {at}");
        if (!TryParseRecords(data.AsSpan(0, size), out var kept, out var xattrs, out var sizeRecord, out var pathRecord))
            throw new InvalidDataException($"the PAX extended header at byte {at} of the layer tar has malformed records");
        if (xattrs.Count > 0) (nextXattrs ??= new()).AddRange(xattrs);
        if (sizeRecord is not null) nextSize = sizeRecord;
        if (pathRecord is not null) nextPath = pathRecord;

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

    private void StartSection(long size, string description, bool entry)
    {
        dataSize = dataRemaining = size;
        paddingSize = paddingRemaining = (int)(Align(size) - size);
        section = description;
        sectionIsEntry = entry;
    }

    /// <summary>The stream ended where an archive may end: give TarReader the padding it still
    /// expects and the two zero blocks that mark the end of an archive.</summary>
    private void End(int missingPadding)
    {
        paddingRemaining = 0;
        ended = true;
        SetPending(new byte[missingPadding + 2 * Block]);
    }

    private InvalidDataException Truncated(string where) =>
        new($"the layer is truncated: its tar stream ends after {position} bytes, {where}");

    private static InvalidDataException TooLarge(string what, long size, long at, int limit) =>
        new($"the layer tar has a {what} of {size} bytes at byte {at}; more than {limit} bytes is refused");

    /// <summary>The ustar name (with its prefix), for messages.</summary>
    private static string HeaderName(ReadOnlySpan<byte> header)
    {
        string name = Cstring(header[..100]);
        if (header.Slice(257, 6).SequenceEqual("ustar\0"u8))
        {
            string prefix = Cstring(header.Slice(345, 155));
            if (prefix.Length > 0) name = prefix + "/" + name;
        }
        return name;

        static string Cstring(ReadOnlySpan<byte> field)
        {
            int nul = field.IndexOf((byte)0);
            return Encoding.UTF8.GetString(nul < 0 ? field : field[..nul]);
        }
    }

    /// <summary>Parses "LENGTH KEY=VALUE\n" records by their length. Xattr records are taken out;
    /// the others are kept verbatim (the last of duplicate keys wins, as in Go). A record TarReader
    /// would also accept never makes this fail. <paramref name="sizeRecord"/> is the size TarReader
    /// will give the next entry (it parses "size" with long.Parse and ignores an empty one).</summary>
    internal static bool TryParseRecords(ReadOnlySpan<byte> data, out byte[] kept,
        out List<(string Name, byte[] Value)> xattrs, out long? sizeRecord, out string? pathRecord)
    {
        kept = [];
        xattrs = new();
        sizeRecord = null;
        pathRecord = null;
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
            if (eq < 0) return false;
            string key = Encoding.UTF8.GetString(body[..eq]);
            var value = body[(eq + 1)..];
            pos += length;
            if (key.StartsWith(LayerUnpacker.SchilyXattrPrefix, StringComparison.Ordinal))
            {
                xattrs.Add((key[LayerUnpacker.SchilyXattrPrefix.Length..], value.ToArray()));
                continue;
            }
            // Kept verbatim when it does not decode: TarReader accepts it and the unpacker skips it.
            if (key.StartsWith(LayerUnpacker.LibarchiveXattrPrefix, StringComparison.Ordinal)
                && LayerUnpacker.TryDecodeLibarchiveXattr(key, Encoding.ASCII.GetString(value), out var xattr))
            {
                xattrs.Add(xattr);
                continue;
            }
            if (key == "size")
            {
                if (value.IsEmpty) sizeRecord = null;
                else if (!long.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long s) || s < 0)
                    return false;
                else sizeRecord = s;
            }
            if (key == "path") pathRecord = Encoding.UTF8.GetString(value);
            if (!others.ContainsKey(key)) order.Add(key);
            others[key] = record.ToArray();
        }
        kept = order.SelectMany(k => others[k]).ToArray();
        return true;
    }

    private void SetPending(byte[] bytes)
    {
        pending = bytes;
        pendingOffset = 0;
    }

    /// <summary>The field read as TarReader reads it (octal); the sum of bytes taken as unsigned (as
    /// TarReader does) or signed (old writers). An all-zero block (the end-of-archive marker) fails.</summary>
    private static bool ChecksumValid(ReadOnlySpan<byte> header)
    {
        long stored = ParseOctal(header.Slice(148, 8));
        long unsigned = 0, signed = 0;
        for (int i = 0; i < Block; i++)
        {
            byte b = i is >= 148 and < 156 ? (byte)' ' : header[i];
            unsigned += b;
            signed += (sbyte)b;
        }
        return stored > 0 && (stored == unsigned || stored == signed);
    }

    /// <summary>A numeric field read as TarReader reads it: base-256 when the first byte is 0x80,
    /// else octal; -1 for what TarReader rejects (negative, overflowing, not octal).</summary>
    internal static long ParseNumber(ReadOnlySpan<byte> field)
    {
        if (field[0] == 0x80)
        {
            long value = 0;
            foreach (byte b in field[1..])
            {
                if (value > (long.MaxValue >> 8)) return -1;
                value = (value << 8) | b;
            }
            return value;
        }
        if ((field[0] & 0x80) != 0) return -1;
        return ParseOctal(field);
    }

    /// <summary>TarReader's octal: up to the first NUL, spaces trimmed, digits only.</summary>
    private static long ParseOctal(ReadOnlySpan<byte> field)
    {
        int nul = field.IndexOf((byte)0);
        if (nul >= 0) field = field[..nul];
        field = field.Trim((byte)' ');
        long octal = 0;
        foreach (byte b in field)
        {
            if (b is < (byte)'0' or > (byte)'7' || octal > (long.MaxValue >> 3)) return -1;
            octal = octal * 8 + (b - '0');
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
