using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using CriRuntime.Images;
using CriRuntime.Native;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Storage;

/// <summary>A scratch directory on the root (ext4) file system; unmounts anything left under it and deletes it.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        if (Environment.UserName != "root" && !string.Equals(Environment.GetEnvironmentVariable("USER"), "root"))
            Assert.Fail("storage tests need root (mknod, chown, trusted xattrs, mount)");
        Path = System.IO.Path.Combine("/var/tmp/criruntime-tests", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string this[string relative] => System.IO.Path.Combine(Path, relative);

    public void Dispose()
    {
        foreach (var mount in Mounts.ReadMountInfo().Select(m => m.MountPoint)
                     .Where(m => m == Path || m.StartsWith(Path + "/", StringComparison.Ordinal))
                     .OrderByDescending(m => m.Length))
            Mounts.TryUnmount(mount, UnmountFlags.Detach);
        Files.RemoveTree(Path);
    }
}

internal static class Oct
{
    public static int Parse(string octal) => Convert.ToInt32(octal, 8);
}

/// <summary>Builds tars with System.Formats.Tar (PAX format unless told otherwise).</summary>
internal sealed class TestTar
{
    public static readonly DateTimeOffset DefaultTime = new(2021, 3, 4, 5, 6, 7, TimeSpan.Zero);

    private readonly MemoryStream stream = new();
    private readonly TarWriter writer;
    private readonly TarEntryFormat format;

    public TestTar(TarEntryFormat format = TarEntryFormat.Pax)
    {
        this.format = format;
        writer = new TarWriter(stream, format, leaveOpen: true);
    }

    public TestTar Dir(string name, string mode = "755", int uid = 0, int gid = 0, DateTimeOffset? mtime = null, IDictionary<string, string>? pax = null) =>
        Add(TarEntryType.Directory, name, mode, uid, gid, mtime, pax);

    public TestTar File(string name, string content, string mode = "644", int uid = 0, int gid = 0, DateTimeOffset? mtime = null, IDictionary<string, string>? pax = null) =>
        File(name, Encoding.UTF8.GetBytes(content), mode, uid, gid, mtime, pax);

    public TestTar File(string name, byte[] content, string mode = "644", int uid = 0, int gid = 0, DateTimeOffset? mtime = null, IDictionary<string, string>? pax = null) =>
        Add(TarEntryType.RegularFile, name, mode, uid, gid, mtime, pax, e => e.DataStream = new MemoryStream(content));

    public TestTar Symlink(string name, string target, int uid = 0, int gid = 0, DateTimeOffset? mtime = null) =>
        Add(TarEntryType.SymbolicLink, name, "777", uid, gid, mtime, null, e => e.LinkName = target);

    public TestTar HardLink(string name, string target) =>
        Add(TarEntryType.HardLink, name, "644", 0, 0, null, null, e => e.LinkName = target);

    public TestTar Device(string name, TarEntryType type, int major, int minor, string mode = "666") =>
        Add(type, name, mode, 0, 0, null, null, e =>
        {
            ((PosixTarEntry)e).DeviceMajor = major;
            ((PosixTarEntry)e).DeviceMinor = minor;
        });

    public TestTar Fifo(string name, string mode = "644") => Add(TarEntryType.Fifo, name, mode, 0, 0, null, null);

    public TestTar Whiteout(string name) => File(name, "");

    private TestTar Add(TarEntryType type, string name, string mode, int uid, int gid, DateTimeOffset? mtime,
        IDictionary<string, string>? pax, Action<TarEntry>? configure = null)
    {
        TarEntry entry = format switch
        {
            TarEntryFormat.Pax => pax is null ? new PaxTarEntry(type, name) : new PaxTarEntry(type, name, pax),
            TarEntryFormat.Gnu => new GnuTarEntry(type, name),
            _ => new UstarTarEntry(type, name),
        };
        entry.Mode = (UnixFileMode)Oct.Parse(mode);
        entry.Uid = uid;
        entry.Gid = gid;
        entry.ModificationTime = mtime ?? DefaultTime;
        configure?.Invoke(entry);
        writer.WriteEntry(entry);
        return this;
    }

