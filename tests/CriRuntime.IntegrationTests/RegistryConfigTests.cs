using System.Text;
using System.Text.Json;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>Mirrors from hosts.toml, basic auth, and the platform picked from multi-platform indexes.</summary>
[Collection(RegistryCollection.Name)]
public sealed class RegistryConfigTests(RegistryFixture registry, ITestOutputHelper output) : DaemonTest(output)
{
    /// <summary>A hosts.toml tree with one registry directory whose server is <paramref name="server"/> and whose only mirror is the test registry.</summary>
    private string MirrorConfig(string registryHost, string server)
    {
        string dir = TempDir("criruntime-hosts-");
        Directory.CreateDirectory(Path.Combine(dir, registryHost));
        File.WriteAllText(Path.Combine(dir, registryHost, "hosts.toml"), $"""
            server = "{server}"

            [host."http://{registry.Host}"]
              capabilities = ["pull", "resolve"]

            """);
        return dir;
    }

    [Fact]
    public async Task ShortName_IsNormalizedToDockerHub_AndPulledThroughMirror()
    {
        string hosts = MirrorConfig("docker.io", "https://registry-1.docker.io");
        var d = await StartDaemonAsync($"[registry]\nconfig_path = \"{hosts}\"\n");
        int manifestGetsBefore = RegistryFixture.CountAccessLog(registry.Registry, "GET", "/v2/library/busybox/manifests/latest")
            + RegistryFixture.CountAccessLog(registry.Registry, "HEAD", "/v2/library/busybox/manifests/latest");

        string imageRef = await PullAsync(d, "busybox");

        Assert.Equal(registry.Busybox.ImageId, imageRef);
        var image = await RequireStatusAsync(d, "docker.io/library/busybox:latest");
        Assert.Contains("docker.io/library/busybox:latest", image.RepoTags);
        Assert.Contains($"docker.io/library/busybox@{registry.Busybox.ManifestDigest}", image.RepoDigests);
        // The short name and the normalized name find the same image.
        Assert.Equal(image.Id, (await RequireStatusAsync(d, "busybox")).Id);
        Assert.Equal(image.Id, (await RequireStatusAsync(d, "busybox:latest")).Id);
        Assert.Equal(image.Id, (await RequireStatusAsync(d, "library/busybox")).Id);
        // And it really came from the mirror.
        int manifestGetsAfter = RegistryFixture.CountAccessLog(registry.Registry, "GET", "/v2/library/busybox/manifests/latest")
            + RegistryFixture.CountAccessLog(registry.Registry, "HEAD", "/v2/library/busybox/manifests/latest");
        Assert.True(manifestGetsAfter > manifestGetsBefore, "the mirror saw no manifest request for library/busybox:latest\n" +
            RegistryFixture.AccessLogFor(registry.Registry, "library/busybox"));
    }

    [Fact]
    public async Task MadeUpRegistry_IsPulledThroughMirror()
    {
        string hosts = MirrorConfig("registry.invalid", "https://registry.invalid");
        var d = await StartDaemonAsync($"[registry]\nconfig_path = \"{hosts}\"\n");

        string imageRef = await PullAsync(d, "registry.invalid/busybox:latest");

        Assert.Equal(registry.Busybox.ImageId, imageRef);
        var image = await RequireStatusAsync(d, "registry.invalid/busybox:latest");
        Assert.Contains("registry.invalid/busybox:latest", image.RepoTags);
        Assert.Contains($"registry.invalid/busybox@{registry.Busybox.ManifestDigest}", image.RepoDigests);
        // Nothing of the mirror's own address leaks into the names.
        Assert.DoesNotContain(image.RepoTags, t => t.Contains(registry.Host, StringComparison.Ordinal));
    }

