using System.Formats.Tar;
using System.IO.Compression;
using System.Text;

namespace CriRuntime.TestSupport;

/// <summary>The layer escapes that <see cref="TestImages.Malicious"/> can build.</summary>
public enum MaliciousKind
{
    /// <summary>A regular file named "../../escape".</summary>
    DotDot,
    /// <summary>A hardlink "hostname-link" to "../../../etc/hostname".</summary>
    HardlinkOut,
    /// <summary>A symlink "link" -> "/tmp", then a regular file "link/pwned" written through it.</summary>
    SymlinkWriteThrough,
    /// <summary>A regular file named "/../../../absolute-escape" (absolute and climbing).</summary>
    AbsoluteClimb,
}

/// <summary>The standard test images, all built from Debian's busybox-static.</summary>
public static class TestImages
{
    /// <summary>Where Debian's busybox-static puts the binary; CRIRUNTIME_TEST_BUSYBOX overrides it.</summary>
    public const string DefaultBusyboxPath = "/bin/busybox";

    /// <summary>Applets that get a /bin symlink to busybox.</summary>
    public static readonly IReadOnlyList<string> Applets =
    [
        "sh", "ls", "cat", "echo", "sleep", "true", "false", "env", "id", "ps", "wget", "nc", "ip",
        "hostname", "mount", "top", "printf", "test",
    ];

    /// <summary>Label every test image carries, so tests can tell test images apart.</summary>
    public const string VariantLabel = "org.criruntime.test.variant";
    /// <summary>Label on each image of <see cref="TwoPlatformIndex"/>: "amd64" or "arm64".</summary>
    public const string PlatformLabel = "platform";

    public const string PathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>Uid/gid of the unprivileged "app" user in /etc/passwd.</summary>
    public const int AppUid = 1000;

    private static readonly Lazy<byte[]> BusyboxBinary = new(LoadBusybox);
    private static readonly Dictionary<LayerCompression, BuiltLayer> BaseLayerCache = new();

    /// <summary>The static busybox binary's bytes (throws with a hint to hack/install-deps.sh if missing).</summary>
    public static byte[] BusyboxBytes => BusyboxBinary.Value;

    /// <summary>
    /// One-layer busybox rootfs: /bin/busybox plus applet symlinks, /etc/passwd (root, app=1000, nobody),
    /// /etc/group, /tmp (1777), /root; Cmd ["sh"], PATH set.
    /// </summary>
    /// <param name="variant">When set, goes into a label and the TEST_VARIANT env var, so two tags get different digests.</param>
    /// <param name="user">config.User, e.g. "1000" or "app".</param>
    public static BuiltImage Busybox(string? variant = null, string? user = null, ManifestFormat format = ManifestFormat.Oci,
        Platform? platform = null, LayerCompression compression = LayerCompression.Gzip)
        => BusyboxImageBuilder(variant, user, platform, compression).WithFormat(format).Build();

    /// <summary>The builder behind <see cref="Busybox"/>, for tests that want to add layers or settings.</summary>
    public static ImageBuilder BusyboxImageBuilder(string? variant = null, string? user = null, Platform? platform = null,
        LayerCompression compression = LayerCompression.Gzip)
    {
        var b = new ImageBuilder()
            .WithPlatform(platform ?? Platform.Host)
            .AddLayer(BusyboxBaseLayer(compression), "busybox-static rootfs")
            .WithEnv("PATH", PathEnv)
            .WithCmd("sh")
            .WithLabel(VariantLabel, variant ?? "default");
        if (variant is not null) b.WithEnv("TEST_VARIANT", variant);
        if (user is not null) b.WithUser(user);
        return b;
    }

    /// <summary>The busybox rootfs layer (cached per compression; identical bytes every time).</summary>
    public static BuiltLayer BusyboxBaseLayer(LayerCompression compression = LayerCompression.Gzip)
    {
        lock (BaseLayerCache)
        {
            if (!BaseLayerCache.TryGetValue(compression, out var layer))
            {
                layer = BusyboxLayerBuilder(compression).Build();
                BaseLayerCache[compression] = layer;
            }
            return layer;
        }
    }

