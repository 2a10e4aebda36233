using System.Runtime.InteropServices;

namespace CriRuntime.Native;

// SPDY compresses header blocks with zlib and a preset dictionary. .NET's ZLibStream cannot take a preset
// dictionary, so this binds the few entry points needed from the system's libz.so.1 (zlib1g is in every
// Debian install; a Native AOT build resolves the library at first use, like libc here).

/// <summary>The z_stream of zlib.h on LP64 Linux (112 bytes). Lives in native memory: zlib keeps a pointer to it.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct ZStream
{
    public byte* NextIn;
    public uint AvailIn;
    public nuint TotalIn;
    public byte* NextOut;
    public uint AvailOut;
    public nuint TotalOut;
    public byte* Msg;
    public nint State;
    public nint ZAlloc;
    public nint ZFree;
    public nint Opaque;
    public int DataType;
    public nuint Adler;
    public nuint Reserved;
}

internal static unsafe partial class ZlibInterop
{
    private const string Libz = "libz.so.1";

    public const int Ok = 0, StreamEnd = 1, NeedDict = 2, StreamError = -2, DataError = -3, MemError = -4, BufError = -5;
    public const int NoFlush = 0, SyncFlush = 2;
    public const int Deflated = 8, DefaultStrategy = 0;

    // zlib only compares the first character of the version string with its own.
    public static ReadOnlySpan<byte> Version => "1.2.11\0"u8;

    [LibraryImport(Libz, EntryPoint = "deflateInit2_")]
    public static partial int deflateInit2_(ZStream* strm, int level, int method, int windowBits, int memLevel, int strategy, byte* version, int streamSize);

    [LibraryImport(Libz, EntryPoint = "deflateSetDictionary")]
    public static partial int deflateSetDictionary(ZStream* strm, byte* dictionary, uint dictLength);

    [LibraryImport(Libz, EntryPoint = "deflate")]
    public static partial int deflate(ZStream* strm, int flush);

    [LibraryImport(Libz, EntryPoint = "deflateEnd")]
    public static partial int deflateEnd(ZStream* strm);

    [LibraryImport(Libz, EntryPoint = "inflateInit_")]
    public static partial int inflateInit_(ZStream* strm, byte* version, int streamSize);

    [LibraryImport(Libz, EntryPoint = "inflateSetDictionary")]
    public static partial int inflateSetDictionary(ZStream* strm, byte* dictionary, uint dictLength);

    [LibraryImport(Libz, EntryPoint = "inflate")]
    public static partial int inflate(ZStream* strm, int flush);

    [LibraryImport(Libz, EntryPoint = "inflateEnd")]
    public static partial int inflateEnd(ZStream* strm);
}

/// <summary>
/// One direction of a zlib stream that shares its history across calls, as SPDY header compression needs:
/// every header block of a connection continues the same stream and ends with a sync flush.
/// Not thread-safe; the owner serialises calls.
/// </summary>
public sealed unsafe class ZlibDictionaryStream : IDisposable
{
    private readonly bool compress;
    private readonly byte[] dictionary;
    private ZStream* stream;
    private bool ended;

    private ZlibDictionaryStream(bool compress, byte[] dictionary)
    {
        this.compress = compress;
        this.dictionary = dictionary;
        stream = (ZStream*)NativeMemory.AllocZeroed((nuint)sizeof(ZStream));
    }

    /// <summary>
    /// A compressor with <paramref name="dictionary"/> preset. A 2 KiB window (windowBits 11) and memLevel 1 keep it at
    /// about 9 KiB per connection; header blocks are small, and any inflater reads a smaller window than its own.
    /// </summary>
    public static ZlibDictionaryStream CreateCompressor(byte[] dictionary, int level = 6)
    {
        var z = new ZlibDictionaryStream(true, dictionary);
        fixed (byte* version = ZlibInterop.Version)
            z.Check(ZlibInterop.deflateInit2_(z.stream, level, ZlibInterop.Deflated, 11, 1, ZlibInterop.DefaultStrategy, version, sizeof(ZStream)), "deflateInit2");
        fixed (byte* dict = dictionary)
            z.Check(ZlibInterop.deflateSetDictionary(z.stream, dict, (uint)dictionary.Length), "deflateSetDictionary");
        return z;
    }

    /// <summary>A decompressor that supplies <paramref name="dictionary"/> when the stream asks for it.</summary>
    public static ZlibDictionaryStream CreateDecompressor(byte[] dictionary)
    {
        var z = new ZlibDictionaryStream(false, dictionary);
        fixed (byte* version = ZlibInterop.Version)
            z.Check(ZlibInterop.inflateInit_(z.stream, version, sizeof(ZStream)), "inflateInit");
        return z;
    }

