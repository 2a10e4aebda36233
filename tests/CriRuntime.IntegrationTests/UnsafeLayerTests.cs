using System.Formats.Tar;
using System.Text;
using CriRuntime.TestSupport;
using Grpc.Core;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>
/// Hostile layers are refused (FailedPrecondition), corrupt blobs are caught (DataLoss), and either way
/// nothing of the failed pull is kept and nothing is written outside the daemon's root.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class UnsafeLayerTests(RegistryFixture registry, ITestOutputHelper output) : DaemonTest(output)
{
    public static TheoryData<string> Kinds() => new(Enum.GetValues<MaliciousKind>().Select(TestImages.Name));

    /// <summary>The standard malicious:&lt;kind&gt; images (the ones <c>hack/test-images.sh</c> pushes).</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task StandardMaliciousImage_IsRefused_NothingKept(string kind)
    {
        // The escape targets of the standard images have fixed names; remember what existed before so
        // a leftover of some earlier run is not taken for an escape (a fresh one is always caught).
        string[] hostTargets = ["/tmp/pwned", "/escape", "/absolute-escape", "/tmp/escape", "/tmp/absolute-escape"];
        var existed = hostTargets.Where(Path.Exists).ToHashSet();
        var d = await StartDaemonAsync();
        string reference = registry.Ref("malicious:" + kind);

        var error = await ExpectPullErrorAsync(d, StatusCode.FailedPrecondition, reference);
        Output.WriteLine($"{kind}: {error.Status.Detail}");

        foreach (var target in hostTargets.Where(t => !existed.Contains(t)))
            Assert.False(Path.Exists(target), $"pulling malicious:{kind} wrote {target}");
        AssertNothingKept(d, "malicious:" + kind);
        foreach (var name in new[] { "escape", "absolute-escape", "pwned", "hostname-link" })
            Assert.Empty(OnDisk.FindByName(d.BaseDir, name));
        Assert.Null(await StatusAsync(d, reference));
    }

    /// <summary>
    /// The same four attacks (built the same way as the standard ones) with names unique to this run, so an escape anywhere on the host is found
    /// for certain; after all of them, a good image still pulls.
    /// </summary>
    [Fact]
    public async Task UniquelyNamedEscapes_AreRefused_NothingWrittenAnywhere_ThenGoodPullWorks()
    {
        var d = await StartDaemonAsync();
        string tag = Guid.NewGuid().ToString("N")[..12];
        string escape = "escape-" + tag, absolute = "absolute-escape-" + tag, pwned = "pwned-" + tag, hostLink = "hostname-link-" + tag;
        string repo = RegistryFixture.UniqueRepo("evil");
        var bad = new Dictionary<string, LayerBuilder>
        {
            ["dotdot"] = new LayerBuilder().AddRaw(TarEntryType.RegularFile, $"../../{escape}", Encoding.UTF8.GetBytes("pwned\n")),
            ["hardlink-out"] = new LayerBuilder().AddRaw(TarEntryType.HardLink, hostLink, linkName: "../../../etc/hostname"),
            ["symlink-write-through"] = new LayerBuilder()
                .AddRaw(TarEntryType.SymbolicLink, "link", linkName: "/tmp", mode: LayerBuilder.LinkMode)
                .AddRaw(TarEntryType.RegularFile, $"link/{pwned}", Encoding.UTF8.GetBytes("pwned\n")),
            ["absolute-climb"] = new LayerBuilder().AddRaw(TarEntryType.RegularFile, $"/../../../{absolute}", Encoding.UTF8.GetBytes("pwned\n")),
        };

        foreach (var (kind, layer) in bad)
        {
            var image = TestImages.BusyboxImageBuilder($"evil-{kind}-{tag}").AddLayer(layer, kind).Build();
            await RegistryPusher.PushAsync(registry.Registry, repo, kind, image);
            string reference = registry.Ref($"{repo}:{kind}");

            await ExpectPullErrorAsync(d, StatusCode.FailedPrecondition, reference);

            AssertNothingKept(d, kind);
            foreach (var name in new[] { escape, absolute, pwned, hostLink })
            {
                Assert.Empty(OnDisk.FindByName(d.BaseDir, name));
                // Every directory above the daemon's root, up to /, is where a climb would land.
                for (var dir = new DirectoryInfo(d.BaseDir).Parent; dir is not null; dir = dir.Parent)
                    Assert.False(Path.Exists(Path.Combine(dir.FullName, name)), $"{kind} wrote {Path.Combine(dir.FullName, name)}");
            }
        }

        Assert.Equal(registry.Busybox.ImageId, await PullAsync(d, registry.Ref("busybox:latest")));
        Assert.Equal(OnDisk.ChainIds(registry.Busybox).Select(OnDisk.Hex), OnDisk.LayerDirNames(d.Root));
        Assert.Single(await ListAsync(d));
    }

    [Fact]
    public async Task CorruptLayerBlob_SameSize_IsDataLoss_NothingKept()
    {
        // An uncompressed layer swapped for another valid tar of the same size: only the digest tells.
        string repo = RegistryFixture.UniqueRepo("corrupt");
        var content = RandomBytes(64 * 1024);
        var replacement = RandomBytes(64 * 1024);
        var good = new LayerBuilder(LayerCompression.None).AddFile("data/blob.bin", content);
        var image = TestImages.BusyboxImageBuilder("corrupt-" + repo).AddLayer(good, "data").Build();
        await RegistryPusher.PushAsync(registry.Registry, repo, "v1", image);
        var evilTar = new LayerBuilder(LayerCompression.None).AddFile("data/blob.bin", replacement).BuildTar();
        var layer = image.Layers[^1];
        string blobPath = registry.Registry.BlobDataPath(layer.Digest);
        Assert.Equal(new FileInfo(blobPath).Length, evilTar.Length);
        File.WriteAllBytes(blobPath, evilTar);

        var d = await StartDaemonAsync();
        var error = await ExpectPullErrorAsync(d, StatusCode.DataLoss, registry.Ref($"{repo}:v1"));
        Output.WriteLine(error.Status.Detail);

        AssertNothingKept(d, "corrupt layer");
        Assert.Empty(await ListAsync(d));
        Assert.Null(await StatusAsync(d, image.ImageId));

        Assert.Equal(registry.Busybox.ImageId, await PullAsync(d, registry.Ref("busybox:latest")));
    }

    [Fact]
    public async Task CorruptLayerBlob_FlippedByteInGzip_IsDataLoss_NothingKept()
    {
        string repo = RegistryFixture.UniqueRepo("flipped");
        var good = new LayerBuilder(LayerCompression.Gzip).AddFile("data/blob.bin", RandomBytes(256 * 1024));
        var image = TestImages.BusyboxImageBuilder("flipped-" + repo).AddLayer(good, "data").Build();
        await RegistryPusher.PushAsync(registry.Registry, repo, "v1", image);
        string blobPath = registry.Registry.BlobDataPath(image.Layers[^1].Digest);
        var bytes = File.ReadAllBytes(blobPath);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(blobPath, bytes);

        var d = await StartDaemonAsync();
        var error = await ExpectPullErrorAsync(d, StatusCode.DataLoss, registry.Ref($"{repo}:v1"));
        Output.WriteLine(error.Status.Detail);

        AssertNothingKept(d, "flipped gzip byte");
        Assert.Empty(await ListAsync(d));
        Assert.Equal(registry.Busybox.ImageId, await PullAsync(d, registry.Ref("busybox:latest")));
    }

    /// <summary>
    /// A fresh daemon whose only pull failed: no image, no committed layer dir (not even the good base
    /// layer unpacked before the bad one, since no image uses it), nothing in overlay/tmp, no links.
    /// </summary>
    private static void AssertNothingKept(DaemonProcess d, string what)
    {
        var dirs = OnDisk.LayerDirNames(d.Root);
        Assert.True(dirs.Count == 0, $"after the failed pull of {what} these layer dirs are left: {string.Join(", ", dirs)}\n{OnDisk.Describe(d.Root)}\n--- daemon log tail:\n{d.LogTail()}");
        var tmp = OnDisk.TmpEntries(d.Root);
        Assert.True(tmp.Count == 0, $"after the failed pull of {what} overlay/tmp holds: {string.Join(", ", tmp)}\n--- daemon log tail:\n{d.LogTail()}");
        string links = Path.Combine(OnDisk.Overlay(d.Root), "l");
        if (Directory.Exists(links))
            Assert.True(!Directory.EnumerateFileSystemEntries(links).Any(), $"after the failed pull of {what} overlay/l holds links: {string.Join(", ", Directory.EnumerateFileSystemEntries(links))}");
    }

    private static byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        Random.Shared.NextBytes(b);
        return b;
    }
}