    [Fact]
    public async Task BasicAuth_NeedsRightCredentials()
    {
        await using var authRegistry = await RegistryServer.StartAsync(new RegistryServerOptions { Username = "criuser", Password = "s3cret-pass" });
        var image = TestImages.Busybox();
        await RegistryPusher.PushAsync(authRegistry, "private/busybox", "latest", image);
        string reference = $"{authRegistry.Host}/private/busybox:latest";
        var d = await StartDaemonAsync();

        var noCreds = await ExpectPullErrorAsync(d, StatusCode.Unauthenticated, reference);
        Assert.Contains("credential", noCreds.Status.Detail, StringComparison.OrdinalIgnoreCase);

        await ExpectPullErrorAsync(d, StatusCode.Unauthenticated, reference,
            new AuthConfig { Username = "criuser", Password = "wrong-pass" });
        await ExpectPullErrorAsync(d, StatusCode.Unauthenticated, reference,
            new AuthConfig { Username = "nobody", Password = "s3cret-pass" });
        Assert.Empty(await ListAsync(d));

        Assert.Equal(image.ImageId, await PullAsync(d, reference, new AuthConfig { Username = "criuser", Password = "s3cret-pass" }));
        var pulled = await RequireStatusAsync(d, reference);
        Assert.Contains(reference, pulled.RepoTags);

        // The "auth" field: base64 of "user:pass", as in a docker config.json.
        await RemoveAsync(d, reference);
        Assert.Null(await StatusAsync(d, reference));
        string auth = Convert.ToBase64String(Encoding.UTF8.GetBytes("criuser:s3cret-pass"));
        Assert.Equal(image.ImageId, await PullAsync(d, reference, new AuthConfig { Auth = auth }));

        // Credentials are checked on every pull, even of an image already present.
        await ExpectPullErrorAsync(d, StatusCode.Unauthenticated, reference,
            new AuthConfig { Username = "criuser", Password = "wrong-pass" });
    }

    [Fact]
    public async Task MultiPlatformIndex_DefaultPlatformIsAmd64OnThisHost()
    {
        Assert.True(Platform.Host.Architecture == "amd64",
            $"this test expects an amd64 host (the daemon's default platform is the host's); this one is {Platform.Host}");
        var d = await StartDaemonAsync();
        var amd64 = registry.MultiArch.ForPlatform(Platform.LinuxAmd64);
        string reference = registry.Ref("multiarch:latest");

        Assert.Equal(amd64.ImageId, await PullAsync(d, reference));

        Assert.Equal("amd64", await PlatformLabelAsync(d, reference));
        var image = await RequireStatusAsync(d, reference);
        // The repo digest is what the tag points at: the index.
        Assert.Contains($"{registry.Host}/multiarch@{registry.MultiArch.Digest}", image.RepoDigests);

        // A Docker manifest list works the same way.
        var dockerAmd64 = registry.MultiArchDocker.ForPlatform(Platform.LinuxAmd64);
        Assert.Equal(dockerAmd64.ImageId, await PullAsync(d, registry.Ref("multiarch:docker")));
        Assert.Equal("amd64", await PlatformLabelAsync(d, registry.Ref("multiarch:docker")));
        Assert.Contains($"{registry.Host}/multiarch@{registry.MultiArchDocker.Digest}",
            (await RequireStatusAsync(d, registry.Ref("multiarch:docker"))).RepoDigests);
    }

    [Fact]
    public async Task MultiPlatformIndex_ConfiguredDefaultPlatformArm64()
    {
        var d = await StartDaemonAsync("[registry]\ndefault_platform = \"linux/arm64\"\n");
        var arm64 = registry.MultiArch.ForPlatform(Platform.LinuxArm64);
        string reference = registry.Ref("multiarch:latest");

        Assert.Equal(arm64.ImageId, await PullAsync(d, reference));

        Assert.Equal("arm64", await PlatformLabelAsync(d, reference));
        Assert.Contains($"{registry.Host}/multiarch@{registry.MultiArch.Digest}", (await RequireStatusAsync(d, reference)).RepoDigests);

        // By index digest too.
        await RemoveAsync(d, reference);
        Assert.Equal(arm64.ImageId, await PullAsync(d, $"{registry.Host}/multiarch@{registry.MultiArch.Digest}"));
    }

    /// <summary>The "platform" label of the pulled image's config, read from verbose ImageStatus.</summary>
    private static async Task<string?> PlatformLabelAsync(DaemonProcess d, string reference)
    {
        var response = await d.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = reference }, Verbose = true },
            deadline: Deadline());
        Assert.NotNull(response.Image);
        Assert.True(response.Info.ContainsKey("info"), "verbose ImageStatus has no info[\"info\"]; keys: " + string.Join(", ", response.Info.Keys));
        using var info = JsonDocument.Parse(response.Info["info"]);
        var spec = info.RootElement.GetProperty("imageSpec");
        return spec.GetProperty("config").GetProperty("Labels").GetProperty(TestImages.PlatformLabel).GetString();
    }
}