    /// <summary>Compresses <paramref name="input"/> and sync-flushes, appending the bytes to <paramref name="output"/>.</summary>
    public void CompressAndFlush(ReadOnlySpan<byte> input, ByteBuffer output)
    {
        if (!compress) throw new InvalidOperationException("not a compressor");
        ObjectDisposedException.ThrowIf(stream == null, this);
        fixed (byte* inp = input)
        {
            stream->NextIn = inp;
            stream->AvailIn = (uint)input.Length;
            while (true)
            {
                var room = output.Reserve(Math.Max(256, input.Length / 2 + 64));
                fixed (byte* outp = room)
                {
                    stream->NextOut = outp;
                    stream->AvailOut = (uint)room.Length;
                    var rc = ZlibInterop.deflate(stream, ZlibInterop.SyncFlush);
                    if (rc != ZlibInterop.Ok && rc != ZlibInterop.BufError) Check(rc, "deflate");
                    output.Commit(room.Length - (int)stream->AvailOut);
                    // deflate filled the room: there may be more to flush.
                    if (stream->AvailOut != 0 && stream->AvailIn == 0) break;
                }
            }
            stream->NextIn = null;
            stream->NextOut = null;
        }
    }

    /// <summary>
    /// Decompresses all of <paramref name="input"/> (one sync-flushed block) into <paramref name="output"/>, which
    /// must not grow past <paramref name="maxOutput"/> bytes: a hostile peer's zlib bomb is refused, not inflated.
    /// Throws <see cref="InvalidDataException"/> on corrupt input, a wrong dictionary or too much output.
    /// </summary>
    public void Decompress(ReadOnlySpan<byte> input, ByteBuffer output, int maxOutput)
    {
        if (compress) throw new InvalidOperationException("not a decompressor");
        ObjectDisposedException.ThrowIf(stream == null, this);
        if (ended) throw new InvalidDataException("the peer ended its header compression stream; no more header blocks can follow");
        var start = output.Length;
        fixed (byte* inp = input)
        {
            stream->NextIn = inp;
            stream->AvailIn = (uint)input.Length;
            try
            {
                while (true)
                {
                    var produced = output.Length - start;
                    // One byte of room past the limit tells "exactly at the limit" from "over it".
                    var roomSize = Math.Min(Math.Max(1024, input.Length * 4), maxOutput + 1 - produced);
                    var room = output.Reserve(roomSize);
                    int rc;
                    fixed (byte* outp = room)
                    {
                        stream->NextOut = outp;
                        stream->AvailOut = (uint)roomSize;
                        rc = ZlibInterop.inflate(stream, ZlibInterop.SyncFlush);
                        output.Commit(roomSize - (int)stream->AvailOut);
                        stream->NextOut = null;
                    }
                    if (output.Length - start > maxOutput)
                        throw new InvalidDataException($"a header block decompresses to more than {maxOutput} bytes");
                    switch (rc)
                    {
                        case ZlibInterop.NeedDict:
                            fixed (byte* dict = dictionary)
                                if (ZlibInterop.inflateSetDictionary(stream, dict, (uint)dictionary.Length) != ZlibInterop.Ok)
                                    throw new InvalidDataException("the header block was compressed with a dictionary other than SPDY/3's");
                            continue;
                        case ZlibInterop.StreamEnd:
                            ended = true;
                            if (stream->AvailIn != 0) throw new InvalidDataException("bytes follow the end of the header compression stream");
                            return;
                        case ZlibInterop.Ok:
                        case ZlibInterop.BufError:
                            // All input consumed and inflate did not fill its room: everything is out.
                            if (stream->AvailIn == 0 && stream->AvailOut != 0) return;
                            if (rc == ZlibInterop.BufError && stream->AvailOut != 0)
                                throw new InvalidDataException("the header block is truncated");
                            continue;
                        default:
                            throw new InvalidDataException($"the header block is not valid zlib data ({Message(rc)})");
                    }
                }
            }
            finally
            {
                stream->NextIn = null;
                stream->AvailIn = 0;
            }
        }
    }

    private string Message(int rc) => stream->Msg != null ? Marshal.PtrToStringUTF8((nint)stream->Msg) ?? rc.ToString() : $"zlib error {rc}";

    private void Check(int rc, string what)
    {
        if (rc == ZlibInterop.Ok) return;
        var message = Message(rc);
        Dispose();
        throw new InvalidOperationException($"zlib {what} failed: {message}");
    }

    public void Dispose()
    {
        if (stream == null) return;
        if (compress) ZlibInterop.deflateEnd(stream);
        else ZlibInterop.inflateEnd(stream);
        NativeMemory.Free(stream);
        stream = null;
        GC.SuppressFinalize(this);
    }

    ~ZlibDictionaryStream() => Dispose();
}

/// <summary>A growable byte buffer: reserve room, write into it, commit what was written.</summary>
public sealed class ByteBuffer(int initialCapacity = 256)
{
    private byte[] data = new byte[initialCapacity];

    public int Length { get; private set; }

    public ReadOnlySpan<byte> Span => data.AsSpan(0, Length);

    public ReadOnlyMemory<byte> Memory => data.AsMemory(0, Length);

    public Span<byte> Reserve(int size)
    {
        if (data.Length - Length < size)
            Array.Resize(ref data, Math.Max(checked(Length + size), data.Length * 2));
        return data.AsSpan(Length, size);
    }

    public void Commit(int count) => Length += count;

    public void Write(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Reserve(bytes.Length));
        Length += bytes.Length;
    }

    public void Clear() => Length = 0;
}
