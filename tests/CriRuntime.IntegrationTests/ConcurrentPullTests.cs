using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>Many simultaneous pulls of one image share one download.</summary>
[Collection(RegistryCollection.Name)]
public sealed class ConcurrentPullTests(RegistryFixture registry, ITestOutputHelper output) : DaemonTest(output)
{
    [Fact]
    public async Task TwentyConcurrentPulls_AllSucceed_EachBlobFetchedOnce()
    {
        string repo = RegistryFixture.UniqueRepo("large");
        var image = TestImages.Large(8, layers: 4, seed: Random.Shared.Next());
        await RegistryPusher.PushAsync(registry.Registry, repo, "v1", image);
        string reference = registry.Ref($"{repo}:v1");
        var d = await StartDaemonAsync();

        using var start = new SemaphoreSlim(0);
        var pulls = Enumerable.Range(0, 20).Select(async i =>
        {
            await start.WaitAsync();
            try
            {
                var response = await d.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = reference } }, deadline: Deadline());
                return response.ImageRef;
            }
            catch (RpcException e)
            {
                return $"pull {i} failed: {e.StatusCode}: {e.Status.Detail}";
            }
        }).ToList();
        start.Release(20);
        var results = await Task.WhenAll(pulls);

        Assert.True(results.All(r => r == image.ImageId),
            $"expected every pull to return {image.ImageId}, got:\n{string.Join('\n', results)}\n--- daemon log tail:\n{d.LogTail()}");
        var listed = Assert.Single(await ListAsync(d));
        Assert.Equal(image.ImageId, listed.Id);
        Assert.Contains(reference, listed.RepoTags);

        foreach (var layer in image.Layers)
        {
            int gets = registry.BlobGets(repo, layer.Digest);
            Assert.True(gets == 1,
                $"layer {layer.Digest} ({layer.Data.Length} bytes) was fetched {gets} times by 20 concurrent pulls\n" +
                RegistryFixture.AccessLogFor(registry.Registry, repo));
        }
        int configGets = registry.BlobGets(repo, image.ConfigDigest);
        Assert.True(configGets == 1, $"config {image.ConfigDigest} was fetched {configGets} times\n{RegistryFixture.AccessLogFor(registry.Registry, repo)}");
        Assert.Empty(OnDisk.TmpEntries(d.Root));
    }
}
