namespace CriRuntime.Hosting.Http2;

/// <summary>
/// An HPACK dynamic table (RFC 7541 §2.3.2, §4): newest entry first, size = sum of
/// name + value + 32, oldest entries evicted to stay within the maximum size.
/// </summary>
internal sealed class HpackDynamicTable
{
    public const int EntryOverhead = 32;

    // Ring buffer holding entries oldest first, starting at `oldest`. An entry is one array with
    // the name then the value, so an insertion allocates once.
    private readonly record struct Entry(byte[] Bytes, int NameLength);

    private Entry[] ring;
    private int oldest;
    private int count;

    public HpackDynamicTable(int maxSize)
    {
        MaxSize = maxSize;
        // Every entry takes at least 32 octets, so the table never holds more than this.
        ring = new Entry[Math.Max(1, maxSize / EntryOverhead)];
    }

    /// <summary>Current size in octets (RFC 7541 §4.1).</summary>
    public int Size { get; private set; }

    /// <summary>Current maximum size, as last set by a dynamic table size update.</summary>
    public int MaxSize { get; private set; }

    public int Count => count;

    /// <summary>Name of the entry at 0-based <paramref name="index"/>, 0 being the newest.</summary>
    public ReadOnlySpan<byte> Name(int index)
    {
        var e = At(index);
        return e.Bytes.AsSpan(0, e.NameLength);
    }

    /// <summary>Value of the entry at 0-based <paramref name="index"/>, 0 being the newest.</summary>
    public ReadOnlySpan<byte> Value(int index)
    {
        var e = At(index);
        return e.Bytes.AsSpan(e.NameLength);
    }

    private Entry At(int index)
    {
        if ((uint)index >= (uint)count) throw new ArgumentOutOfRangeException(nameof(index));
        return ring[(oldest + count - 1 - index) % ring.Length];
    }

    /// <summary>Adds an entry, evicting the oldest as needed; an entry larger than the maximum empties the table (§4.4).</summary>
    public void Add(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        long entrySize = (long)name.Length + value.Length + EntryOverhead;
        if (entrySize > MaxSize)
        {
            Clear();
            return;
        }
        // Copy first: name may point into an entry that is about to be evicted.
        var bytes = new byte[name.Length + value.Length];
        name.CopyTo(bytes);
        value.CopyTo(bytes.AsSpan(name.Length));
        EvictUntil(MaxSize - (int)entrySize);
        if (count == ring.Length) Grow();
        ring[(oldest + count) % ring.Length] = new Entry(bytes, name.Length);
        count++;
        Size += (int)entrySize;
    }

    /// <summary>Applies a dynamic table size update (§6.3); the caller has checked it against the limit.</summary>
    public void SetMaxSize(int maxSize)
    {
        MaxSize = maxSize;
        EvictUntil(maxSize);
    }

    private void EvictUntil(int targetSize)
    {
        while (Size > targetSize && count > 0)
        {
            ref var e = ref ring[oldest];
            Size -= e.Bytes.Length + EntryOverhead;
            e = default;
            oldest = (oldest + 1) % ring.Length;
            count--;
        }
    }

    private void Clear() => EvictUntil(0);

    private void Grow()
    {
        // Only reachable if MaxSize grew past the initial capacity's assumption; bounded by MaxSize / 32.
        var bigger = new Entry[ring.Length * 2];
        for (int i = 0; i < count; i++) bigger[i] = ring[(oldest + i) % ring.Length];
        ring = bigger;
        oldest = 0;
    }
}
