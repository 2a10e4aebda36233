using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace CriRuntime.TestSupport;

// In-memory OCI / Docker image construction for tests. Everything (digests, diff_ids, JSON) is
// computed here with System.Security.Cryptography and System.Text.Json on purpose, so test fixtures
// do not share code (and bugs) with CriRuntime.Core, which they are meant to check.

/// <summary>Compression applied to a layer's tar stream.</summary>
public enum LayerCompression { None, Gzip, Zstd }

/// <summary>Which manifest family an image or index is written in.</summary>
public enum ManifestFormat { Oci, DockerSchema2 }

/// <summary>Well-known media types.</summary>
public static class MediaTypes
{
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string OciConfig = "application/vnd.oci.image.config.v1+json";
    public const string OciLayer = "application/vnd.oci.image.layer.v1.tar";
    public const string OciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    public const string OciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";

    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerConfig = "application/vnd.docker.container.image.v1+json";
    public const string DockerLayer = "application/vnd.docker.image.rootfs.diff.tar";
    public const string DockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    // Not in Docker's spec, but what containerd and others use for zstd layers in schema 2 manifests.
    public const string DockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd";

    public static string Layer(ManifestFormat format, LayerCompression compression) => (format, compression) switch
    {
        (ManifestFormat.Oci, LayerCompression.None) => OciLayer,
        (ManifestFormat.Oci, LayerCompression.Gzip) => OciLayerGzip,
        (ManifestFormat.Oci, LayerCompression.Zstd) => OciLayerZstd,
        (ManifestFormat.DockerSchema2, LayerCompression.None) => DockerLayer,
        (ManifestFormat.DockerSchema2, LayerCompression.Gzip) => DockerLayerGzip,
        (ManifestFormat.DockerSchema2, LayerCompression.Zstd) => DockerLayerZstd,
        _ => throw new ArgumentOutOfRangeException(nameof(compression)),
    };

    public static string Manifest(ManifestFormat format) => format == ManifestFormat.Oci ? OciManifest : DockerManifest;
    public static string Index(ManifestFormat format) => format == ManifestFormat.Oci ? OciIndex : DockerManifestList;
    public static string Config(ManifestFormat format) => format == ManifestFormat.Oci ? OciConfig : DockerConfig;
}

/// <summary>sha256 digests in the "sha256:&lt;hex&gt;" form.</summary>
public static class Digests
{
    public static string Sha256(ReadOnlySpan<byte> data) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(data));

    /// <summary>The hex part of "sha256:hex"; throws on anything else so callers never build odd paths.</summary>
    public static string Hex(string digest)
    {
        const string prefix = "sha256:";
        if (!digest.StartsWith(prefix, StringComparison.Ordinal) || digest.Length != prefix.Length + 64 ||
            digest.AsSpan(prefix.Length).ContainsAnyExcept("0123456789abcdef"))
            throw new ArgumentException($"not a sha256 digest: '{digest}'", nameof(digest));
        return digest[prefix.Length..];
    }
}

/// <summary>OS / architecture (/ variant) of an image, as in an index's platform object.</summary>
public sealed record Platform(string Os, string Architecture, string? Variant = null)
{
    public static Platform LinuxAmd64 { get; } = new("linux", "amd64");
    public static Platform LinuxArm64 { get; } = new("linux", "arm64", "v8");

    /// <summary>The platform of the machine running the tests, in Go's GOARCH spelling.</summary>
    public static Platform Host { get; } = new("linux", System.Runtime.InteropServices.RuntimeInformation.OSArchitecture switch
    {
        System.Runtime.InteropServices.Architecture.X64 => "amd64",
        System.Runtime.InteropServices.Architecture.Arm64 => "arm64",
        System.Runtime.InteropServices.Architecture.Arm => "arm",
        System.Runtime.InteropServices.Architecture.X86 => "386",
        System.Runtime.InteropServices.Architecture.S390x => "s390x",
        System.Runtime.InteropServices.Architecture.Ppc64le => "ppc64le",
        System.Runtime.InteropServices.Architecture.RiscV64 => "riscv64",
        System.Runtime.InteropServices.Architecture.LoongArch64 => "loong64",
        var a => a.ToString().ToLowerInvariant(),
    });

    public override string ToString() => Variant is null ? $"{Os}/{Architecture}" : $"{Os}/{Architecture}/{Variant}";
}

