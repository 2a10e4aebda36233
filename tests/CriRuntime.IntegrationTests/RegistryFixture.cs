using System.Text.RegularExpressions;
using CriRuntime.TestSupport;
using Xunit;

namespace CriRuntime.IntegrationTests;

/// <summary>
/// One Debian docker-registry on 127.0.0.1 with the standard test images, started once for every test
/// class in the <see cref="RegistryCollection"/>. Tests that change what the registry serves (moving a tag,
/// corrupting a blob, a large image for the concurrency test) push under repositories of their own
/// (<see cref="UniqueRepo"/>), so they never disturb the standard images.
/// </summary>
public sealed class RegistryFixture : IAsyncLifetime
{
    public RegistryServer Registry { get; private set; } = null!;

    /// <summary>"127.0.0.1:PORT".</summary>
    public string Host => Registry.Host;

    /// <summary>What <see cref="RegistryPusher.PushStandardTestImagesAsync"/> pushed, by "host/repo:tag".</summary>
    public IReadOnlyDictionary<string, PushResult> Pushed { get; private set; } = new Dictionary<string, PushResult>();

    // The standard images, built again here: the builders are deterministic, so these have exactly the
    // digests of what was pushed (checked in InitializeAsync).
    public BuiltImage Busybox { get; } = TestImages.Busybox();
    public BuiltImage Busybox135 { get; } = TestImages.Busybox("1.35");
    public BuiltImage BusyboxNonRoot { get; } = TestImages.Busybox("nonroot", user: $"{TestImages.AppUid}:{TestImages.AppUid}");
    public BuiltImage BusyboxDocker { get; } = TestImages.Busybox("docker", format: ManifestFormat.DockerSchema2);
    public BuiltImage MultiLayer { get; } = TestImages.MultiLayer();
    public BuiltIndex MultiArch { get; } = TestImages.TwoPlatformIndex();
    public BuiltIndex MultiArchDocker { get; } = TestImages.TwoPlatformIndex(ManifestFormat.DockerSchema2);

    /// <summary>"host/repo:tag" on this registry.</summary>
    public string Ref(string repoAndTag) => $"{Host}/{repoAndTag}";

    public async Task InitializeAsync()
    {
        Registry = await RegistryServer.StartAsync();
        try
        {
            var results = await RegistryPusher.PushStandardTestImagesAsync(Host);
            Pushed = results.ToDictionary(r => r.Reference);
            // The same image as busybox:latest under a second tag of the same repository.
            await RegistryPusher.PushAsync(Registry, "busybox", "second", Busybox);

            void Same(string reference, string digest)
            {
                if (!Pushed.TryGetValue(Ref(reference), out var pushed))
                    throw new InvalidOperationException($"standard images do not include {reference}; pushed: {string.Join(", ", Pushed.Keys)}");
                if (pushed.Digest != digest)
                    throw new InvalidOperationException($"{reference} was pushed as {pushed.Digest} but rebuilding it gives {digest}: image builders are not deterministic");
            }
            Same("busybox:latest", Busybox.ManifestDigest);
            Same("library/busybox:latest", Busybox.ManifestDigest);
            Same("busybox:1.35", Busybox135.ManifestDigest);
            Same("busybox:nonroot", BusyboxNonRoot.ManifestDigest);
            Same("busybox:docker", BusyboxDocker.ManifestDigest);
            Same("multilayer:latest", MultiLayer.ManifestDigest);
            Same("multiarch:latest", MultiArch.Digest);
            Same("multiarch:docker", MultiArchDocker.Digest);
        }
        catch
        {
            await Registry.DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        if (Registry is not null) await Registry.DisposeAsync();
    }

    /// <summary>A repository name no other test uses.</summary>
    public static string UniqueRepo(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];

    /// <summary>How many GET requests for this blob in this repository the registry's access log shows.</summary>
    public int BlobGets(string repository, string digest) => CountAccessLog(Registry, "GET", $"/v2/{repository}/blobs/{digest}");

    /// <summary>
    /// Counts access-log lines (combined log format: <c>"GET /v2/... HTTP/1.1" 200 ...</c>) for
    /// <paramref name="method"/> on exactly <paramref name="path"/> (a query string is allowed).
    /// </summary>
    public static int CountAccessLog(RegistryServer registry, string method, string path)
    {
        var pattern = new Regex("\"" + Regex.Escape(method) + " " + Regex.Escape(path) + @"(\?[^ ""]*)? HTTP/[0-9.]+"" \d{3} ");
        using var stream = new FileStream(registry.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        int count = 0;
        while (reader.ReadLine() is { } line)
            if (pattern.IsMatch(line)) count++;
        return count;
    }

    /// <summary>All access-log lines of requests under /v2/<paramref name="repository"/>/ (for failure messages).</summary>
    public static string AccessLogFor(RegistryServer registry, string repository)
    {
        using var stream = new FileStream(registry.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        var lines = new List<string>();
        while (reader.ReadLine() is { } line)
            if (line.Contains($" /v2/{repository}/", StringComparison.Ordinal) && line.Contains("\" ", StringComparison.Ordinal) && line.StartsWith("127.", StringComparison.Ordinal))
                lines.Add(line);
        return string.Join('\n', lines.TakeLast(80));
    }
}

/// <summary>Test classes that share the one registry (and so run one after another).</summary>
[CollectionDefinition(Name)]
public sealed class RegistryCollection : ICollectionFixture<RegistryFixture>
{
    public const string Name = "registry";
}
