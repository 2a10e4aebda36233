using System.Formats.Tar;
using System.Text;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>
/// Images that ask too much (issue #11): a path 30,000 levels deep and more than 500 layers are refused with
/// FailedPrecondition and a message naming the limit, nothing of them is kept, and the daemon stays up and restarts.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class BoundedImageTests(RegistryFixture registry, ITestOutputHelper output) : DaemonTest(output)
{
    [Fact]
    public async Task A_layer_30000_levels_deep_is_refused_and_the_daemon_stays_up_and_restarts_cleanly()
    {
        string repo = RegistryFixture.UniqueRepo("deep");
        string deepPath = string.Join('/', Enumerable.Repeat("d", 30_000)) + "/file";
        var layer = new LayerBuilder(LayerCompression.Gzip) { Format = TarEntryFormat.Pax } // the long name goes in a PAX path record
            .AddRaw(TarEntryType.RegularFile, deepPath, Encoding.UTF8.GetBytes("deep\n"));
        var image = TestImages.BusyboxImageBuilder("deep-" + repo).AddLayer(layer, "deep").Build();
        await RegistryPusher.PushAsync(registry.Registry, repo, "v1", image);

        var d = await StartDaemonAsync();
        var error = await ExpectPullErrorAsync(d, StatusCode.FailedPrecondition, registry.Ref($"{repo}:v1"));
        Output.WriteLine(error.Status.Detail);
        Assert.Contains("more than 4096 directory levels deep; at most 4096 are accepted", error.Status.Detail);
        Assert.Contains(image.Layers[^1].DiffId, error.Status.Detail); // names the layer
        Assert.Empty(OnDisk.LayerDirNames(d.Root));
        Assert.Empty(OnDisk.TmpEntries(d.Root));

        // Still serving, then a restart (which sweeps overlay/tmp) comes up and pulls.
        await d.Runtime.VersionAsync(new VersionRequest(), deadline: Deadline());
        await d.StopAsync();
        var again = await RestartDaemonAsync(d);
        Assert.Equal(registry.Busybox.ImageId, await PullAsync(again, registry.Ref("busybox:latest")));
    }

    [Fact]
    public async Task An_image_of_501_layers_is_refused_before_any_blob_is_downloaded()
    {
        string repo = RegistryFixture.UniqueRepo("layers");
        var builder = TestImages.BusyboxImageBuilder("many-" + repo);
        var tiny = new LayerBuilder(LayerCompression.None).AddFile("etc/tiny", Encoding.UTF8.GetBytes("t\n")).Build();
        for (int i = 0; i < 500; i++) builder.AddLayer(tiny, "tiny"); // the same blob 500 times over busybox: 501 layers
        var image = builder.Build();
        Assert.Equal(501, image.Layers.Count);
        await RegistryPusher.PushAsync(registry.Registry, repo, "v1", image);

        var d = await StartDaemonAsync();
        var error = await ExpectPullErrorAsync(d, StatusCode.FailedPrecondition, registry.Ref($"{repo}:v1"));
        Output.WriteLine(error.Status.Detail);
        Assert.Contains("has 501 layers; at most 500 are accepted", error.Status.Detail);

        // Only the manifest was fetched: no GET of the config or any layer of this repository reached the registry.
        Assert.True(RegistryFixture.CountAccessLog(registry.Registry, "GET", $"/v2/{repo}/manifests/v1") > 0, RegistryFixture.AccessLogFor(registry.Registry, repo));
        foreach (var (digest, _) in image.Blobs())
            Assert.True(registry.BlobGets(repo, digest) == 0, $"{digest} was downloaded:\n{RegistryFixture.AccessLogFor(registry.Registry, repo)}");
        Assert.Empty(OnDisk.LayerDirNames(d.Root));
        Assert.Empty(await ListAsync(d));
    }
}