/// <summary>A finished layer blob.</summary>
/// <param name="Data">The blob as stored in the registry (compressed unless Compression is None).</param>
/// <param name="MediaType">Media type used in the manifest that references it.</param>
/// <param name="Digest">sha256 of Data.</param>
/// <param name="DiffId">sha256 of the uncompressed tar (what config rootfs.diff_ids lists).</param>
/// <param name="UncompressedTar">The tar stream before compression.</param>
public sealed record BuiltLayer(
    byte[] Data, string MediaType, string Digest, long Size, string DiffId, LayerCompression Compression, byte[] UncompressedTar);

/// <summary>Builds one layer tar. Entries are written in the order added; nothing is deduplicated or
/// validated, so repeated and hostile entries (via <see cref="AddRaw"/>) come out exactly as given.</summary>
public sealed class LayerBuilder
{
    /// <summary>0755</summary>
    public const int DirMode = 0b111_101_101;
    /// <summary>0644</summary>
    public const int FileMode = 0b110_100_100;
    /// <summary>0755</summary>
    public const int ExecMode = 0b111_101_101;
    /// <summary>0777 (what symlinks carry)</summary>
    public const int LinkMode = 0b111_111_111;

    /// <summary>Fixed default mtime so identical layers give identical digests across runs.</summary>
    public static readonly DateTimeOffset DefaultMTime = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly List<Entry> _entries = new();

    public LayerBuilder(LayerCompression compression = LayerCompression.Gzip) => Compression = compression;

    public LayerCompression Compression { get; set; }
    public CompressionLevel CompressionLevel { get; set; } = CompressionLevel.Optimal;
    /// <summary>Tar header format. GNU by default: it handles long names and large ids like PAX, but is
    /// reproducible; .NET names PAX extended headers "PaxHeaders.&lt;pid&gt;/...", so PAX layers differ per process.</summary>
    public TarEntryFormat Format { get; set; } = TarEntryFormat.Gnu;

    /// <summary>Parses an octal mode string such as "1777" or "0644" (C# has no octal literals).</summary>
    public static int Oct(string octal) => Convert.ToInt32(octal, 8);

    public int Count => _entries.Count;

    public LayerBuilder AddDirectory(string path, int mode = DirMode, int uid = 0, int gid = 0, DateTimeOffset? mtime = null)
        => Add(new Entry(TarEntryType.Directory, DirName(path), null, null, mode, uid, gid, mtime));

    public LayerBuilder AddFile(string path, byte[] content, int mode = FileMode, int uid = 0, int gid = 0, DateTimeOffset? mtime = null)
        => Add(new Entry(TarEntryType.RegularFile, FileName(path), content, null, mode, uid, gid, mtime));

    public LayerBuilder AddFile(string path, string content, int mode = FileMode, int uid = 0, int gid = 0, DateTimeOffset? mtime = null)
        => AddFile(path, Encoding.UTF8.GetBytes(content), mode, uid, gid, mtime);

    /// <summary>Symlink at <paramref name="path"/> whose target is stored verbatim (relative or absolute).</summary>
    public LayerBuilder AddSymlink(string path, string target, int uid = 0, int gid = 0, DateTimeOffset? mtime = null)
        => Add(new Entry(TarEntryType.SymbolicLink, FileName(path), null, target, LinkMode, uid, gid, mtime));

    /// <summary>Hardlink at <paramref name="path"/> to an earlier entry; the target is a path from the
    /// layer root, normalised the same way as entry names.</summary>
    public LayerBuilder AddHardlink(string path, string target, int mode = FileMode, int uid = 0, int gid = 0, DateTimeOffset? mtime = null)
        => Add(new Entry(TarEntryType.HardLink, FileName(path), null, FileName(target), mode, uid, gid, mtime));

    /// <summary>Deletes <paramref name="path"/> from lower layers: writes "dir/.wh.name".</summary>
    public LayerBuilder AddWhiteout(string path, DateTimeOffset? mtime = null)
    {
        var name = FileName(path);
        var slash = name.LastIndexOf('/');
        var wh = slash < 0 ? ".wh." + name : name[..(slash + 1)] + ".wh." + name[(slash + 1)..];
        return Add(new Entry(TarEntryType.RegularFile, wh, Array.Empty<byte>(), null, FileMode, 0, 0, mtime));
    }