    public byte[] Build()
    {
        writer.Dispose();
        return stream.ToArray();
    }
}

/// <summary>A hand-written tar, for what TarWriter cannot express (binary PAX values, nanosecond times).</summary>
internal sealed class RawTar
{
    private readonly MemoryStream stream = new();

    public RawTar Entry(string name, char type, byte[]? data = null, string mode = "644", int uid = 0, int gid = 0,
        long mtime = 1_600_000_000, IEnumerable<(string Key, byte[] Value)>? pax = null, string linkName = "")
    {
        if (pax is not null)
        {
            var records = new MemoryStream();
            foreach (var (key, value) in pax) records.Write(Record(key, value));
            WriteHeader("PaxHeaders/" + name, 'x', records.Length, "644", 0, 0, mtime, "");
            WriteData(records.ToArray());
        }
        data ??= [];
        WriteHeader(name, type, data.Length, mode, uid, gid, mtime, linkName);
        WriteData(data);
        return this;
    }

    /// <summary>Only a header, declaring <paramref name="size"/> (base-256 when asked); data, if any, via <see cref="Bytes"/>.</summary>
    public RawTar Header(string name, char type, long size, bool base256 = false)
    {
        WriteHeader(name, type, base256 ? 0 : size, "644", 0, 0, 1_600_000_000, "", base256 ? size : null);
        return this;
    }

    public RawTar Bytes(byte[] bytes)
    {
        stream.Write(bytes);
        return this;
    }

    public byte[] Build(byte[]? trailing = null, bool endBlocks = true)
    {
        if (endBlocks) stream.Write(new byte[1024]);
        if (trailing is not null) stream.Write(trailing);
        return stream.ToArray();
    }

    private static byte[] Record(string key, byte[] value)
    {
        var body = Encoding.UTF8.GetBytes(" " + key + "=").Concat(value).Append((byte)'\n').ToArray();
        int length = body.Length + 1;
        while (length.ToString().Length + body.Length != length) length++;
        return Encoding.ASCII.GetBytes(length.ToString()).Concat(body).ToArray();
    }

    private void WriteHeader(string name, char type, long size, string mode, int uid, int gid, long mtime, string linkName, long? base256Size = null)
    {
        var h = new byte[512];
        Encoding.UTF8.GetBytes(name).CopyTo(h, 0);
        Octal(h, 100, 8, Oct.Parse(mode));
        Octal(h, 108, 8, uid);
        Octal(h, 116, 8, gid);
        Octal(h, 124, 12, size);
        if (base256Size is { } big)
        {
            // GNU base-256: 0x80, then the value big-endian in the remaining 11 bytes.
            h.AsSpan(124, 12).Clear();
            h[124] = 0x80;
            System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(h.AsSpan(128, 8), big);
        }
        Octal(h, 136, 12, mtime);
        h[156] = (byte)type;
        Encoding.UTF8.GetBytes(linkName).CopyTo(h, 157);
        "ustar\0"u8.CopyTo(h.AsSpan(257));
        "00"u8.CopyTo(h.AsSpan(263));
        h.AsSpan(148, 8).Fill((byte)' ');
        int sum = h.Sum(b => b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(h, 148);
        stream.Write(h);
    }

    private void WriteData(byte[] data)
    {
        stream.Write(data);
        stream.Write(new byte[(512 - data.Length % 512) % 512]);
    }

    private static void Octal(byte[] h, int offset, int width, long value) =>
        Encoding.ASCII.GetBytes(Convert.ToString(value, 8).PadLeft(width - 1, '0') + "\0").CopyTo(h, offset);
}

internal static class Compress
{
    public static byte[] Gzip(byte[] data)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }

    public static byte[] Zstd(byte[] data)
    {
        using var compressor = new ZstdSharp.Compressor(3);
        return compressor.Wrap(data).ToArray();
    }

    public static Digest Sha256(byte[] data) => Digest.Sha256(data);
}
