using CriRuntime.Images;
using CriRuntime.Images.Distribution;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Distribution;

public class PlatformMatcherTests
{
    private static int n;

    private static Descriptor Entry(string? platform, IReadOnlyDictionary<string, string>? annotations = null)
    {
        var digest = Digest.Sha256($"entry {Interlocked.Increment(ref n)}");
        Platform? p = platform is null ? null : Platform.Parse(platform);
        return new Descriptor(MediaTypes.OciManifest, digest, 100) { Platform = p, Annotations = annotations };
    }

    /// <summary>Index entries (by platform text), wanted platform, and the entry expected (or null for none).</summary>
    [Theory]
    // os and architecture must match
    [InlineData("linux/amd64,linux/arm64", "linux/amd64", "linux/amd64")]
    [InlineData("linux/amd64,linux/arm64", "linux/arm64", "linux/arm64")]
    [InlineData("windows/amd64", "linux/amd64", null)]
    [InlineData("linux/arm64", "linux/amd64", null)]
    [InlineData("linux/s390x,linux/ppc64le", "linux/riscv64", null)]
    // arm64: missing variant is v8; exact text preferred
    [InlineData("linux/arm64", "linux/arm64/v8", "linux/arm64")]
    [InlineData("linux/arm64/v8", "linux/arm64", "linux/arm64/v8")]
    [InlineData("linux/arm64,linux/arm64/v8", "linux/arm64/v8", "linux/arm64/v8")]
    [InlineData("linux/arm64/v8,linux/arm64", "linux/arm64", "linux/arm64")]
    [InlineData("linux/arm64/v9", "linux/arm64", null)]
    [InlineData("linux/arm64/v8,linux/arm64/v9", "linux/arm64/v9", "linux/arm64/v9")]
    [InlineData("linux/arm64/v8", "linux/arm64/v9", "linux/arm64/v8")]
    // arm: highest variant not above the wanted one
    [InlineData("linux/arm/v5,linux/arm/v6,linux/arm/v7", "linux/arm/v7", "linux/arm/v7")]
    [InlineData("linux/arm/v5,linux/arm/v6", "linux/arm/v7", "linux/arm/v6")]
    [InlineData("linux/arm/v6,linux/arm/v5", "linux/arm/v7", "linux/arm/v6")]
    [InlineData("linux/arm/v5", "linux/arm/v7", "linux/arm/v5")]
    [InlineData("linux/arm/v7", "linux/arm/v6", null)]
    [InlineData("linux/arm/v7,linux/arm/v5", "linux/arm/v6", "linux/arm/v5")]
    [InlineData("linux/arm/v8", "linux/arm/v7", null)]
    [InlineData("linux/arm/v6,linux/arm", "linux/arm/v7", "linux/arm")]
    [InlineData("linux/arm", "linux/arm/v6", null)]
    // amd64: variant ignored, exact first, then none
    [InlineData("linux/amd64/v2,linux/amd64", "linux/amd64", "linux/amd64")]
    [InlineData("linux/amd64,linux/amd64/v3", "linux/amd64/v3", "linux/amd64/v3")]
    [InlineData("linux/amd64/v2,linux/amd64", "linux/amd64/v3", "linux/amd64")]
    [InlineData("linux/amd64/v2", "linux/amd64/v3", "linux/amd64/v2")]
    [InlineData("linux/amd64/v4,linux/amd64/v2", "linux/amd64/v3", "linux/amd64/v2")]
    [InlineData("linux/amd64/v3", "linux/amd64", "linux/amd64/v3")]
    [InlineData("linux/amd64/v1", "linux/amd64", "linux/amd64/v1")]
    // aliases
    [InlineData("linux/x86_64", "linux/amd64", "linux/x86_64")]
    [InlineData("linux/aarch64", "linux/arm64/v8", "linux/aarch64")]
    [InlineData("Linux/AMD64", "linux/amd64", "Linux/AMD64")]
    public void Table(string entries, string wanted, string? expected)
    {
        var list = entries.Split(',').Select(e => Entry(e)).ToList();
        bool found = PlatformMatcher.TryChoose(list, Platform.Parse(wanted), out var chosen);
        if (expected is null)
        {
            Assert.False(found);
            return;
        }
        Assert.True(found);
        Assert.Same(list.First(e => e.Platform!.ToString() == expected), chosen);
    }

    [Fact]
    public void AttestationsAndUnknownPlatformsAreSkipped()
    {
        var attestation = Entry("linux/amd64", new Dictionary<string, string>
        {
            ["vnd.docker.reference.type"] = "attestation-manifest",
            ["vnd.docker.reference.digest"] = Digest.Sha256("x").ToString(),
        });
        var unknown = Entry("unknown/unknown");
        var noPlatform = Entry(null);
        var real = Entry("linux/amd64");
        var chosen = PlatformMatcher.Choose([attestation, unknown, noPlatform, real], Platform.Parse("linux/amd64"));
        Assert.Same(real, chosen);
    }

    [Fact]
    public void NoMatchListsWhatTheIndexOffers()
    {
        var entries = new[]
        {
            Entry("linux/amd64"), Entry("linux/arm64/v8"), Entry("linux/arm64"), Entry("unknown/unknown"),
            Entry("linux/amd64", new Dictionary<string, string> { ["vnd.docker.reference.type"] = "attestation-manifest" }),
        };
        var e = Assert.Throws<PlatformNotFoundException>(() =>
            PlatformMatcher.Choose(entries, Platform.Parse("linux/s390x"), "docker.io/library/busybox:latest"));
        Assert.Contains("linux/s390x", e.Message);
        Assert.Contains("docker.io/library/busybox:latest", e.Message);
        Assert.Contains("linux/amd64, linux/arm64/v8", e.Message);
        Assert.DoesNotContain("unknown", e.Message);
        Assert.Equal(2, e.Offered.Count);
    }

    [Fact]
    public void EmptyIndexSaysSo()
    {
        var e = Assert.Throws<PlatformNotFoundException>(() => PlatformMatcher.Choose(new ImageIndex(MediaTypes.OciIndex, []), Platform.Parse("linux/amd64")));
        Assert.Contains("none", e.Message);
    }
}