    /// <summary>Hides everything lower layers put in <paramref name="directory"/>: writes "dir/.wh..wh..opq".</summary>
    public LayerBuilder AddOpaqueWhiteout(string directory, DateTimeOffset? mtime = null)
    {
        var dir = FileName(directory);
        var name = dir.Length == 0 ? ".wh..wh..opq" : dir + "/.wh..wh..opq";
        return Add(new Entry(TarEntryType.RegularFile, name, Array.Empty<byte>(), null, FileMode, 0, 0, mtime));
    }

    public LayerBuilder AddCharDevice(string path, int major, int minor, int mode = 0b110_110_110, int uid = 0, int gid = 0, DateTimeOffset? mtime = null)
        => Add(new Entry(TarEntryType.CharacterDevice, FileName(path), null, null, mode, uid, gid, mtime, major, minor));

    public LayerBuilder AddBlockDevice(string path, int major, int minor, int mode = 0b110_110_000, int uid = 0, int gid = 0, DateTimeOffset? mtime = null)
        => Add(new Entry(TarEntryType.BlockDevice, FileName(path), null, null, mode, uid, gid, mtime, major, minor));

    public LayerBuilder AddFifo(string path, int mode = FileMode, int uid = 0, int gid = 0, DateTimeOffset? mtime = null)
        => Add(new Entry(TarEntryType.Fifo, FileName(path), null, null, mode, uid, gid, mtime));

    /// <summary>An entry written exactly as given, without any name normalisation: for hostile layers
    /// ("../escape", "/abs", hardlinks pointing outside, ...).</summary>
    public LayerBuilder AddRaw(TarEntryType type, string name, byte[]? content = null, string? linkName = null,
        int mode = FileMode, int uid = 0, int gid = 0, DateTimeOffset? mtime = null, int deviceMajor = 0, int deviceMinor = 0)
        => Add(new Entry(type, name, content, linkName, mode, uid, gid, mtime, deviceMajor, deviceMinor));

    /// <summary>The uncompressed tar stream.</summary>
    public byte[] BuildTar()
    {
        using var ms = new MemoryStream();
        using (var writer = new TarWriter(ms, Format, leaveOpen: true))
        {
            foreach (var e in _entries)
                writer.WriteEntry(e.ToTarEntry(Format));
        }
        return ms.ToArray();
    }

    /// <summary>Tar, compress and digest. The media type is the OCI one; <see cref="ImageBuilder"/>
    /// swaps in the Docker one when it writes a schema 2 manifest.</summary>
    public BuiltLayer Build()
    {
        var tar = BuildTar();
        var data = Compress(tar, Compression, CompressionLevel);
        return new BuiltLayer(data, MediaTypes.Layer(ManifestFormat.Oci, Compression), Digests.Sha256(data), data.LongLength,
            Digests.Sha256(tar), Compression, tar);
    }

    public static byte[] Compress(byte[] tar, LayerCompression compression, CompressionLevel level = CompressionLevel.Optimal)
    {
        switch (compression)
        {
            case LayerCompression.None:
                return tar;
            case LayerCompression.Gzip:
                {
                    using var ms = new MemoryStream();
                    using (var gz = new GZipStream(ms, level, leaveOpen: true))
                        gz.Write(tar);
                    return ms.ToArray();
                }
            case LayerCompression.Zstd:
                {
                    var zl = level switch
                    {
                        CompressionLevel.NoCompression or CompressionLevel.Fastest => 1,
                        CompressionLevel.SmallestSize => 19,
                        _ => 3,
                    };
                    using var compressor = new ZstdSharp.Compressor(zl);
                    return compressor.Wrap(tar).ToArray();
                }
            default:
                throw new ArgumentOutOfRangeException(nameof(compression));
        }
    }

    private LayerBuilder Add(Entry e)
    {
        _entries.Add(e);
        return this;
    }

    // Layer entry names are relative to the rootfs, without a leading "/" or "./"; directories end in "/".
    private static string FileName(string path)
    {
        var p = path.Replace('\\', '/');
        while (p.StartsWith("./", StringComparison.Ordinal)) p = p[2..];
        p = p.TrimStart('/').TrimEnd('/');
        return p == "." ? "" : p;
    }

    private static string DirName(string path)
    {
        var p = FileName(path);
        if (p.Length == 0) throw new ArgumentException("the root directory needs no entry; use AddRaw for \"./\"", nameof(path));
        return p + "/";
    }