    /// <summary>The entries of the busybox rootfs, as a builder tests may extend.</summary>
    public static LayerBuilder BusyboxLayerBuilder(LayerCompression compression = LayerCompression.Gzip)
    {
        var l = new LayerBuilder(compression);
        foreach (var d in new[] { "bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "var" })
            l.AddDirectory(d);
        l.AddDirectory("home/app", uid: AppUid, gid: AppUid);
        l.AddDirectory("root", LayerBuilder.Oct("700"));
        l.AddDirectory("tmp", LayerBuilder.Oct("1777"));
        l.AddFile("bin/busybox", BusyboxBytes, LayerBuilder.ExecMode);
        foreach (var applet in Applets)
            l.AddSymlink("bin/" + applet, "busybox");
        l.AddFile("etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\n" +
            $"app:x:{AppUid}:{AppUid}:app:/home/app:/bin/sh\n" +
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
        l.AddFile("etc/group",
            "root:x:0:\n" +
            $"app:x:{AppUid}:\n" +
            "nogroup:x:65534:\n");
        return l;
    }

    /// <summary>
    /// Four layers: (1) busybox gzip; (2) gzip: /data/keep, /data/remove-me, /data/keep-hardlink (hardlink to
    /// keep), /data/keep-symlink -> keep, /opaque/old1, /opaque/old2; (3) zstd: whiteout of /data/remove-me,
    /// /opaque made opaque, /opaque/new; (4) uncompressed: /etc/multilayer-release.
    /// Expected rootfs: /data/{keep,keep-hardlink,keep-symlink}, /opaque/new only.
    /// </summary>
    public static BuiltImage MultiLayer(ManifestFormat format = ManifestFormat.Oci)
    {
        var layer2 = new LayerBuilder(LayerCompression.Gzip)
            .AddDirectory("data")
            .AddFile("data/keep", "keep\n")
            .AddFile("data/remove-me", "remove me\n")
            .AddHardlink("data/keep-hardlink", "data/keep")
            .AddSymlink("data/keep-symlink", "keep")
            .AddDirectory("opaque")
            .AddFile("opaque/old1", "old1\n")
            .AddFile("opaque/old2", "old2\n");
        var layer3 = new LayerBuilder(LayerCompression.Zstd)
            .AddDirectory("data")
            .AddWhiteout("data/remove-me")
            .AddDirectory("opaque")
            .AddOpaqueWhiteout("opaque")
            .AddFile("opaque/new", "new\n");
        var layer4 = new LayerBuilder(LayerCompression.None)
            .AddFile("etc/multilayer-release", "multilayer 4\n");
        return BusyboxImageBuilder("multilayer")
            .WithFormat(format)
            .AddLayer(layer2, "add /data and /opaque")
            .AddLayer(layer3, "whiteout /data/remove-me, opaque /opaque (zstd)")
            .AddLayer(layer4, "uncompressed layer")
            .WithWorkingDir("/data")
            .WithStopSignal("SIGTERM")
            .Build();
    }

    /// <summary>
    /// Index over linux/amd64 and linux/arm64/v8 busybox images. Both carry the host's busybox binary
    /// (only the manifests' platforms differ); label "platform" is "amd64" or "arm64" and env
    /// TEST_PLATFORM likewise, so a test can tell which one was chosen.
    /// </summary>
    public static BuiltIndex TwoPlatformIndex(ManifestFormat format = ManifestFormat.Oci)
    {
        BuiltImage Make(Platform p) => BusyboxImageBuilder("multiarch", platform: p)
            .WithFormat(format)
            .WithLabel(PlatformLabel, p.Architecture)
            .WithEnv("TEST_PLATFORM", p.Architecture)
            .Build();
        return BuiltIndex.Create([Make(Platform.LinuxAmd64), Make(Platform.LinuxArm64)], format);
    }

    /// <summary>Kebab-case names used on the command line and as tags: dotdot, hardlink-out, ...</summary>
    public static string Name(MaliciousKind kind) => kind switch
    {
        MaliciousKind.DotDot => "dotdot",
        MaliciousKind.HardlinkOut => "hardlink-out",
        MaliciousKind.SymlinkWriteThrough => "symlink-write-through",
        MaliciousKind.AbsoluteClimb => "absolute-climb",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static MaliciousKind ParseMaliciousKind(string name)
    {
        foreach (var k in Enum.GetValues<MaliciousKind>())
            if (Name(k) == name) return k;
        throw new ArgumentException(
            $"unknown malicious kind '{name}'; known: {string.Join(", ", Enum.GetValues<MaliciousKind>().Select(Name))}");
    }

    /// <summary>
    /// Busybox base layer plus one hostile layer. A safe puller must refuse the layer (or confine every entry
    /// to the rootfs); the files an escape would create contain "pwned" so tests can look for them:
    /// dotdot: &lt;root&gt;/../../escape; hardlink-out: links to the host's /etc/hostname relative to the rootfs;
    /// symlink-write-through: /tmp/pwned on the host if followed; absolute-climb: &lt;root&gt;/../../../absolute-escape.
    /// </summary>
    public static BuiltImage Malicious(MaliciousKind kind, ManifestFormat format = ManifestFormat.Oci)
    {
        var pwned = Encoding.UTF8.GetBytes("pwned\n");
        var bad = new LayerBuilder(LayerCompression.Gzip);
        switch (kind)
        {
            case MaliciousKind.DotDot:
                bad.AddRaw(TarEntryType.RegularFile, "../../escape", pwned);
                break;
            case MaliciousKind.HardlinkOut:
                bad.AddRaw(TarEntryType.HardLink, "hostname-link", linkName: "../../../etc/hostname");
                break;
            case MaliciousKind.SymlinkWriteThrough:
                bad.AddRaw(TarEntryType.SymbolicLink, "link", linkName: "/tmp", mode: LayerBuilder.LinkMode);
                bad.AddRaw(TarEntryType.RegularFile, "link/pwned", pwned);
                break;
            case MaliciousKind.AbsoluteClimb:
                bad.AddRaw(TarEntryType.RegularFile, "/../../../absolute-escape", pwned);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
        return BusyboxImageBuilder("malicious-" + Name(kind))
            .WithFormat(format)
            .AddLayer(bad, "malicious: " + Name(kind))
            .Build();
    }

    /// <summary>
    /// Busybox base plus <paramref name="layers"/> layers of random (incompressible) bytes adding up to about
    /// <paramref name="sizeMiB"/> MiB, each layer one file /large/blob-N.bin. Deterministic for a given seed.
    /// </summary>
    public static BuiltImage Large(int sizeMiB, int layers = 4, int seed = 1, ManifestFormat format = ManifestFormat.Oci)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sizeMiB);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        var rng = new Random(seed);
        long total = (long)sizeMiB * 1024 * 1024;
        var b = BusyboxImageBuilder($"large-{sizeMiB}-{seed}").WithFormat(format);
        for (var i = 0; i < layers; i++)
        {
            var size = (int)(total / layers + (i == layers - 1 ? total % layers : 0));
            var content = new byte[size];
            rng.NextBytes(content);
            // Random data doesn't shrink; the fastest level saves time on big images.
            var l = new LayerBuilder(LayerCompression.Gzip) { CompressionLevel = CompressionLevel.Fastest };
            if (i == 0) l.AddDirectory("large");
            l.AddFile($"large/blob-{i}.bin", content);
            b.AddLayer(l, $"random layer {i}");
        }
        return b.Build();
    }

    private static byte[] LoadBusybox()
    {
        var path = Environment.GetEnvironmentVariable("CRIRUNTIME_TEST_BUSYBOX") is { Length: > 0 } env ? env : DefaultBusyboxPath;
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new InvalidOperationException(
                $"{path} not found: test images need Debian's busybox-static. Run hack/install-deps.sh (as root).", e);
        }
        // Debian's plain "busybox" package also installs /bin/busybox but dynamically linked; that one
        // would not run inside a rootfs without libc.
        if (HasInterpreter(bytes))
            throw new InvalidOperationException(
                $"{path} is dynamically linked; test images need the static binary from Debian's busybox-static " +
                "(apt-get install busybox-static, or run hack/install-deps.sh).");
        return bytes;
    }

    // True if the ELF file has a PT_INTERP program header (i.e. needs a dynamic loader).
    private static bool HasInterpreter(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidOperationException("busybox binary is not an ELF file");
        var is64 = elf[4] == 2;
        var little = elf[5] == 1;
        ulong Read(int off, int len)
        {
            ulong v = 0;
            for (var i = 0; i < len; i++)
                v |= (ulong)elf[off + (little ? i : len - 1 - i)] << (8 * i);
            return v;
        }
        var phoff = (long)(is64 ? Read(0x20, 8) : Read(0x1c, 4));
        var phentsize = (int)Read(is64 ? 0x36 : 0x2a, 2);
        var phnum = (int)Read(is64 ? 0x38 : 0x2c, 2);
        for (var i = 0; i < phnum; i++)
        {
            var off = phoff + (long)i * phentsize;
            if (off + 4 > elf.Length) break;
            if (Read((int)off, 4) == 3) return true; // PT_INTERP
        }
        return false;
    }
}
