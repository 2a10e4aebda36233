using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Storage;
using CriRuntime.TestSupport;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Storage;

/// <summary>
/// Where a layer's tar stream may end: without the end-of-archive blocks (accepted, as Go's
/// archive/tar and so containerd accept it) or anywhere else (refused as truncated); and PAX/GNU
/// headers declaring more than the limits.
/// </summary>
public sealed class TarFramingTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    private static readonly string LongPaxName = string.Join('/', Enumerable.Repeat("pax-component", 12)) + "/file";
    private static readonly string LongGnuName = string.Join('/', Enumerable.Repeat("gnu-component", 12)) + "/last";

    /// <summary>Files, a directory, a symlink, a PAX entry with a long name and xattrs, then (from a
    /// GNU writer) an entry with a GNU long name whose 3 bytes of data end the archive.</summary>
    private static byte[] MixedTar()
    {
        byte[] pax = new TestTar()
            .Dir("etc/", "750", uid: 10, gid: 20)
            .File("etc/hosts", "127.0.0.1 localhost\n", "644", uid: 1, gid: 2)
            .Symlink("etc/link", "hosts")
            .File(LongPaxName, new byte[700], "600", pax: new Dictionary<string, string>
            {
                ["SCHILY.xattr.user.comment"] = "long name",
                ["SCHILY.xattr.trusted.mark"] = "x",
            })
            .Build();
        byte[] gnu = new TestTar(TarEntryFormat.Gnu).File(LongGnuName, "gnu", "640").Build();
        var full = pax[..^1024].Concat(gnu).ToArray();
        Assert.True(full.AsSpan(full.Length - 1024).IndexOfAnyExcept((byte)0) < 0, "TarWriter ends with two zero blocks");
        Assert.Equal("gnu"u8.ToArray(), full[^1536..^1533]);
        return full;
    }

    /// <summary>The same tar cut at the end: no end blocks, one zero block, or (as an unclosed Go
    /// tar.Writer leaves it) not even the padding after the last entry's data.</summary>
    public static TheoryData<string> Endings => new() { "none", "one zero block", "no padding either" };

    private static byte[] Ending(byte[] full, string ending) => ending switch
    {
        "none" => full[..^1024],
        "one zero block" => full[..^512],
        "no padding either" => full[..^(1024 + 509)],
        _ => throw new ArgumentException(ending),
    };

    [Theory]
    [MemberData(nameof(Endings))]
    public async Task A_tar_without_end_blocks_unpacks_as_the_complete_one_does(string ending)
    {
        byte[] full = MixedTar();
        string whole = tmp["whole"], cut = tmp["cut"];
        var expected = await new LayerUnpacker().UnpackAsync(new MemoryStream(full), whole, CancellationToken.None);
        var stream = new NonSeekable(Ending(full, ending));
        var result = await new LayerUnpacker().UnpackAsync(stream, cut, CancellationToken.None);

        Assert.Equal(expected, result);
        Assert.Equal(Snapshot(whole), Snapshot(cut));
        Assert.Contains(Snapshot(cut), line => line.StartsWith("etc Directory 10:20 750 1614834367.000000000", StringComparison.Ordinal));
        Assert.True(stream.AtEnd, "the whole stream was read");
        // The snapshot covers what the layer holds; check it holds what the tar says.
        Assert.Equal("gnu", File.ReadAllText(Path.Combine(cut, LongGnuName)));
        Assert.Equal(700, new FileInfo(Path.Combine(cut, LongPaxName)).Length);
        Assert.Equal("long name"u8.ToArray(), Xattrs.Get(Path.Combine(cut, LongPaxName), "user.comment"));
        Assert.Equal("hosts", Files.ReadLink(Path.Combine(cut, "etc/link")));
    }

    [Theory]
    [InlineData("gzip", "none")]
    [InlineData("zstd", "none")]
    [InlineData("gzip", "no padding either")]
    [InlineData("zstd", "one zero block")]
    public async Task The_layer_store_takes_compressed_layers_without_end_blocks(string codec, string ending)
    {
        byte[] tar = Ending(MixedTar(), ending);
        byte[] blob = codec == "gzip" ? Compress.Gzip(tar) : Compress.Zstd(tar);
        var diffId = Digest.Sha256(tar);
        var store = new LayerStore(tmp["overlay"], NullLogger<LayerStore>.Instance);

        var info = await store.EnsureAsync(diffId, null, diffId, _ => Task.FromResult<Stream>(new MemoryStream(blob)), CancellationToken.None);

        Assert.Equal(diffId, info.DiffId);
        Assert.Equal("gnu", File.ReadAllText(Path.Combine(store.DiffDir(diffId), LongGnuName)));
        Assert.Equal("127.0.0.1 localhost\n", File.ReadAllText(Path.Combine(store.DiffDir(diffId), "etc/hosts")));
    }

    [Fact]
    public async Task An_empty_stream_is_an_empty_layer()
    {
        // Go's reader (containerd) takes an empty stream as an archive with nothing in it.
        var result = await new LayerUnpacker().UnpackAsync(new NonSeekable([]), tmp["empty"], CancellationToken.None);
        Assert.Equal(new UnpackResult(0, 0, false), result);
        Assert.Empty(Directory.GetFileSystemEntries(tmp["empty"]));
    }

    // ---- truncated streams ----

    /// <summary>"a" (1000 bytes, header at 0), then a PAX header at 1536 for "p" (a long name and an
    /// xattr), then p's header and 1 byte of data.</summary>
    private static (byte[] Tar, int PaxData, int PaxEnd) TruncationSubject()
    {
        string longName = string.Join('/', Enumerable.Repeat("dir", 40)) + "/p";
        byte[] tar = new RawTar()
            .Entry("a", '0', new byte[1000])
            .Entry("p", '0', "x"u8.ToArray(), pax: [("path", Encoding.UTF8.GetBytes(longName)), ("SCHILY.xattr.user.k", "v"u8.ToArray())])
            .Build();
        Assert.Equal((byte)'x', tar[1536 + 156]);
        int paxSize = (int)PaxXattrFilter.ParseNumber(tar.AsSpan(1536 + 124, 12));
        int paxEnd = 1536 + 512 + (paxSize + 511) / 512 * 512;
        Assert.Equal((byte)'0', tar[paxEnd + 156]);
        return (tar, 1536 + 512, paxEnd);
    }

    public static TheoryData<string, string> Truncations => new()
    {
        { "header", "after 100 bytes, 100 bytes into the header at byte 0" },
        { "data", "after 1112 bytes, inside the data of entry 'a' (header at byte 0): 600 of 1000 bytes are there" },
        { "padding", "after 1522 bytes, inside the padding after the data of entry 'a' (header at byte 0): 10 of 24 bytes are there" },
        { "pax data", "inside the PAX extended header at byte 1536: 5 of" },
        { "after pax", "after the PAX extended header at byte 1536, before the entry it describes" },
        { "header after pax", "200 bytes into the header at byte" },
    };

    [Theory]
    [MemberData(nameof(Truncations))]
    public async Task A_stream_ending_anywhere_else_is_refused_as_truncated(string where, string message)
    {
        var (tar, paxData, paxEnd) = TruncationSubject();
        int cut = where switch
        {
            "header" => 100,
            "data" => 512 + 600,
            "padding" => 512 + 1000 + 10,
            "pax data" => paxData + 5,
            "after pax" => paxEnd,
            "header after pax" => paxEnd + 200,
            _ => throw new ArgumentException(where),
        };
        var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
            new LayerUnpacker().UnpackAsync(new NonSeekable(tar[..cut]), tmp["t"], CancellationToken.None));
        Assert.StartsWith("the layer is truncated: its tar stream ends ", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public async Task A_stream_ending_after_a_gnu_long_name_is_refused_as_truncated()
    {
        byte[] tar = new RawTar().Entry("f", '0', "1"u8.ToArray()).Entry("././@LongLink", 'L', Encoding.UTF8.GetBytes(LongGnuName + "\0")).Build(endBlocks: false);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
            new LayerUnpacker().UnpackAsync(new NonSeekable(tar), tmp["t"], CancellationToken.None));
        Assert.Equal($"the layer is truncated: its tar stream ends after {tar.Length} bytes, after the GNU long name at byte 1024, before the entry it describes", e.Message);
    }

    [Fact]
    public async Task Truncated_data_of_a_huge_entry_is_refused_without_waiting_for_it()
    {
        // 8 GiB declared in base-256 (too large for octal), 1000 bytes there.
        byte[] tar = new RawTar().Header("huge", '0', 8L << 30, base256: true).Bytes(new byte[1000]).Build(endBlocks: false);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
            new LayerUnpacker().UnpackAsync(new NonSeekable(tar), tmp["t"], CancellationToken.None));
        Assert.Contains("inside the data of entry 'huge' (header at byte 0): 1000 of 8589934592 bytes are there", e.Message);
    }

    [Fact]
    public async Task The_layer_store_reports_truncation_as_an_invalid_layer()
    {
        var (tar, _, _) = TruncationSubject();
        byte[] cut = tar[..(512 + 600)];
        var diffId = Digest.Sha256(cut);
        var store = new LayerStore(tmp["overlay"], NullLogger<LayerStore>.Instance);
        var e = await Assert.ThrowsAsync<InvalidLayerException>(() =>
            store.EnsureAsync(diffId, null, diffId, _ => Task.FromResult<Stream>(new MemoryStream(Compress.Gzip(cut))), CancellationToken.None));
        Assert.Contains($"layer {diffId} is not a valid compressed tar archive: the layer is truncated: its tar stream ends after 1112 bytes, inside the data of entry 'a'", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(tmp["overlay"], "tmp")));
    }

    // ---- oversized metadata headers ----

    public static TheoryData<string, string> Oversized => new()
    {
        { "pax 2 MiB", "the layer tar has a PAX extended header of 2097152 bytes at byte 0; more than 1048576 bytes is refused" },
        { "pax 8 GiB base-256", "the layer tar has a PAX extended header of 8589934592 bytes at byte 0; more than 1048576 bytes is refused" },
        { "global 2 MiB", "the layer tar has a PAX global header of 2097152 bytes at byte 0; more than 1048576 bytes is refused" },
        { "gnu long name 100 KiB", "the layer tar has a GNU long name of 102400 bytes at byte 0; more than 65536 bytes is refused" },
        { "gnu long link 100 KiB", "the layer tar has a GNU long link name of 102400 bytes at byte 0; more than 65536 bytes is refused" },
    };

    [Theory]
    [MemberData(nameof(Oversized))]
    public async Task Oversized_pax_and_gnu_headers_are_refused_before_their_size_is_allocated(string what, string message)
    {
        var raw = what switch
        {
            "pax 2 MiB" => new RawTar().Header("PaxHeaders/f", 'x', 2L << 20),
            "pax 8 GiB base-256" => new RawTar().Header("PaxHeaders/f", 'x', 8L << 30, base256: true),
            "global 2 MiB" => new RawTar().Header("GlobalHead", 'g', 2L << 20),
            "gnu long name 100 KiB" => new RawTar().Header("././@LongLink", 'L', 100 << 10),
            "gnu long link 100 KiB" => new RawTar().Header("././@LongLink", 'K', 100 << 10),
            _ => throw new ArgumentException(what),
        };
        // Some of the declared data, a file after it, and the end: nothing but the size is wrong.
        byte[] tar = raw.Bytes(Enumerable.Repeat((byte)'a', 4096).ToArray()).Entry("f", '0', "x"u8.ToArray()).Build();
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
            new LayerUnpacker().UnpackAsync(new NonSeekable(tar), tmp["t"], CancellationToken.None));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(message, e.Message);
        Assert.True(allocated < 512 * 1024, $"allocated {allocated} bytes");
    }

    [Fact]
    public async Task A_pax_header_of_exactly_1_MiB_is_accepted()
    {
        // One "LENGTH comment=VALUE\n" record of exactly 1 MiB: 7 digits, " comment=", the value, "\n".
        const int total = 1024 * 1024;
        byte[] tar = new RawTar().Entry("f", '0', "data"u8.ToArray(), pax: [("comment", Encoding.ASCII.GetBytes(new string('c', total - 7 - " comment=\n".Length)))]).Build();
        Assert.Equal(total, PaxXattrFilter.ParseNumber(tar.AsSpan(124, 12)));
        await new LayerUnpacker().UnpackAsync(new NonSeekable(tar), tmp["t"], CancellationToken.None);
        Assert.Equal("data", File.ReadAllText(tmp["t/f"]));
    }

    [Fact]
    public async Task A_gnu_sparse_entry_is_refused_as_bad_data()
    {
        // TarReader throws NotSupportedException, which does not say the layer is at fault.
        byte[] tar = new RawTar().Header("holes", 'S', 0).Build();
        var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
            new LayerUnpacker().UnpackAsync(new NonSeekable(tar), tmp["t"], CancellationToken.None));
        Assert.Equal("layer entry 'holes' is a GNU sparse file, which is not supported", e.Message);
    }

    // ---- the filter reads sizes as TarReader does ----

    [Fact]
    public async Task Sizes_are_read_as_TarReader_reads_them()
    {
        // A PAX size record with a sign and spaces (long.Parse takes them), an empty one (ignored),
        // and a size field whose first byte is NUL (TarReader reads 0). If the filter framed any of
        // these differently from TarReader, the end of this tar (no end blocks) would land
        // somewhere it does not expect.
        var sizeField = new RawTar().Header("nul-first", '0', 0).Build(endBlocks: false);
        Encoding.ASCII.GetBytes("\0 0000003\0\0\0").CopyTo(sizeField, 124);
        FixChecksum(sizeField);
        byte[] tar = new RawTar()
            .Header("PaxHeaders/plus", 'x', 11).Bytes(Pad(Encoding.ASCII.GetBytes("11 size=+3\n")))
            .Header("plus", '0', 0).Bytes(Pad("abc"u8.ToArray()))
            .Header("PaxHeaders/spaces", 'x', 11).Bytes(Pad(Encoding.ASCII.GetBytes("11 size= 4\n")))
            .Header("spaces", '0', 0).Bytes(Pad("abcd"u8.ToArray()))
            .Header("PaxHeaders/empty", 'x', 8).Bytes(Pad(Encoding.ASCII.GetBytes("8 size=\n")))
            .Header("empty", '0', 2).Bytes(Pad("ab"u8.ToArray()))
            .Bytes(sizeField)
            .Header("last", '0', 1).Bytes("z"u8.ToArray())
            .Build(endBlocks: false);
        await new LayerUnpacker().UnpackAsync(new NonSeekable(tar), tmp["t"], CancellationToken.None);
        Assert.Equal("abc", File.ReadAllText(tmp["t/plus"]));
        Assert.Equal("abcd", File.ReadAllText(tmp["t/spaces"]));
        Assert.Equal("ab", File.ReadAllText(tmp["t/empty"]));
        Assert.Equal(0, new FileInfo(tmp["t/nul-first"]).Length);
        Assert.Equal("z", File.ReadAllText(tmp["t/last"]));
    }

    private static byte[] Pad(byte[] data) => [.. data, .. new byte[(512 - data.Length % 512) % 512]];

    private static void FixChecksum(byte[] header)
    {
        header.AsSpan(148, 8).Fill((byte)' ');
        int sum = header.Take(512).Sum(b => b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(header, 148);
    }

    // ---- a real layer written by umoci ----

    [Fact]
    public async Task A_layer_written_by_umoci_insert_unpacks()
    {
        // umoci before 0.4.8 never closes its tar writer in "insert" (umoci#436, fixed by #534):
        // the layer stops right after the last file's data, without padding or end blocks.
        string layout = tmp["oci"], source = tmp["src"];
        Directory.CreateDirectory(Path.Combine(source, "sub"));
        File.WriteAllText(Path.Combine(source, "sub/a.txt"), "hello world\n");
        File.CreateSymbolicLink(Path.Combine(source, "sub/link"), "a.txt");
        File.WriteAllText(Path.Combine(source, "z"), "xyz");
        await Umoci("init", "--layout", layout);
        await Umoci("new", "--image", layout + ":t");
        await Umoci("insert", "--image", layout + ":t", source, "/opt/ins");

        var (blob, diffId) = LastLayer(layout);
        byte[] tar = Decompress(blob);
        Assert.Equal(diffId, Digest.Sha256(tar));
        Assert.True(tar.Length % 512 != 0 || tar.AsSpan(tar.Length - 1024).IndexOfAnyExcept((byte)0) >= 0,
            $"this umoci wrote end blocks ({tar.Length} bytes): the test needs a layer without them (umoci <= 0.4.7)");

        var store = new LayerStore(tmp["overlay"], NullLogger<LayerStore>.Instance);
        var info = await store.EnsureAsync(diffId, null, diffId, _ => Task.FromResult<Stream>(new MemoryStream(blob)), CancellationToken.None);
        string diff = store.DiffDir(info.ChainId);
        Assert.Equal("hello world\n", File.ReadAllText(Path.Combine(diff, "opt/ins/sub/a.txt")));
        Assert.Equal("a.txt", Files.ReadLink(Path.Combine(diff, "opt/ins/sub/link")));
        Assert.Equal("xyz", File.ReadAllText(Path.Combine(diff, "opt/ins/z")));
    }

    private static async Task Umoci(params string[] args)
    {
        if (!File.Exists("/usr/bin/umoci") && !File.Exists("/usr/local/bin/umoci"))
            Assert.Fail("umoci is not installed: run hack/install-deps.sh (Debian package umoci)");
        var result = await HostCommand.RunAsync("umoci", args);
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    /// <summary>The last layer blob of the layout's only image, and its diff ID from the config.</summary>
    private static (byte[] Blob, Digest DiffId) LastLayer(string layout)
    {
        byte[] Blob(string digest) => File.ReadAllBytes(Path.Combine(layout, "blobs", "sha256", digest["sha256:".Length..]));
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(layout, "index.json")));
        string manifestDigest = index.RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        using var manifest = JsonDocument.Parse(Blob(manifestDigest));
        var layers = manifest.RootElement.GetProperty("layers");
        string layerDigest = layers[layers.GetArrayLength() - 1].GetProperty("digest").GetString()!;
        using var config = JsonDocument.Parse(Blob(manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()!));
        var diffIds = config.RootElement.GetProperty("rootfs").GetProperty("diff_ids");
        return (Blob(layerDigest), Digest.Parse(diffIds[diffIds.GetArrayLength() - 1].GetString()!));
    }

    private static byte[] Decompress(byte[] blob)
    {
        using var s = LayerDecompression.OpenDecompressed(new MemoryStream(blob));
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>Every path under <paramref name="root"/> with its type, owner, mode, times, content,
    /// link target and xattrs; not the times of directories that had no entry (they are "now").</summary>
    private static List<string> Snapshot(string root)
    {
        var lines = new List<string>();
        foreach (var path in Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var st = Files.Lstat(path);
            string relative = Path.GetRelativePath(root, path);
            bool implicitDir = st.IsDirectory && relative != "etc";
            var line = new StringBuilder($"{relative} {st.Type} {st.Uid}:{st.Gid} {Convert.ToString(st.Permissions, 8)} {(implicitDir ? "-" : st.ModificationTime)}");
            if (st.Type == FileType.RegularFile) line.Append(' ').Append(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))));
            if (st.Type == FileType.Symlink) line.Append(" -> ").Append(Files.ReadLink(path));
            else
                foreach (var name in Xattrs.List(path).Order(StringComparer.Ordinal))
                    line.Append($" {name}={Convert.ToHexString(Xattrs.Get(path, name)!)}");
            lines.Add(line.ToString());
        }
        return lines;
    }

    /// <summary>A stream that cannot seek (as a decompressor's) and says whether it was read to the end.</summary>
    private sealed class NonSeekable(byte[] data) : Stream
    {
        private readonly MemoryStream inner = new(data);

        public bool AtEnd => inner.Position == inner.Length;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