    private sealed record Entry(
        TarEntryType Type, string Name, byte[]? Content, string? LinkName, int Mode, int Uid, int Gid,
        DateTimeOffset? MTime, int DevMajor = 0, int DevMinor = 0)
    {
        public TarEntry ToTarEntry(TarEntryFormat format)
        {
            // System.Formats.Tar uses different "regular file" type codes per format (V7 has '\0').
            var type = Type == TarEntryType.RegularFile && format == TarEntryFormat.V7 ? TarEntryType.V7RegularFile : Type;
            TarEntry entry = format switch
            {
                TarEntryFormat.Pax => new PaxTarEntry(type, Name),
                TarEntryFormat.Gnu => new GnuTarEntry(type, Name),
                TarEntryFormat.Ustar => new UstarTarEntry(type, Name),
                TarEntryFormat.V7 => new V7TarEntry(type, Name),
                _ => throw new ArgumentOutOfRangeException(nameof(format)),
            };
            entry.Mode = (UnixFileMode)(Mode & 0b111_111_111_111);
            entry.Uid = Uid;
            entry.Gid = Gid;
            entry.ModificationTime = MTime ?? DefaultMTime;
            if (entry is GnuTarEntry gnu)
            {
                // Pin atime/ctime too so the bytes do not depend on when the layer was built.
                gnu.AccessTime = entry.ModificationTime;
                gnu.ChangeTime = entry.ModificationTime;
            }
            if (LinkName is not null) entry.LinkName = LinkName;
            if (entry is PosixTarEntry posix && (Type is TarEntryType.CharacterDevice or TarEntryType.BlockDevice))
            {
                posix.DeviceMajor = DevMajor;
                posix.DeviceMinor = DevMinor;
            }
            if (Content is not null && Content.Length > 0)
                entry.DataStream = new MemoryStream(Content, writable: false);
            return entry;
        }
    }
}

/// <summary>A finished single-platform image: config, layers and manifest blobs plus their digests.</summary>
public sealed class BuiltImage
{
    internal BuiltImage(ManifestFormat format, Platform platform, byte[] configBytes, IReadOnlyList<BuiltLayer> layers,
        byte[] manifestBytes)
    {
        Format = format;
        Platform = platform;
        ConfigBytes = configBytes;
        ConfigDigest = Digests.Sha256(configBytes);
        Layers = layers;
        ManifestBytes = manifestBytes;
        ManifestDigest = Digests.Sha256(manifestBytes);
    }

    public ManifestFormat Format { get; }
    public Platform Platform { get; }
    public byte[] ConfigBytes { get; }
    public string ConfigDigest { get; }
    public string ConfigMediaType => MediaTypes.Config(Format);
    /// <summary>The image ID as CRI reports it: the config digest.</summary>
    public string ImageId => ConfigDigest;
    public IReadOnlyList<BuiltLayer> Layers { get; }
    public IReadOnlyList<string> DiffIds => Layers.Select(l => l.DiffId).ToArray();
    public byte[] ManifestBytes { get; }
    public string ManifestDigest { get; }
    public string ManifestMediaType => MediaTypes.Manifest(Format);

    /// <summary>Every blob the manifest references (config first), without duplicates.</summary>
    public IEnumerable<(string Digest, byte[] Data)> Blobs()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        if (seen.Add(ConfigDigest)) yield return (ConfigDigest, ConfigBytes);
        foreach (var l in Layers)
            if (seen.Add(l.Digest)) yield return (l.Digest, l.Data);
    }

    /// <summary>Sum of compressed layer sizes plus config size (what a puller downloads).</summary>
    public long TotalBlobSize => Blobs().Sum(b => (long)b.Data.Length);
}

/// <summary>A multi-platform OCI index or Docker manifest list over several images.</summary>
public sealed class BuiltIndex
{
    private BuiltIndex(ManifestFormat format, IReadOnlyList<BuiltImage> images, byte[] bytes)
    {
        Format = format;
        Images = images;
        ManifestBytes = bytes;
        Digest = Digests.Sha256(bytes);
    }

    public ManifestFormat Format { get; }
    public IReadOnlyList<BuiltImage> Images { get; }
    public byte[] ManifestBytes { get; }
    public string Digest { get; }
    public string MediaType => MediaTypes.Index(Format);

    public BuiltImage ForPlatform(Platform platform) =>
        Images.FirstOrDefault(i => i.Platform.Os == platform.Os && i.Platform.Architecture == platform.Architecture &&
                                   (platform.Variant is null || i.Platform.Variant == platform.Variant))
        ?? throw new KeyNotFoundException($"index has no image for {platform}");

