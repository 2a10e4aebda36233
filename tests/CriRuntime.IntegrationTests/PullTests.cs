using System.Diagnostics;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>PullImage by tag, digest and tag+digest; ids, tags and digests; re-pulls; tags that move; errors.</summary>
[Collection(RegistryCollection.Name)]
public sealed class PullTests(RegistryFixture registry, ITestOutputHelper output) : DaemonTest(output)
{
    [Fact]
    public async Task PullByTag_ReturnsConfigDigestAndRecordsTagAndRepoDigest()
    {
        var d = await StartDaemonAsync();
        string reference = registry.Ref("busybox:latest");

        string imageRef = await PullAsync(d, reference);

        Assert.Equal(registry.Busybox.ImageId, imageRef);
        var image = await RequireStatusAsync(d, reference);
        Assert.Equal(registry.Busybox.ImageId, image.Id);
        Assert.Contains(reference, image.RepoTags);
        Assert.Contains($"{registry.Host}/busybox@{registry.Busybox.ManifestDigest}", image.RepoDigests);
        Assert.True(image.Size > 0, $"size {image.Size}");
        // busybox:latest has no User: neither uid nor username.
        Assert.Null(image.Uid);
        Assert.Equal("", image.Username);

        // The image is found by id, by tag and by repo digest.
        Assert.Equal(image.Id, (await RequireStatusAsync(d, registry.Busybox.ImageId)).Id);
        Assert.Equal(image.Id, (await RequireStatusAsync(d, $"{registry.Host}/busybox@{registry.Busybox.ManifestDigest}")).Id);
    }

    [Fact]
    public async Task PullByDigest_ReturnsSameImageAndRecordsRepoDigest()
    {
        var d = await StartDaemonAsync();
        string byDigest = $"{registry.Host}/busybox@{registry.Busybox.ManifestDigest}";

        string imageRef = await PullAsync(d, byDigest);

        Assert.Equal(registry.Busybox.ImageId, imageRef);
        var image = await RequireStatusAsync(d, byDigest);
        Assert.Equal(registry.Busybox.ImageId, image.Id);
        Assert.Contains(byDigest, image.RepoDigests);
        // A digest pull names no tag.
        Assert.DoesNotContain(image.RepoTags, t => t.EndsWith(":latest", StringComparison.Ordinal) || t.Contains('@'));
    }

    [Fact]
    public async Task PullByTagAndDigest_UsesTheDigest()
    {
        var d = await StartDaemonAsync();
        // The tag says 1.35 but the digest is latest's: the digest wins, as in containerd.
        string reference = $"{registry.Host}/busybox:1.35@{registry.Busybox.ManifestDigest}";

        string imageRef = await PullAsync(d, reference);

        Assert.Equal(registry.Busybox.ImageId, imageRef);
        var image = await RequireStatusAsync(d, registry.Busybox.ImageId);
        Assert.Contains($"{registry.Host}/busybox@{registry.Busybox.ManifestDigest}", image.RepoDigests);
        Assert.Null(await StatusAsync(d, registry.Busybox135.ImageId));
    }

    [Fact]
    public async Task PullDockerSchema2Manifest()
    {
        var d = await StartDaemonAsync();
        string reference = registry.Ref("busybox:docker");

        Assert.Equal(registry.BusyboxDocker.ImageId, await PullAsync(d, reference));

        var image = await RequireStatusAsync(d, reference);
        Assert.Contains($"{registry.Host}/busybox@{registry.BusyboxDocker.ManifestDigest}", image.RepoDigests);
    }

    [Fact]
    public async Task RePull_IsIdempotentAndFetchesNoBlobAgain()
    {
        var d = await StartDaemonAsync();
        string reference = registry.Ref("busybox:1.35");
        var image = registry.Busybox135;

        Assert.Equal(image.ImageId, await PullAsync(d, reference));
        var first = await RequireStatusAsync(d, reference);
        var blobs = image.Layers.Select(l => l.Digest).Append(image.ConfigDigest).ToList();
        var getsAfterFirst = blobs.ToDictionary(b => b, b => registry.BlobGets("busybox", b));

        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 3; i++)
            Assert.Equal(image.ImageId, await PullAsync(d, reference));
        sw.Stop();

