using System.IO.Compression;

namespace CriRuntime.TestSupport;

/// <summary>The images hack/bench.sh pushes for the side-by-side benchmark (src/CriRuntime.Bench).</summary>
public static class BenchImages
{
    /// <summary>Where Debian's catatonit package puts the static binary.</summary>
    public const string CatatonitPath = "/usr/bin/catatonit";

    /// <summary>
    /// A pod infra ("pause") image for containerd's sandbox_image: one layer with the static catatonit as
    /// /catatonit, entrypoint ["/catatonit", "-P"] (pause mode: sleep until a signal, reap nothing), as the
    /// upstream pause image does with its own tiny binary. No outside registry is reachable on a bench machine.
    /// </summary>
    public static BuiltImage Pause()
    {
        byte[] catatonit;
        try
        {
            catatonit = File.ReadAllBytes(CatatonitPath);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new InvalidOperationException($"{CatatonitPath} is missing: install Debian's catatonit (hack/install-deps.sh)", e);
        }
        var layer = new LayerBuilder(LayerCompression.Gzip)
            .AddFile("catatonit", catatonit, LayerBuilder.ExecMode);
        return new ImageBuilder()
            .WithPlatform(Platform.Host)
            .AddLayer(layer, "catatonit as pause")
            .WithEntrypoint("/catatonit", "-P")
            .WithUser("65535:65535")
            .Build();
    }

    /// <summary>
    /// The cold-pull pair: <c>large</c> is busybox plus <paramref name="layers"/> layers of random bytes adding up to
    /// <paramref name="sizeMiB"/> MiB; <c>shared</c> is the same layers (identical blobs) plus one more layer of
    /// <paramref name="extraMiB"/> MiB, so pulling it after <c>large</c> fetches and unpacks only that layer.
    /// </summary>
    public static (BuiltImage Large, BuiltImage Shared) LargePair(int sizeMiB, int layers, int extraMiB, int seed = 7)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sizeMiB);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(extraMiB);
        var rng = new Random(seed);
        long total = (long)sizeMiB * 1024 * 1024;
        var baseLayers = new List<BuiltLayer>();
        for (var i = 0; i < layers; i++)
        {
            var size = (int)(total / layers + (i == layers - 1 ? total % layers : 0));
            baseLayers.Add(RandomLayer($"bench/blob-{i}.bin", size, rng, withDirectory: i == 0));
        }
        var extra = RandomLayer("bench-extra/blob.bin", extraMiB * 1024 * 1024, rng, withDirectory: true);

        ImageBuilder Base(string variant)
        {
            var b = TestImages.BusyboxImageBuilder(variant).WithCmd("sleep", "3600");
            for (var i = 0; i < baseLayers.Count; i++) b.AddLayer(baseLayers[i], $"random layer {i}");
            return b;
        }
        var large = Base($"bench-large-{sizeMiB}").Build();
        var shared = Base($"bench-shared-{sizeMiB}").AddLayer(extra, "extra random layer").Build();
        return (large, shared);
    }

    private static BuiltLayer RandomLayer(string path, int size, Random rng, bool withDirectory)
    {
        var content = new byte[size];
        rng.NextBytes(content);
        // Random bytes do not compress; the fastest level keeps building quick.
        var l = new LayerBuilder(LayerCompression.Gzip) { CompressionLevel = CompressionLevel.Fastest };
        if (withDirectory) l.AddDirectory(Path.GetDirectoryName(path)!);
        l.AddFile(path, content);
        return l.Build();
    }

    /// <summary>
    /// Pushes bench/busybox:latest, bench/pause:latest, bench/large:latest and bench/shared:latest.
    /// </summary>
    public static async Task<IReadOnlyList<PushResult>> PushAsync(string registryHost, int largeMiB, int layers, int extraMiB,
        CancellationToken ct = default)
    {
        var results = new List<PushResult>
        {
            await RegistryPusher.PushAsync(registryHost, "bench/busybox", "latest", TestImages.Busybox(), null, ct),
            await RegistryPusher.PushAsync(registryHost, "bench/pause", "latest", Pause(), null, ct),
        };
        var (large, shared) = LargePair(largeMiB, layers, extraMiB);
        results.Add(await RegistryPusher.PushAsync(registryHost, "bench/large", "latest", large, null, ct));
        results.Add(await RegistryPusher.PushAsync(registryHost, "bench/shared", "latest", shared, null, ct));
        return results;
    }
}