    /// <summary>Builds the index; each entry's platform is its image's platform.</summary>
    public static BuiltIndex Create(IEnumerable<BuiltImage> images, ManifestFormat format = ManifestFormat.Oci,
        IReadOnlyDictionary<string, string>? annotations = null)
    {
        var list = images.ToArray();
        if (list.Length == 0) throw new ArgumentException("an index needs at least one image", nameof(images));
        var bytes = Json.Write(w =>
        {
            w.WriteStartObject();
            w.WriteNumber("schemaVersion", 2);
            w.WriteString("mediaType", MediaTypes.Index(format));
            w.WriteStartArray("manifests");
            foreach (var img in list)
            {
                w.WriteStartObject();
                w.WriteString("mediaType", img.ManifestMediaType);
                w.WriteString("digest", img.ManifestDigest);
                w.WriteNumber("size", img.ManifestBytes.Length);
                w.WriteStartObject("platform");
                w.WriteString("architecture", img.Platform.Architecture);
                w.WriteString("os", img.Platform.Os);
                if (img.Platform.Variant is not null) w.WriteString("variant", img.Platform.Variant);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            Json.WriteMap(w, "annotations", annotations);
            w.WriteEndObject();
        });
        return new BuiltIndex(format, list, bytes);
    }
}

/// <summary>Assembles config + layers into an image with an OCI or Docker schema 2 manifest.</summary>
public sealed class ImageBuilder
{
    private readonly List<(BuiltLayer Layer, string CreatedBy)> _layers = new();
    private readonly List<(string CreatedBy, bool Empty)> _history = new();
    private readonly List<KeyValuePair<string, string>> _env = new();
    private readonly SortedDictionary<string, string> _labels = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, string> _annotations = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _volumes = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _ports = new(StringComparer.Ordinal);
    private string[]? _diffIdsOverride;
    private byte[]? _rawConfig;

    public Platform Platform { get; set; } = Platform.Host;
    public ManifestFormat Format { get; set; } = ManifestFormat.Oci;
    public DateTimeOffset Created { get; set; } = LayerBuilder.DefaultMTime;
    public string? User { get; set; }
    public string[]? Entrypoint { get; set; }
    public string[]? Cmd { get; set; }
    public string? WorkingDir { get; set; }
    public string? StopSignal { get; set; }

    public ImageBuilder WithPlatform(Platform platform) { Platform = platform; return this; }
    public ImageBuilder WithPlatform(string os, string architecture, string? variant = null) => WithPlatform(new Platform(os, architecture, variant));
    public ImageBuilder WithFormat(ManifestFormat format) { Format = format; return this; }
    public ImageBuilder WithCreated(DateTimeOffset created) { Created = created; return this; }
    public ImageBuilder WithUser(string? user) { User = user; return this; }
    public ImageBuilder WithEntrypoint(params string[]? entrypoint) { Entrypoint = entrypoint; return this; }
    public ImageBuilder WithCmd(params string[]? cmd) { Cmd = cmd; return this; }
    public ImageBuilder WithWorkingDir(string? dir) { WorkingDir = dir; return this; }
    public ImageBuilder WithStopSignal(string? signal) { StopSignal = signal; return this; }
    public ImageBuilder WithLabel(string key, string value) { _labels[key] = value; return this; }
    public ImageBuilder WithAnnotation(string key, string value) { _annotations[key] = value; return this; }
    public ImageBuilder WithVolume(string path) { _volumes.Add(path); return this; }
    /// <summary>e.g. "8080/tcp"</summary>
    public ImageBuilder WithExposedPort(string port) { _ports.Add(port); return this; }

    /// <summary>Sets NAME=value, replacing an earlier value of NAME but keeping its position.</summary>
    public ImageBuilder WithEnv(string name, string value)
    {
        var i = _env.FindIndex(kv => kv.Key == name);
        if (i >= 0) _env[i] = new(name, value);
        else _env.Add(new(name, value));
        return this;
    }

    public ImageBuilder AddLayer(LayerBuilder layer, string? createdBy = null) => AddLayer(layer.Build(), createdBy);

    public ImageBuilder AddLayer(BuiltLayer layer, string? createdBy = null)
    {
        var by = createdBy ?? $"criruntime-testsupport layer {_layers.Count + 1}";
        _layers.Add((layer, by));
        _history.Add((by, false));
        return this;
    }

    /// <summary>A history entry for a step that made no layer (empty_layer: true).</summary>
    public ImageBuilder AddEmptyHistory(string createdBy) { _history.Add((createdBy, true)); return this; }