        var again = await RequireStatusAsync(d, reference);
        Assert.Equal(first.Id, again.Id);
        Assert.Equal(first.RepoTags.Order(), again.RepoTags.Order());
        Assert.Equal(first.RepoDigests.Order(), again.RepoDigests.Order());
        Assert.Equal(first.Size, again.Size);
        Assert.Single(await ListAsync(d));
        foreach (var b in blobs)
            Assert.True(registry.BlobGets("busybox", b) == getsAfterFirst[b],
                $"re-pulls fetched blob {b} again ({getsAfterFirst[b]} GETs after the first pull, {registry.BlobGets("busybox", b)} now)\n" +
                RegistryFixture.AccessLogFor(registry.Registry, "busybox"));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"three re-pulls took {sw.Elapsed}");
    }

    [Fact]
    public async Task SecondTagOfSameImage_AddsTagToSameImage()
    {
        var d = await StartDaemonAsync();
        string latest = registry.Ref("busybox:latest");
        string second = registry.Ref("busybox:second");
        string library = registry.Ref("library/busybox:latest");

        Assert.Equal(registry.Busybox.ImageId, await PullAsync(d, latest));
        Assert.Equal(registry.Busybox.ImageId, await PullAsync(d, second));
        Assert.Equal(registry.Busybox.ImageId, await PullAsync(d, library));

        var images = await ListAsync(d);
        var image = Assert.Single(images);
        Assert.Equal(registry.Busybox.ImageId, image.Id);
        Assert.Contains(latest, image.RepoTags);
        Assert.Contains(second, image.RepoTags);
        Assert.Contains(library, image.RepoTags);
        Assert.Contains($"{registry.Host}/busybox@{registry.Busybox.ManifestDigest}", image.RepoDigests);
        Assert.Contains($"{registry.Host}/library/busybox@{registry.Busybox.ManifestDigest}", image.RepoDigests);
        // One repo digest per repository, not per tag.
        Assert.Equal(image.RepoDigests.Count, image.RepoDigests.Distinct().Count());
    }

    [Fact]
    public async Task MovedTag_LeavesOldImageWithItsRepoDigest()
    {
        var d = await StartDaemonAsync();
        string repo = RegistryFixture.UniqueRepo("moving");
        string reference = registry.Ref($"{repo}:v1");
        var oldImage = TestImages.Busybox("move-old-" + repo);
        var newImage = TestImages.Busybox("move-new-" + repo);

        await RegistryPusher.PushAsync(registry.Registry, repo, "v1", oldImage);
        Assert.Equal(oldImage.ImageId, await PullAsync(d, reference));

        await RegistryPusher.PushAsync(registry.Registry, repo, "v1", newImage);
        Assert.Equal(newImage.ImageId, await PullAsync(d, reference));

        var now = await RequireStatusAsync(d, reference);
        Assert.Equal(newImage.ImageId, now.Id);
        Assert.Contains(reference, now.RepoTags);
        Assert.Contains($"{registry.Host}/{repo}@{newImage.ManifestDigest}", now.RepoDigests);

        var old = await RequireStatusAsync(d, oldImage.ImageId);
        Assert.DoesNotContain(reference, old.RepoTags);
        Assert.Contains($"{registry.Host}/{repo}@{oldImage.ManifestDigest}", old.RepoDigests);
        Assert.Equal(2, (await ListAsync(d)).Count);
        // The old image is still reachable by its repo digest.
        Assert.Equal(oldImage.ImageId, (await RequireStatusAsync(d, $"{registry.Host}/{repo}@{oldImage.ManifestDigest}")).Id);
    }

    [Fact]
    public async Task NonRootImage_ReportsUid()
    {
        var d = await StartDaemonAsync();
        string reference = registry.Ref("busybox:nonroot");

        Assert.Equal(registry.BusyboxNonRoot.ImageId, await PullAsync(d, reference));

        var image = await RequireStatusAsync(d, reference);
        Assert.NotNull(image.Uid);
        Assert.Equal(TestImages.AppUid, image.Uid.Value);
        Assert.Equal("", image.Username);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("UPPER/Case")]
    [InlineData("a b")]
    [InlineData("busybox:bad tag")]
    [InlineData("busybox@sha256:123")]
    public async Task BadReference_IsInvalidArgument(string reference)
    {
        var d = await StartDaemonAsync();
        await ExpectPullErrorAsync(d, StatusCode.InvalidArgument, reference);
        Assert.Empty(await ListAsync(d));
    }

    [Fact]
    public async Task MissingImageSpec_IsInvalidArgument()
    {
        var d = await StartDaemonAsync();
        await ExpectRpcErrorAsync(d, StatusCode.InvalidArgument, "PullImage without image",
            async () => await d.Images.PullImageAsync(new PullImageRequest(), deadline: Deadline()));
    }

    [Fact]
    public async Task UnknownTagOrRepository_IsNotFound()
    {
        var d = await StartDaemonAsync();
        await ExpectPullErrorAsync(d, StatusCode.NotFound, registry.Ref("busybox:no-such-tag"));
        await ExpectPullErrorAsync(d, StatusCode.NotFound, registry.Ref("no-such-repo:latest"));
        await ExpectPullErrorAsync(d, StatusCode.NotFound,
            $"{registry.Host}/busybox@sha256:{new string('0', 64)}");
        Assert.Empty(await ListAsync(d));
    }

    [Fact]
    public async Task IndexWithoutThisNodesPlatform_IsNotFound()
    {
        // The image exists, but not for this node: NOT_FOUND, as containerd answers ("no match for platform in
        // manifest: not found"). Before the core's exceptions carried error kinds this answered INTERNAL.
        var d = await StartDaemonAsync();
        string repo = RegistryFixture.UniqueRepo("foreign");
        BuiltImage Make(Platform p) => TestImages.BusyboxImageBuilder("foreign-" + repo, platform: p).Build();
        var index = BuiltIndex.Create([Make(new Platform("linux", "s390x")), Make(new Platform("linux", "riscv64"))]);
        await RegistryPusher.PushAsync(registry.Registry, repo, "latest", index);

        var e = await ExpectPullErrorAsync(d, StatusCode.NotFound, registry.Ref($"{repo}:latest"));
        Assert.Contains("linux/s390x", e.Status.Detail);
        Assert.Contains("linux/riscv64", e.Status.Detail);
        Assert.Empty(await ListAsync(d));
    }
}