    /// <summary>Writes these diff_ids into the config instead of the computed ones (for mismatch tests).</summary>
    public ImageBuilder WithDiffIdsOverride(params string[] diffIds) { _diffIdsOverride = diffIds; return this; }

    /// <summary>Uses these exact config bytes (all config settings above are then ignored).</summary>
    public ImageBuilder WithRawConfig(byte[] configJson) { _rawConfig = configJson; return this; }

    public BuiltImage Build()
    {
        var layers = _layers
            .Select(l => l.Layer with { MediaType = MediaTypes.Layer(Format, l.Layer.Compression) })
            .ToArray();
        var config = _rawConfig ?? BuildConfig(layers);
        var configDigest = Digests.Sha256(config);

        var manifest = Json.Write(w =>
        {
            w.WriteStartObject();
            w.WriteNumber("schemaVersion", 2);
            w.WriteString("mediaType", MediaTypes.Manifest(Format));
            w.WriteStartObject("config");
            w.WriteString("mediaType", MediaTypes.Config(Format));
            w.WriteString("digest", configDigest);
            w.WriteNumber("size", config.Length);
            w.WriteEndObject();
            w.WriteStartArray("layers");
            foreach (var l in layers)
            {
                w.WriteStartObject();
                w.WriteString("mediaType", l.MediaType);
                w.WriteString("digest", l.Digest);
                w.WriteNumber("size", l.Size);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            // Docker schema 2 has no annotations field.
            if (Format == ManifestFormat.Oci) Json.WriteMap(w, "annotations", _annotations);
            w.WriteEndObject();
        });
        return new BuiltImage(Format, Platform, config, layers, manifest);
    }

    private byte[] BuildConfig(BuiltLayer[] layers)
    {
        var created = Created.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        return Json.Write(w =>
        {
            w.WriteStartObject();
            w.WriteString("created", created);
            w.WriteString("architecture", Platform.Architecture);
            if (Platform.Variant is not null) w.WriteString("variant", Platform.Variant);
            w.WriteString("os", Platform.Os);
            w.WriteStartObject("config");
            if (User is not null) w.WriteString("User", User);
            if (_ports.Count > 0)
            {
                w.WriteStartObject("ExposedPorts");
                foreach (var p in _ports) { w.WriteStartObject(p); w.WriteEndObject(); }
                w.WriteEndObject();
            }
            if (_env.Count > 0)
            {
                w.WriteStartArray("Env");
                foreach (var kv in _env) w.WriteStringValue(kv.Key + "=" + kv.Value);
                w.WriteEndArray();
            }
            Json.WriteArray(w, "Entrypoint", Entrypoint);
            Json.WriteArray(w, "Cmd", Cmd);
            if (_volumes.Count > 0)
            {
                w.WriteStartObject("Volumes");
                foreach (var v in _volumes) { w.WriteStartObject(v); w.WriteEndObject(); }
                w.WriteEndObject();
            }
            if (WorkingDir is not null) w.WriteString("WorkingDir", WorkingDir);
            Json.WriteMap(w, "Labels", _labels);
            if (StopSignal is not null) w.WriteString("StopSignal", StopSignal);
            w.WriteEndObject();
            w.WriteStartObject("rootfs");
            w.WriteString("type", "layers");
            w.WriteStartArray("diff_ids");
            foreach (var d in _diffIdsOverride ?? layers.Select(l => l.DiffId).ToArray()) w.WriteStringValue(d);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartArray("history");
            foreach (var (by, empty) in _history)
            {
                w.WriteStartObject();
                w.WriteString("created", created);
                w.WriteString("created_by", by);
                if (empty) w.WriteBoolean("empty_layer", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }
}

internal static class Json
{
    // Relaxed escaping keeps '+' in media types literal ("tar+gzip", not "tar\u002Bgzip").
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static byte[] Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, Options))
            body(w);
        return buffer.WrittenSpan.ToArray();
    }

    public static void WriteMap(Utf8JsonWriter w, string name, IEnumerable<KeyValuePair<string, string>>? map)
    {
        if (map is null || !map.Any()) return;
        w.WriteStartObject(name);
        foreach (var kv in map) w.WriteString(kv.Key, kv.Value);
        w.WriteEndObject();
    }

    public static void WriteArray(Utf8JsonWriter w, string name, string[]? values)
    {
        if (values is null) return;
        w.WriteStartArray(name);
        foreach (var v in values) w.WriteStringValue(v);
        w.WriteEndArray();
    }
}
